// Platform commands as they arrive from the broker on <prefix>/<gateway_id>/cmd: any bytes through
// decodeCommand(), the expiry check and the memory of request ids. A command that decodes must
// satisfy every promise decodeCommand() makes (so the service can rely on them); one that does not
// must say why, and may keep only a request id that is fit to echo.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "commands/command.hpp"

namespace cc = citygate::commands;
namespace pb = citygate::v1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static cc::RecentIds recent(16);
  const cc::Decoded d = cc::decodeCommand({reinterpret_cast<const char*>(data), size});
  const auto& c = d.command;
  const auto& id = c.request_id();
  if (id.size() > cc::kMaxRequestId) __builtin_trap();
  for (char ch : id) {
    if (ch < 0x20 || ch > 0x7e) __builtin_trap();
  }
  if (!d.ok()) {
    if (d.detail.empty() || d.refusal != pb::BAD_COMMAND) __builtin_trap();
    return 0;
  }
  if (size > cc::kMaxCommandBytes || id.empty() || !c.has_expires_at()) __builtin_trap();
  if (c.device().empty() && !c.has_refill()) __builtin_trap();  // a refill names no device
  if (c.has_write() && !std::isfinite(c.write().value())) __builtin_trap();
  if (c.has_downlink() && (c.downlink().f_port() < 1 || c.downlink().f_port() > 223)) __builtin_trap();
  if (c.has_refill()) {
    const auto& r = c.refill();
    if (r.epoch().empty() || r.from_seq() == 0 || r.to_seq() < r.from_seq() ||
        r.to_seq() - r.from_seq() >= cc::kMaxRefillReadings) {
      __builtin_trap();
    }
  }
  if (!c.has_write() && !c.has_downlink() && !c.has_refill()) __builtin_trap();
  const citygate::WallTime now{std::chrono::seconds(1'800'000'000)};
  if (auto late = cc::checkExpiry(c, now, std::chrono::seconds(3600))) {
    if (late->refusal != pb::EXPIRED && late->refusal != pb::BAD_COMMAND) __builtin_trap();
  }
  const bool fresh = recent.insert(id);
  if (recent.insert(id) || (fresh && !recent.contains(id)) || recent.size() > recent.capacity()) __builtin_trap();
  return 0;
}
