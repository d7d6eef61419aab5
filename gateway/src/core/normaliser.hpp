// Normaliser: RawSample + SensorSpec -> Readings. Pure apart from a small per-sensor memory (the
// last parking status of each bay, to stamp status_changed_at). Runs on the executor.
//
// value = (raw * scale + offset) * conversion.factor + conversion.offset. A value outside the
// point's plausible range is kept and marked UNCERTAIN; a point the source could not read is BAD.
// The reading's quality is the worst of its points. Groups whose points were all skipped (report
// by exception) produce no reading.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "core/generic_wire.hpp"
#include "core/sensor.hpp"

namespace google::protobuf {
class Arena;
}

namespace citygate::core {

class Normaliser {
 public:
  // Appends the readings of `sample` to `out` (seq left 0: the pipeline numbers them).
  static void normalise(const SensorSpec& spec, const RawSample& sample, SensorMemory& memory,
                        std::vector<pb::Reading>& out);

  // The hot path's form: readings are created on `arena` (the pipeline resets it after each
  // sample, so building a reading costs no malloc/free), and a generic observation is not built
  // as a protobuf map but written to generic[i] for out[i] (GenericWire; inactive for the other
  // kinds): out[i]'s wire form is its serialisation followed by generic[i].appendTo().
  static void normalise(const SensorSpec& spec, const RawSample& sample, SensorMemory& memory,
                        google::protobuf::Arena& arena, std::vector<pb::Reading*>& out,
                        std::vector<GenericWire>& generic);

 private:
  struct Target {
    pb::Reading* reading;
    GenericWire* generic;
  };
  static void build(const SensorSpec& spec, const RawSample& sample, SensorMemory& memory,
                    const std::function<Target()>& next);
};

}  // namespace citygate::core
