// The city's own sensor-node formats, "citygate-air" and "citygate-traffic" (version 1), as the
// node firmware emits them on FPort 1. Compact, versioned, big-endian, exact length; the byte
// tables and worked examples are in codecs/README.md. Both tables below are the single source
// of truth for the decoder and for the points the registry builds.
#pragma once

#include <array>
#include <string_view>

#include "inputs/lora/codecs/codec.hpp"

namespace citygate::lora {

inline constexpr std::uint8_t kCitygatePort = 1;
inline constexpr std::uint8_t kCitygateVersion = 1;

struct CitygateField {
  std::string_view field;  // observation field
  std::uint8_t bytes;      // 1 or 2
  bool isSigned;
  double scale;           // value = raw * scale, in `unit`
  std::string_view unit;  // source unit for core::conversionFor ("" = canonical)
  double min, max;        // plausible range in canonical units (min == max: none)
};

// citygate-air: bit i of the presence mask = kAirFields[i]; fields follow in bit order.
inline constexpr std::array<CitygateField, 15> kAirFields{{
    {"pm1", 2, false, 0.1, "ug/m3", 0, 1000},
    {"pm25", 2, false, 0.1, "ug/m3", 0, 1000},
    {"pm4", 2, false, 0.1, "ug/m3", 0, 1000},
    {"pm10", 2, false, 0.1, "ug/m3", 0, 2000},
    {"no2", 2, false, 0.1, "ppb", 0, 4000},
    {"no", 2, false, 0.1, "ppb", 0, 4000},
    {"o3", 2, false, 0.1, "ppb", 0, 2000},
    {"so2", 2, false, 0.1, "ppb", 0, 4000},
    {"co", 2, false, 0.001, "ppm", 0, 100},
    {"co2", 2, false, 1.0, "ppm", 0, 0},
    {"temperature", 2, true, 0.01, "degC", -50, 70},
    {"relative_humidity", 2, false, 0.01, "%", 0, 1},
    {"pressure", 2, false, 0.1, "hPa", 800, 1100},
    {"wind_speed", 2, false, 0.01, "m/s", 0, 75},
    {"wind_direction", 2, false, 0.1, "deg", 0, 360},
}};

// citygate-traffic: per lane, bit i of the lane's field mask = kTrafficFields[i]. The lane's
// congested flag is always present (bit 7 of the lane byte) and is point kTrafficCongested.
inline constexpr std::array<CitygateField, 6> kTrafficFields{{
    {"intensity", 2, false, 1.0, "", 0, 0},
    {"occupancy", 1, false, 0.005, "", 0, 1},
    {"average_vehicle_speed", 2, false, 0.1, "km/h", 0, 250},
    {"average_vehicle_length", 1, false, 0.1, "m", 0, 25.5},
    {"average_headway_time", 2, false, 0.1, "s", 0, 0},
    {"average_gap_distance", 2, false, 0.1, "m", 0, 0},
}};
inline constexpr std::size_t kTrafficCongested = kTrafficFields.size();
inline constexpr std::size_t kTrafficPointsPerLane = kTrafficFields.size() + 1;
inline constexpr std::size_t kTrafficMaxLanes = 8;

// Point index of a traffic field of lane 1..8.
inline constexpr std::size_t trafficPoint(std::size_t lane, std::size_t field) {
  return (lane - 1) * kTrafficPointsPerLane + field;
}

class CitygateAirCodec final : public Codec {
 public:
  std::string_view name() const override { return "citygate-air"; }
  DecodeResult decode(std::uint8_t fport, std::span<const std::uint8_t> payload,
                      std::span<core::RawValue> values) const override;
};

class CitygateTrafficCodec final : public Codec {
 public:
  std::string_view name() const override { return "citygate-traffic"; }
  DecodeResult decode(std::uint8_t fport, std::span<const std::uint8_t> payload,
                      std::span<core::RawValue> values) const override;
};

}  // namespace citygate::lora
