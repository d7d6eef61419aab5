// What a Sparkplug host sends the edge node, as any bytes: the first byte picks the decoder (even:
// an NCMD/DCMD payload through decodeCommand(), odd: a primary host's STATE through parseState()),
// the rest is the message. A payload that decodes must keep every promise the edge node relies on
// (at most kMaxCommandMetrics metrics, each named or aliased, at most one kind of value); one that
// does not must say why.
#include <cstdint>
#include <string>
#include <string_view>

#include "outputs/sparkplug/codec.hpp"

namespace sp = citygate::sparkplug;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1U) == 0) {
    const sp::DecodedCommand d = sp::decodeCommand(body);
    if (!d.ok()) {
      if (!d.metrics.empty()) __builtin_trap();
      return 0;
    }
    if (body.size() > sp::kMaxCommandBytes || d.metrics.empty() || d.metrics.size() > sp::kMaxCommandMetrics) {
      __builtin_trap();
    }
    for (const auto& m : d.metrics) {
      if (m.name.empty() && !m.alias) __builtin_trap();
      const int values = (m.number ? 1 : 0) + (m.boolean ? 1 : 0) + (m.text ? 1 : 0);
      if (values > 1) __builtin_trap();
    }
    return 0;
  }
  std::string why;
  const auto st = sp::parseState(body, &why);
  if (!st && why.empty()) __builtin_trap();
  if (st && !why.empty()) __builtin_trap();
  if (st && st->timestamp && body.size() < 20) __builtin_trap();  // {"online":x,"timestamp":n} at least
  return 0;
}
