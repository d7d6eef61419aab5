// The input-register image the Modbus slave serves: the generated map (register_map.hpp) filled
// from the last complete period. A point with no value (no complete period yet since the node
// started, a lane without a detector, an average over no vehicle, a headway over fewer than two)
// holds the "not available" value, all bits set (0xFFFF, 0xFFFFFFFF): the generator has checked
// that it lies outside the point's plausible range, so the gateway marks it UNCERTAIN. Values are
// rounded half up and saturate one below that value; reserved words read 0.
#pragma once

#include <stdint.h>

#include "nodes/traffic/aggregator.hpp"
#include "nodes/traffic/register_map.hpp"

namespace citygate::fw::traffic {

constexpr uint16_t kRegisterCount = regmap::kRegisterCount;

// Register counts of `native` for `point` (round(native * num / den)); false: not available.
bool registerValue(const regmap::Point& point, NativeValue native, uint32_t& out);

// period nullptr: every point not available.
void renderRegisters(const PeriodTotals* period, uint8_t laneMask, uint16_t (&registers)[kRegisterCount]);

}  // namespace citygate::fw::traffic
