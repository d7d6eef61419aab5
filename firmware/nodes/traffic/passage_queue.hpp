// Lane detectors on an MCU: the capture interrupt (a loop detector's or radar's edges turned into
// a passage) pushes, the node's main loop takes with next(). One producer, one consumer, no lock:
// each index is written by one side only. A passage that finds the queue full is dropped and
// counted.
#pragma once

#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::traffic {

class PassageQueue final : public hal::LaneDetectors {
 public:
  static constexpr uint8_t kCapacity = 32;  // a power of two, below 256

  bool push(const hal::Passage& p) {  // from the interrupt
    const uint8_t head = head_;
    if (static_cast<uint8_t>(head - tail_) >= kCapacity) {
      dropped_ = dropped_ + 1;
      return false;
    }
    ring_[head % kCapacity] = p;
    __atomic_signal_fence(__ATOMIC_RELEASE);
    head_ = static_cast<uint8_t>(head + 1);
    return true;
  }
  bool next(hal::Passage& out) override {  // from the main loop
    const uint8_t tail = tail_;
    if (tail == head_) return false;
    __atomic_signal_fence(__ATOMIC_ACQUIRE);
    out = ring_[tail % kCapacity];
    tail_ = static_cast<uint8_t>(tail + 1);
    return true;
  }
  uint32_t dropped() const { return dropped_; }

 private:
  hal::Passage ring_[kCapacity] = {};
  volatile uint8_t head_ = 0;
  volatile uint8_t tail_ = 0;
  volatile uint32_t dropped_ = 0;
};

}  // namespace citygate::fw::traffic
