// The host traffic node's lane detectors: a scenario file replayed against the node's clock.
//
// One passage per line, fields separated by blanks; '#' starts a comment, blank lines are
// skipped:
//
//   AT_MS LANE SPEED_KMH LENGTH_CM OCCUPIED_MS
//   10000 1    52.5      450       400
//
// AT_MS is when the vehicle left the detector, in ms after the node started (non-decreasing down
// the file); LANE 1..8; SPEED_KMH in km/h with at most one decimal (0..6553.5); LENGTH_CM 0..65535;
// OCCUPIED_MS how long the vehicle occupied the detector. The node sees each passage once its
// clock reaches AT_MS (hal::LaneDetectors::next). A node restarted replays the file from its
// start again.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::host {

class ScenarioDetectors final : public hal::LaneDetectors {
 public:
  static constexpr size_t kMaxPassages = 100000;

  ScenarioDetectors(hal::Clock& clock) : clock_(clock) {}
  ~ScenarioDetectors();

  // Parses `path` (no file: no passage). False with `error` ("FILE:LINE: what") on a bad line.
  bool load(const char* path, char* error, size_t errorSize);
  // Parses text already in memory (the tests); `name` prefixes the errors.
  bool parse(const char* name, const char* text, size_t size, char* error, size_t errorSize);

  bool next(hal::Passage& out) override;
  // ms until the next passage is due (0xFFFFFFFF: none left).
  uint32_t msUntilNext(uint32_t nowMs) const;
  size_t size() const { return size_; }

 private:
  hal::Clock& clock_;
  hal::Passage* passages_ = nullptr;  // allocated once at load: the host port is not the core
  size_t size_ = 0;
  size_t next_ = 0;
};

}  // namespace citygate::fw::host
