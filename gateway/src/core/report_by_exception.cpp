#include "core/report_by_exception.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace citygate::core {
namespace {

bool unchanged(const PointSpec& p, double canonical, const LastReported& last, WallTime at) {
  if (at - last.at >= std::chrono::seconds(p.maxSilentS)) return false;  // silent too long
  const double delta = std::fabs(canonical - last.value);
  if (p.deadbandAbsolute > 0 && delta >= p.deadbandAbsolute) return false;
  if (p.deadbandPercent > 0 && delta >= std::fabs(last.value) * p.deadbandPercent / 100.0) return false;
  return true;
}

}  // namespace

bool reportByException(const SensorSpec& spec, RawSample& sample, SensorMemory& memory) {
  if (memory.lastReported.size() != spec.points.size()) memory.lastReported.assign(spec.points.size(), std::nullopt);
  bool any = !sample.texts.empty();
  const std::size_t n = std::min(sample.values.size(), spec.points.size());
  for (std::size_t i = 0; i < n; ++i) {
    RawValue& v = sample.values[i];
    if (v.state == RawValue::State::Skip) continue;  // a STRING point: its text is in sample.texts
    const PointSpec& p = spec.points[i];
    // A value that is not finite is BAD to the normaliser: like an unread point, it goes through
    // and does not become the reference.
    if (v.state == RawValue::State::Ok && p.hasDeadband() && std::isfinite(v.value)) {
      const double canonical = p.canonical(v.value);
      std::optional<LastReported>& last = memory.lastReported[i];
      if (last && unchanged(p, canonical, *last, sample.observedAt)) {
        v.state = RawValue::State::Skip;
        continue;
      }
      last = LastReported{canonical, sample.observedAt};
    }
    any = true;
  }
  for (std::size_t i = n; i < sample.values.size(); ++i) {
    if (sample.values[i].state != RawValue::State::Skip) any = true;
  }
  if (!any) ++memory.samplesHeldBack;
  return any;
}

}  // namespace citygate::core
