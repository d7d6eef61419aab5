// Lane aggregation: passages from hal::LaneDetectors summed per lane over fixed periods of the
// node's clock (period_s, default 60), the first starting when the node starts. A passage belongs
// to the period in which the vehicle left the detector; its occupied time counts only for the
// part inside that period. A passage that left before the current period began (delivered late)
// or on a lane the node does not serve is refused and counted.
//
// Native units (what the register map's num/den convert): intensity in vehicles, occupancy as
// occupied ms / period ms, speed in 0.1 km/h, length in cm, headway in ms (the mean time between
// successive arrivals = (last arrival - first arrival) / (count - 1), arrival = left - occupied).
#pragma once

#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::traffic {

constexpr uint8_t kMaxLanes = 8;

struct LaneTotals {
  uint32_t count;
  uint32_t occupiedMs;
  uint32_t speedSum;     // 0.1 km/h
  uint32_t lengthSum;    // cm
  int32_t firstArrival;  // ms from the period's start (negative: entered in the previous one)
  int32_t lastArrival;
};

struct PeriodTotals {
  uint32_t lengthMs;
  LaneTotals lane[kMaxLanes];  // lane n at [n - 1]
};

// A field's value as a fraction native = numerator / denominator; denominator 0: not available
// (no vehicle for an average, fewer than two for a headway).
struct NativeValue {
  uint64_t numerator;
  uint64_t denominator;
};

class Aggregator {
 public:
  enum class Refusal : uint8_t { None, Late, BadLane };

  void start(uint32_t nowMs, uint32_t periodMs, uint8_t laneMask);
  // Closes the periods that ended by passage.atMs, then adds the passage to the current one.
  Refusal add(const hal::Passage& passage);
  // Closes every period that ended by nowMs; true when one did (the completed totals changed).
  bool advance(uint32_t nowMs);

  // The last complete period, or nullptr before the first one has ended.
  const PeriodTotals* completed() const { return completedCount_ > 0 ? &completed_ : nullptr; }
  uint32_t completedCount() const { return completedCount_; }
  uint32_t msUntilBoundary(uint32_t nowMs) const;
  uint8_t laneMask() const { return laneMask_; }
  uint32_t refusedLate() const { return late_; }
  uint32_t refusedBadLane() const { return badLane_; }

 private:
  void close();

  uint32_t periodStart_ = 0;
  uint32_t periodMs_ = 60000;
  uint8_t laneMask_ = 0;
  PeriodTotals current_{};
  PeriodTotals completed_{};
  uint32_t completedCount_ = 0;
  uint32_t late_ = 0;
  uint32_t badLane_ = 0;
};

enum class FieldKind : uint8_t { Intensity, Occupancy, Speed, Length, Headway };
NativeValue nativeValue(const PeriodTotals& period, uint8_t lane, FieldKind field);

}  // namespace citygate::fw::traffic
