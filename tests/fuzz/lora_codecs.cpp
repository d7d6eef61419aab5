// Every codec on any payload: byte 0 picks the codec, byte 1 the FPort, the rest is FRMPayload.
// Decoded values go through the normaliser, as in the gateway.
#include <cstdint>

#include "inputs/lora/codecs/lpp.hpp"
#include "lora_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto specs = lora_fuzz::deviceSpecs();
  if (size < 2) return 0;
  const auto& dev = specs[data[0] % specs.size()];
  const std::uint8_t port = data[1];
  const std::span<const std::uint8_t> payload(data + 2, size - 2);
  std::vector<citygate::core::RawValue> values(dev.sensor->points.size(), {0.0, citygate::core::RawValue::State::Skip});
  const auto r = dev.codec->decode(port, payload, values);
  if (values.size() != dev.sensor->points.size()) __builtin_trap();  // codecs never resize
  if (r.status == citygate::lora::DecodeStatus::Reading) {
    citygate::core::RawSample s;
    s.observedAt = citygate::WallClock::now();
    s.periodStart = s.observedAt - r.period;
    s.values = values;
    citygate::core::SensorMemory mem;
    std::vector<citygate::v1::Reading> out;
    citygate::core::Normaliser::normalise(*dev.sensor, s, mem, out);
  }
  // And the bare LPP walker on the same bytes.
  std::size_t pos = 0;
  citygate::lora::LppItem it;
  while (pos < payload.size()) {
    const std::size_t before = pos;
    if (citygate::lora::nextLppItem(payload, pos, it) != nullptr) break;
    if (pos <= before || pos > payload.size()) __builtin_trap();
  }
  return 0;
}
