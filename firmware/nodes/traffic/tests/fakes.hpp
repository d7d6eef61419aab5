// Fakes of the hardware layer for the traffic node's tests: a clock the test sets, a UART with a
// receive queue and a record of what was sent, and lane detectors fed from an array.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hal.hpp"

namespace citygate::fw::traffic::test {

class FakeClock final : public hal::Clock {
 public:
  uint32_t nowMs() override { return now; }
  uint32_t now = 0;
};

class FakeUart final : public hal::Uart {
 public:
  explicit FakeUart(uint32_t b = 19200) : baud_(b) {}
  size_t read(uint8_t* out, size_t capacity) override {
    const size_t n = rxSize - rxPos < capacity ? rxSize - rxPos : capacity;
    memcpy(out, rx + rxPos, n);
    rxPos += n;
    return n;
  }
  bool write(const uint8_t* data, size_t size) override {
    if (refuseWrites || txSize + size > sizeof tx) return false;
    memcpy(tx + txSize, data, size);
    txSize += size;
    ++writes;
    return true;
  }
  uint32_t baud() const override { return baud_; }

  void arrive(const uint8_t* data, size_t size) {
    memcpy(rx + rxSize, data, size);
    rxSize += size;
  }
  void clearTx() { txSize = 0, writes = 0; }

  uint8_t rx[2048];
  size_t rxSize = 0;
  size_t rxPos = 0;
  uint8_t tx[2048];
  size_t txSize = 0;
  size_t writes = 0;
  bool refuseWrites = false;

 private:
  uint32_t baud_;
};

class FakeDetectors final : public hal::LaneDetectors {
 public:
  FakeDetectors(FakeClock& clock) : clock_(clock) {}
  bool next(hal::Passage& out) override {
    if (pos_ >= size_ || static_cast<int32_t>(list_[pos_].atMs - clock_.now) > 0) return false;
    out = list_[pos_++];
    return true;
  }
  void add(const hal::Passage& p) { list_[size_++] = p; }

 private:
  FakeClock& clock_;
  hal::Passage list_[64];
  size_t size_ = 0;
  size_t pos_ = 0;
};

}  // namespace citygate::fw::traffic::test
