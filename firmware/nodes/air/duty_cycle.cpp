#include "nodes/air/duty_cycle.hpp"

namespace citygate::fw::air {

uint32_t timeOnAirUs(const Modulation& m, size_t payloadBytes) {
  if (m.spreadingFactor < 7 || m.spreadingFactor > 12 || (m.bandwidthKhz != 125 && m.bandwidthKhz != 250) ||
      m.codingRate < 1 || m.codingRate > 4 || payloadBytes > 255) {
    return 0;
  }
  const int32_t sf = m.spreadingFactor;
  // T_sym = 2^SF / BW: 2^SF x 1000 / BW_kHz microseconds, exact for 125 and 250 kHz.
  const uint32_t tSymUs = (uint32_t{1} << sf) * 1000u / m.bandwidthKhz;
  const int32_t de = (sf >= 11 && m.bandwidthKhz == 125) ? 1 : 0;
  const int32_t h = m.explicitHeader ? 0 : 1;
  const int32_t crc = m.crc ? 1 : 0;
  // n_payload = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 H) / (4 (SF - 2 DE))) (CR + 4), 0)
  const int32_t num = 8 * static_cast<int32_t>(payloadBytes) - 4 * sf + 28 + 16 * crc - 20 * h;
  const int32_t den = 4 * (sf - 2 * de);
  int32_t blocks = num > 0 ? (num + den - 1) / den : 0;
  const uint32_t payloadSymbols = 8u + static_cast<uint32_t>(blocks * (m.codingRate + 4));
  // T_preamble = (n_preamble + 4.25) T_sym, in quarter symbols.
  const uint32_t quarterSymbols = 4u * (m.preamble + payloadSymbols) + 17u;
  return quarterSymbols * tSymUs / 4u;
}

void DutyCycle::onTransmit(uint32_t startMs, uint32_t toaUs) {
  any_ = true;
  lastStartMs_ = startMs;
  // 100 T: the frame itself and 99 T of silence, rounded up to the millisecond.
  silenceMs_ = static_cast<uint32_t>((static_cast<uint64_t>(toaUs) * 100u + 999u) / 1000u);
}

uint32_t DutyCycle::waitMs(uint32_t nowMs) const {
  if (!any_) return 0;
  const uint32_t since = hal::elapsed(lastStartMs_, nowMs);
  return since >= silenceMs_ ? 0 : silenceMs_ - since;
}

bool DutyCycle::allows(uint32_t nowMs) const {
  return waitMs(nowMs) == 0;
}

}  // namespace citygate::fw::air
