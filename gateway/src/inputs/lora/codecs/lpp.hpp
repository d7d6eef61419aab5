// Cayenne LPP: repeated [channel(1)][type(1)][data(N)], big-endian, type = IPSO id - 3200.
// nextLppItem() walks a frame entry by entry (pure; used by the codec, the tests and the fuzz target);
// LppCodec maps configured channels to points.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "inputs/lora/codecs/codec.hpp"

namespace citygate::lora {

struct LppItem {
  std::uint8_t channel = 0;
  std::uint8_t type = 0;
  std::array<double, 3> values{};  // in the LPP type's unit (°C, %RH, hPa, V, A, G, °/s, ...)
  std::uint8_t count = 1;          // 3 for accelerometer, gyrometer and GPS (lat, lon, alt)
};

// The name of an LPP type ("temperature"), or empty when unknown.
std::string_view lppTypeName(std::uint8_t type);

// Decodes the entry at `pos` of `payload` into `out` and advances `pos`; returns nullptr, or a
// static description of the problem (unknown type, truncated entry). Loop while pos < size.
const char* nextLppItem(std::span<const std::uint8_t> payload, std::size_t& pos, LppItem& out);

class LppCodec final : public Codec {
 public:
  // channelToPoint[c] = point index for LPP channel c, or -1.
  explicit LppCodec(std::array<std::int16_t, 256> channelToPoint) : map_(channelToPoint) {}
  std::string_view name() const override { return "cayenne-lpp"; }
  DecodeResult decode(std::uint8_t fport, std::span<const std::uint8_t> payload,
                      std::span<core::RawValue> values) const override;

 private:
  std::array<std::int16_t, 256> map_;
};

}  // namespace citygate::lora
