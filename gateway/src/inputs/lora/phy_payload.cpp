#include "inputs/lora/phy_payload.hpp"

namespace citygate::lora {

std::string_view phyErrorName(PhyError e) {
  switch (e) {
    case PhyError::None:
      return "ok";
    case PhyError::TooShort:
      return "truncated_frame";
    case PhyError::BadMajor:
      return "bad_major";
    case PhyError::NotDataUp:
      return "not_data_uplink";
    case PhyError::FOptsWithPort0:
      return "fopts_with_port0";
  }
  return "?";
}

PhyError parseDataFrame(std::span<const std::uint8_t> phy, DataFrame& out, bool allowDownlink) {
  if (phy.empty()) return PhyError::TooShort;
  const std::uint8_t mhdr = phy[0];
  const MType mt = mtypeOf(mhdr);
  const bool up = mt == MType::UnconfirmedDataUp || mt == MType::ConfirmedDataUp;
  const bool down = mt == MType::UnconfirmedDataDown || mt == MType::ConfirmedDataDown;
  if (!up && !(allowDownlink && down)) return PhyError::NotDataUp;
  if ((mhdr & 0x03) != 0) return PhyError::BadMajor;
  if (phy.size() < kMinDataFrame || phy.size() > kMaxPhyPayload) return PhyError::TooShort;

  out = DataFrame{};
  out.mtype = mt;
  out.mhdr = mhdr;
  out.devAddr = static_cast<std::uint32_t>(phy[1]) | (static_cast<std::uint32_t>(phy[2]) << 8) |
                (static_cast<std::uint32_t>(phy[3]) << 16) | (static_cast<std::uint32_t>(phy[4]) << 24);
  out.fctrl = phy[5];
  out.fcnt16 = static_cast<std::uint16_t>(phy[6] | (phy[7] << 8));
  const std::size_t foptsLen = out.fctrl & 0x0F;
  const std::size_t macEnd = phy.size() - 4;  // where the MIC starts
  const std::size_t fhdrEnd = 8 + foptsLen;
  if (fhdrEnd > macEnd) return PhyError::TooShort;
  out.fopts = phy.subspan(8, foptsLen);
  if (fhdrEnd < macEnd) {
    out.hasPort = true;
    out.fport = phy[fhdrEnd];
    out.frmPayload = phy.subspan(fhdrEnd + 1, macEnd - fhdrEnd - 1);
    if (out.fport == 0 && foptsLen > 0) return PhyError::FOptsWithPort0;
  }
  out.mic = (static_cast<std::uint32_t>(phy[macEnd]) << 24) | (static_cast<std::uint32_t>(phy[macEnd + 1]) << 16) |
            (static_cast<std::uint32_t>(phy[macEnd + 2]) << 8) | phy[macEnd + 3];
  out.micInput = phy.first(macEnd);
  return PhyError::None;
}

}  // namespace citygate::lora
