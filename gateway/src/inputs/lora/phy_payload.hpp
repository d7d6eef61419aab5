// LoRaWAN 1.0.x PHYPayload parsing (pure): MHDR, FHDR with FOpts, FPort, FRMPayload, MIC.
//
//   PHYPayload = MHDR(1) | DevAddr(4 LE) | FCtrl(1) | FCnt(2 LE) | FOpts(0..15) | [FPort(1) | FRMPayload] | MIC(4)
//
// Only data frames are decoded; join requests/accepts, proprietary frames and LoRaWAN majors
// other than R1 are classified so the caller can count them. Nothing is verified here: the MIC
// and the frame counter are checked by the FrameProcessor with the device's keys. Spans point
// into the caller's buffer. Any thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace citygate::lora {

enum class MType : std::uint8_t {
  JoinRequest = 0,
  JoinAccept = 1,
  UnconfirmedDataUp = 2,
  UnconfirmedDataDown = 3,
  ConfirmedDataUp = 4,
  ConfirmedDataDown = 5,
  Rfu = 6,
  Proprietary = 7,
};

enum class PhyError : std::uint8_t {
  None,
  TooShort,        // shorter than MHDR + FHDR + MIC, or FOptsLen runs into the MIC
  BadMajor,        // MHDR major is not LoRaWAN R1
  NotDataUp,       // join, downlink, RFU or proprietary: not an uplink we decode
  FOptsWithPort0,  // FOpts present and FPort 0: forbidden (MAC commands in both places)
};

std::string_view phyErrorName(PhyError e);

inline constexpr std::size_t kMaxPhyPayload = 255;
inline constexpr std::size_t kMinDataFrame = 12;  // MHDR 1 + FHDR 7 + MIC 4

struct DataFrame {
  MType mtype = MType::UnconfirmedDataUp;
  std::uint8_t mhdr = 0;
  std::uint32_t devAddr = 0;  // as printed (big-endian reading of the LE wire bytes)
  std::uint8_t fctrl = 0;
  std::uint16_t fcnt16 = 0;
  std::span<const std::uint8_t> fopts;
  bool hasPort = false;
  std::uint8_t fport = 0;
  std::span<const std::uint8_t> frmPayload;
  std::uint32_t mic = 0;                   // the 4 wire bytes, first byte most significant (as printed)
  std::span<const std::uint8_t> micInput;  // MHDR .. end of FRMPayload

  bool uplink() const { return mtype == MType::UnconfirmedDataUp || mtype == MType::ConfirmedDataUp; }
  bool confirmed() const { return mtype == MType::ConfirmedDataUp || mtype == MType::ConfirmedDataDown; }
  bool adr() const { return (fctrl & 0x80) != 0; }
  bool ack() const { return (fctrl & 0x20) != 0; }
};

// Parses a data frame. With `allowDownlink` false (the gateway's use), downlinks are NotDataUp.
PhyError parseDataFrame(std::span<const std::uint8_t> phy, DataFrame& out, bool allowDownlink = false);

inline MType mtypeOf(std::uint8_t mhdr) {
  return static_cast<MType>(mhdr >> 5);
}

}  // namespace citygate::lora
