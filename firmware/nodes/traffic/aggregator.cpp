#include "nodes/traffic/aggregator.hpp"

#include <string.h>

namespace citygate::fw::traffic {

void Aggregator::start(uint32_t nowMs, uint32_t periodMs, uint8_t laneMask) {
  periodStart_ = nowMs;
  periodMs_ = periodMs == 0 ? 1 : periodMs;
  laneMask_ = laneMask;
  memset(&current_, 0, sizeof current_);
  memset(&completed_, 0, sizeof completed_);
  current_.lengthMs = periodMs_;
  completedCount_ = 0;
  late_ = 0;
  badLane_ = 0;
}

void Aggregator::close() {
  completed_ = current_;
  ++completedCount_;
  memset(&current_, 0, sizeof current_);
  current_.lengthMs = periodMs_;
  periodStart_ += periodMs_;
}

bool Aggregator::advance(uint32_t nowMs) {
  bool closed = false;
  while (hal::elapsed(periodStart_, nowMs) >= periodMs_ && static_cast<int32_t>(nowMs - periodStart_) >= 0) {
    close();
    closed = true;
  }
  return closed;
}

uint32_t Aggregator::msUntilBoundary(uint32_t nowMs) const {
  const int32_t since = static_cast<int32_t>(nowMs - periodStart_);
  if (since < 0) return periodMs_;
  if (static_cast<uint32_t>(since) >= periodMs_) return 0;
  return periodMs_ - static_cast<uint32_t>(since);
}

Aggregator::Refusal Aggregator::add(const hal::Passage& p) {
  if (p.lane < 1 || p.lane > kMaxLanes || (laneMask_ & (1u << (p.lane - 1))) == 0) {
    ++badLane_;
    return Refusal::BadLane;
  }
  advance(p.atMs);
  const int32_t left = static_cast<int32_t>(p.atMs - periodStart_);
  if (left < 0) {
    ++late_;
    return Refusal::Late;
  }
  LaneTotals& t = current_.lane[p.lane - 1];
  const uint32_t inPeriod = p.occupiedMs < static_cast<uint32_t>(left) ? p.occupiedMs : static_cast<uint32_t>(left);
  t.occupiedMs += inPeriod;
  if (t.occupiedMs > periodMs_) t.occupiedMs = periodMs_;  // overlapping passages on one loop
  t.speedSum += p.speedDecikmh;
  t.lengthSum += p.lengthCm;
  const int32_t arrival = left - static_cast<int32_t>(p.occupiedMs > 0x7FFFFFFFu ? 0x7FFFFFFFu : p.occupiedMs);
  if (t.count == 0 || arrival < t.firstArrival) t.firstArrival = arrival;
  if (t.count == 0 || arrival > t.lastArrival) t.lastArrival = arrival;
  ++t.count;
  return Refusal::None;
}

NativeValue nativeValue(const PeriodTotals& period, uint8_t lane, FieldKind field) {
  if (lane < 1 || lane > kMaxLanes) return {0, 0};
  const LaneTotals& t = period.lane[lane - 1];
  switch (field) {
    case FieldKind::Intensity:
      return {t.count, 1};
    case FieldKind::Occupancy:
      return {t.occupiedMs, period.lengthMs};
    case FieldKind::Speed:
      return {t.speedSum, t.count};
    case FieldKind::Length:
      return {t.lengthSum, t.count};
    case FieldKind::Headway:
      if (t.count < 2) return {0, 0};
      return {static_cast<uint64_t>(static_cast<int64_t>(t.lastArrival) - t.firstArrival), t.count - 1u};
  }
  return {0, 0};
}

}  // namespace citygate::fw::traffic
