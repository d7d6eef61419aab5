// The city's own sensor-node formats, "citygate-air" and "citygate-traffic" (version 1), as the
// node firmware emits them on FPort 1. The byte layouts, their scaling and the decoder are the
// dependency-free proto/citygate/v1/node_format.hpp that the firmware shares (byte tables and
// worked examples in proto/citygate/v1/README.md); this file adds what only the gateway knows,
// the plausible range of each field, and maps decoded frames to the points the registry builds.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "citygate/v1/node_format.hpp"
#include "inputs/lora/codecs/codec.hpp"

namespace citygate::lora {

inline constexpr std::uint8_t kCitygatePort = node_format::kPort;
inline constexpr std::uint8_t kCitygateVersion = node_format::kVersion;

// One point of a node format, as the registry builds it.
struct CitygateField {
  std::string_view field;  // observation field
  double scale;            // value = raw * scale, in `unit`
  std::string_view unit;   // source unit for core::conversionFor ("" = canonical)
  double min, max;         // plausible range in canonical units (min == max: none)
};

struct PlausibleRange {
  double min, max;
};

template <std::size_t N>
constexpr std::array<CitygateField, N> citygateFields(const node_format::FieldLayout (&layout)[N],
                                                      const std::array<PlausibleRange, N>& range) {
  std::array<CitygateField, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    const auto& f = layout[i];
    out[i] = {f.name, static_cast<double>(f.resolution.num) / f.resolution.den, f.unit, range[i].min, range[i].max};
  }
  return out;
}

// citygate-air: bit i of the presence mask = kAirFields[i] (ranges in node_format::air order).
inline constexpr std::array<CitygateField, node_format::air::kFieldCount> kAirFields =
    citygateFields(node_format::air::kFields, std::array<PlausibleRange, node_format::air::kFieldCount>{{
                                                  {0, 1000},    // pm1
                                                  {0, 1000},    // pm25
                                                  {0, 1000},    // pm4
                                                  {0, 2000},    // pm10
                                                  {0, 4000},    // no2
                                                  {0, 4000},    // no
                                                  {0, 2000},    // o3
                                                  {0, 4000},    // so2
                                                  {0, 100},     // co
                                                  {0, 0},       // co2
                                                  {-50, 70},    // temperature
                                                  {0, 1},       // relative_humidity
                                                  {800, 1100},  // pressure
                                                  {0, 75},      // wind_speed
                                                  {0, 360},     // wind_direction
                                              }});

// citygate-traffic: per lane, bit i of the lane's field mask = kTrafficFields[i]. The lane's
// congested flag is always present (bit 7 of the lane byte) and is point kTrafficCongested.
inline constexpr std::array<CitygateField, node_format::traffic::kFieldCount> kTrafficFields =
    citygateFields(node_format::traffic::kFields, std::array<PlausibleRange, node_format::traffic::kFieldCount>{{
                                                      {0, 0},     // intensity
                                                      {0, 1},     // occupancy
                                                      {0, 250},   // average_vehicle_speed
                                                      {0, 25.5},  // average_vehicle_length
                                                      {0, 0},     // average_headway_time
                                                      {0, 0},     // average_gap_distance
                                                  }});
inline constexpr std::size_t kTrafficCongested = kTrafficFields.size();
inline constexpr std::size_t kTrafficPointsPerLane = kTrafficFields.size() + 1;
inline constexpr std::size_t kTrafficMaxLanes = node_format::traffic::kMaxLanes;

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
