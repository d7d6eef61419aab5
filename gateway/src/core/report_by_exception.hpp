// Report by exception: the stage between a source's RawSample and the normaliser, for every
// source kind. Runs on the executor (Pipeline::submit calls it before normalising); pure apart
// from the per-sensor memory it keeps in SensorMemory; no I/O, no clock (the sample's own
// observedAt is its time).
//
// A point with a deadband (PointSpec::deadbandAbsolute or deadbandPercent > 0) is compared in its
// canonical unit (PointSpec::canonical, the normaliser's one scaling) with the value last let
// through: it goes through when |v - last| >= absolute, or >= percent of |last|, or when
// maxSilentS seconds have passed since the last one went, or when none went yet. Otherwise it is
// marked RawValue::State::Skip, and the normaliser leaves it out (a group left with no point
// produces no reading). A point the source could not read (Bad), or not finite, always goes through
// and does not move the reference. Points without a deadband are left alone.
#pragma once

#include "core/sensor.hpp"

namespace citygate::core {

// Marks the unchanged points of `sample` as skipped and remembers the ones that go through.
// Returns false when nothing is left to report (no value, no text): the sample is counted in
// memory.samplesHeldBack and need not be normalised.
bool reportByException(const SensorSpec& spec, RawSample& sample, SensorMemory& memory);

}  // namespace citygate::core
