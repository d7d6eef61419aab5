#include "inputs/lora/codecs/citygate.hpp"

namespace citygate::lora {

namespace {

// Reads one field at `pos` (bounds already checked); the all-ones / most-negative raw value is
// the node's "sensor fault" sentinel and makes the point BAD.
void readField(const CitygateField& f, std::span<const std::uint8_t> p, std::size_t& pos,
               std::span<core::RawValue> values, std::size_t point) {
  double raw = 0.0;
  bool fault = false;
  if (f.bytes == 1) {
    const std::uint8_t b = p[pos];
    fault = f.isSigned ? b == 0x80 : b == 0xFF;
    raw = f.isSigned ? static_cast<double>(static_cast<std::int8_t>(b)) : b;
  } else {
    const std::uint16_t w = be16(p, pos);
    fault = f.isSigned ? w == 0x8000 : w == 0xFFFF;
    raw = f.isSigned ? static_cast<double>(static_cast<std::int16_t>(w)) : w;
  }
  pos += f.bytes;
  if (fault) {
    setBad(values, point);
  } else {
    setValue(values, point, raw);
  }
}

}  // namespace

DecodeResult CitygateAirCodec::decode(std::uint8_t fport, std::span<const std::uint8_t> p,
                                      std::span<core::RawValue> values) const {
  if (fport != kCitygatePort) return {DecodeStatus::UnknownPort, "unknown port", {}};
  if (p.size() < 3) return {DecodeStatus::Malformed, "air frame needs version and mask", {}};
  if (p[0] != kCitygateVersion) return {DecodeStatus::Malformed, "unsupported air frame version", {}};
  const std::uint16_t mask = be16(p, 1);
  if ((mask & 0x8000) != 0) return {DecodeStatus::Malformed, "reserved mask bit 15 set", {}};
  if (mask == 0) return {DecodeStatus::Malformed, "air frame with no field", {}};
  std::size_t need = 3;
  for (std::size_t i = 0; i < kAirFields.size(); ++i) {
    if ((mask >> i) & 1U) need += kAirFields[i].bytes;
  }
  if (p.size() != need) return {DecodeStatus::Malformed, "air frame length does not match its mask", {}};
  std::size_t pos = 3;
  for (std::size_t i = 0; i < kAirFields.size(); ++i) {
    if ((mask >> i) & 1U) readField(kAirFields[i], p, pos, values, i);
  }
  return {DecodeStatus::Reading, "air", {}};
}

DecodeResult CitygateTrafficCodec::decode(std::uint8_t fport, std::span<const std::uint8_t> p,
                                          std::span<core::RawValue> values) const {
  if (fport != kCitygatePort) return {DecodeStatus::UnknownPort, "unknown port", {}};
  if (p.size() < 4) return {DecodeStatus::Malformed, "traffic frame needs version, period and lane count", {}};
  if (p[0] != kCitygateVersion) return {DecodeStatus::Malformed, "unsupported traffic frame version", {}};
  const std::uint16_t period = be16(p, 1);
  if (period == 0) return {DecodeStatus::Malformed, "traffic period of 0 s", {}};
  const std::size_t lanes = p[3];
  if (lanes == 0 || lanes > kTrafficMaxLanes) return {DecodeStatus::Malformed, "traffic lane count must be 1..8", {}};
  std::size_t pos = 4;
  unsigned seen = 0;
  for (std::size_t l = 0; l < lanes; ++l) {
    if (pos + 2 > p.size()) return {DecodeStatus::Malformed, "truncated lane header", {}};
    const std::uint8_t laneByte = p[pos];
    const std::uint8_t mask = p[pos + 1];
    pos += 2;
    const std::size_t lane = laneByte & 0x0F;
    if (lane == 0 || lane > kTrafficMaxLanes) return {DecodeStatus::Malformed, "lane id must be 1..8", {}};
    if ((laneByte & 0x70) != 0) return {DecodeStatus::Malformed, "reserved lane bits set", {}};
    if ((mask & 0xC0) != 0) return {DecodeStatus::Malformed, "reserved field-mask bits set", {}};
    if ((seen >> lane) & 1U) return {DecodeStatus::Malformed, "lane repeated", {}};
    seen |= 1U << lane;
    std::size_t need = 0;
    for (std::size_t i = 0; i < kTrafficFields.size(); ++i) {
      if ((mask >> i) & 1U) need += kTrafficFields[i].bytes;
    }
    if (pos + need > p.size()) return {DecodeStatus::Malformed, "truncated lane record", {}};
    for (std::size_t i = 0; i < kTrafficFields.size(); ++i) {
      if ((mask >> i) & 1U) readField(kTrafficFields[i], p, pos, values, trafficPoint(lane, i));
    }
    setValue(values, trafficPoint(lane, kTrafficCongested), (laneByte & 0x80) != 0 ? 1 : 0);
  }
  if (pos != p.size()) return {DecodeStatus::Malformed, "bytes after the last lane", {}};
  return {DecodeStatus::Reading, "traffic", std::chrono::seconds(period)};
}

}  // namespace citygate::lora
