// A LoRa payload codec: FPort + FRMPayload -> one RawValue per point of the sensor it was built
// for (RawValue::State::Skip for the points a frame does not carry). The points (fields, units,
// scales, lanes) are fixed when the codec is built from the device's config, so the core
// Normaliser turns the values into ParkingSpot / AirQualityObserved / TrafficFlowObserved
// readings exactly as for Modbus.
//
// decode() is pure and bounded; it never reads past the payload and never throws. Codecs are
// built once at config time (codecs/registry.hpp) and shared read-only.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/sensor.hpp"

namespace citygate::lora {

enum class DecodeStatus : std::uint8_t {
  Reading,      // values were written; the normaliser makes readings of them
  NoReading,    // a valid frame that carries nothing to publish (debug, device information)
  UnknownPort,  // the codec knows nothing sent on this FPort
  Malformed,    // too short, unknown version, reserved bits set, bad values
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::Malformed;
  std::string_view detail;         // a static description: what the frame was, or what is wrong
  std::chrono::seconds period{0};  // traffic: the counting period the values cover
};

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string_view name() const = 0;
  // `values` has one entry per point, all preset to Skip by the caller.
  virtual DecodeResult decode(std::uint8_t fport, std::span<const std::uint8_t> payload,
                              std::span<core::RawValue> values) const = 0;
};

// Helpers for the codecs.
inline void setValue(std::span<core::RawValue> values, std::size_t index, double v) {
  if (index < values.size()) values[index] = core::RawValue{v, core::RawValue::State::Ok};
}
inline void setBad(std::span<core::RawValue> values, std::size_t index) {
  if (index < values.size()) values[index] = core::RawValue{0.0, core::RawValue::State::Bad};
}
inline std::uint16_t be16(std::span<const std::uint8_t> p, std::size_t at) {
  return static_cast<std::uint16_t>((p[at] << 8) | p[at + 1]);
}

}  // namespace citygate::lora
