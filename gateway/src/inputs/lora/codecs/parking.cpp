#include "inputs/lora/codecs/parking.hpp"

namespace citygate::lora {

namespace {
double int8(std::uint8_t b) {
  return static_cast<double>(static_cast<std::int8_t>(b));
}
}  // namespace

DecodeResult NwaveNps405Codec::decode(std::uint8_t fport, std::span<const std::uint8_t> p,
                                      std::span<core::RawValue> v) const {
  switch (fport) {
    case 1:
      if (p.empty()) return {DecodeStatus::Malformed, "parking status needs 1 byte", {}};
      setValue(v, kParkingStatus, (p[0] & 0x80) != 0 ? 1 : 0);
      return {DecodeStatus::Reading, "parking status", {}};
    case 2:
      if (p.size() < 3) return {DecodeStatus::Malformed, "heartbeat needs 3 bytes", {}};
      setValue(v, kParkingStatus, (p[0] & 0x80) != 0 ? 1 : 0);
      setValue(v, kParkingBattery, (2500.0 + 4.0 * p[1]) / 1000.0);
      setValue(v, kParkingTemperature, int8(p[2]) / 2.0 + 10.0);
      return {DecodeStatus::Reading, "heartbeat", {}};
    case 3:
      if (p.size() < 5) return {DecodeStatus::Malformed, "start-up needs 5 bytes", {}};
      setValue(v, kParkingStatus, (p[4] & 0x01) != 0 ? 1 : 0);
      return {DecodeStatus::Reading, "start-up", {}};
    case 6:
      return {DecodeStatus::NoReading, "debug", {}};
    case 10:
      if (p.size() < 5) return {DecodeStatus::Malformed, "tag registration needs 5 bytes", {}};
      // Only an occupied bay states its status here; bit7 clear means "not stated".
      if ((p[0] & 0x80) == 0) return {DecodeStatus::NoReading, "tag registration", {}};
      setValue(v, kParkingStatus, 1);
      return {DecodeStatus::Reading, "tag registration", {}};
    default:
      return {DecodeStatus::UnknownPort, "unknown port", {}};
  }
}

DecodeResult BoschTps110Codec::decode(std::uint8_t fport, std::span<const std::uint8_t> p,
                                      std::span<core::RawValue> v) const {
  switch (fport) {
    case 1:
      if (p.empty()) return {DecodeStatus::Malformed, "parking status needs 1 byte", {}};
      setValue(v, kParkingStatus, p[0] & 0x01);
      return {DecodeStatus::Reading, "parking status", {}};
    case 2:
      if (p.empty()) return {DecodeStatus::Malformed, "heartbeat needs 1 byte", {}};
      setValue(v, kParkingStatus, p[0] & 0x01);
      if (p.size() >= 2) setValue(v, kParkingTemperature, int8(p[1]));
      return {DecodeStatus::Reading, "heartbeat", {}};
    case 3:
      if (p.size() < 17) return {DecodeStatus::Malformed, "start-up needs 17 bytes", {}};
      setValue(v, kParkingStatus, p[16] & 0x01);
      return {DecodeStatus::Reading, "start-up", {}};
    case 4:
      return {DecodeStatus::NoReading, "device information", {}};
    case 5:
      return {DecodeStatus::NoReading, "device usage", {}};
    case 6:
      return {DecodeStatus::NoReading, "debug", {}};
    default:
      return {DecodeStatus::UnknownPort, "unknown port", {}};
  }
}

}  // namespace citygate::lora
