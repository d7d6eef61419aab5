// Fakes of the hardware layer for the traffic node's tests: lane detectors fed from an array (the
// clock and the UART: core/tests/fakes.hpp).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hal.hpp"
#include "core/tests/fakes.hpp"

namespace citygate::fw::traffic::test {

class FakeDetectors final : public hal::LaneDetectors {
 public:
  explicit FakeDetectors(fw::test::ManualClock& clock) : clock_(clock) {}
  bool next(hal::Passage& out) override {
    if (pos_ >= size_ || static_cast<int32_t>(list_[pos_].atMs - clock_.now) > 0) return false;
    out = list_[pos_++];
    return true;
  }
  void add(const hal::Passage& p) { list_[size_++] = p; }

 private:
  fw::test::ManualClock& clock_;
  hal::Passage list_[64];
  size_t size_ = 0;
  size_t pos_ = 0;
};

}  // namespace citygate::fw::traffic::test
