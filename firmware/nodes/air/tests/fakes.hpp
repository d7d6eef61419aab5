// Fakes of hal.hpp for the air node's unit tests: a NOR flash in RAM that a test can cut the
// power of at any write or erase (tearing that operation), a manual clock, a radio that records
// its frames, and hex helpers. Freestanding (no heap, no libstdc++), like the tests.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hal.hpp"

namespace citygate::fw::air::test {

// Hex text to bytes; returns the byte count (0 on a bad digit or too small an output).
inline size_t fromHex(const char* hex, uint8_t* out, size_t capacity) {
  const size_t n = strlen(hex);
  if (n % 2 != 0 || n / 2 > capacity) return 0;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < n / 2; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return 0;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return n / 2;
}

inline bool sameBytes(const uint8_t* a, const uint8_t* b, size_t n) {
  return memcmp(a, b, n) == 0;
}

// NOR flash in RAM. A power cut at operation k (the k-th write or erase, counted from 1 since
// arm()): that operation is torn according to `tear`, and every operation after it fails and
// changes nothing (the node is off) until powerOn().
class FakeFlash final : public hal::Flash {
 public:
  static constexpr uint32_t kMaxBytes = 8 * 256;

  enum class Tear : uint8_t {
    Nothing,   // the operation changed nothing
    Prefix,    // the first `tearBytes` bytes were programmed / erased
    EvenBits,  // a write cleared only the bits of even positions (a half-programmed cell)
  };

  FakeFlash(uint32_t sectorSize, uint32_t sectorCount) : sectorSize_(sectorSize), sectorCount_(sectorCount) {
    memset(mem_, 0xFF, sizeof mem_);
  }

  uint32_t sectorSize() const override { return sectorSize_; }
  uint32_t sectorCount() const override { return sectorCount_; }

  bool erase(uint32_t sector) override {
    ++erases_;
    if (sector >= sectorCount_) return false;
    if (!operation()) return false;
    uint8_t* p = mem_ + sector * sectorSize_;
    if (tornNow_) {
      if (tear_ == Tear::Prefix) memset(p, 0xFF, tearBytes_ < sectorSize_ ? tearBytes_ : sectorSize_);
      return false;
    }
    memset(p, 0xFF, sectorSize_);
    return true;
  }

  bool write(uint32_t offset, const uint8_t* data, size_t size) override {
    ++writes_;
    if (offset + size > sectorSize_ * sectorCount_ || failWrites_) return false;
    if (!operation()) return false;
    if (tornNow_) {
      for (size_t i = 0; i < size; ++i) {
        if (tear_ == Tear::Prefix && i < tearBytes_) mem_[offset + i] &= data[i];
        if (tear_ == Tear::EvenBits) mem_[offset + i] &= static_cast<uint8_t>(data[i] | 0xAA);
      }
      return false;
    }
    for (size_t i = 0; i < size; ++i) mem_[offset + i] &= data[i];  // NOR: bits only cleared
    return true;
  }

  bool read(uint32_t offset, uint8_t* out, size_t size) override {
    if (offset + size > sectorSize_ * sectorCount_) return false;
    memcpy(out, mem_ + offset, size);
    return true;
  }

  // The power goes at the k-th operation from now (1 = the next one), tearing it.
  void cutAt(uint32_t k, Tear tear, uint32_t tearBytes) {
    cutAt_ = k;
    ops_ = 0;
    tear_ = tear;
    tearBytes_ = tearBytes;
    off_ = false;
  }
  // Every write and erase from now on fails without a change (a flash that refuses).
  void failAll(bool on) { failAll_ = on; }
  void failWrites(bool on) { failWrites_ = on; }  // writes fail, erases work
  void powerOn() {
    off_ = false;
    cutAt_ = 0;
    tornNow_ = false;
  }
  bool off() const { return off_; }
  uint32_t operations() const { return ops_; }
  uint32_t erases() const { return erases_; }
  uint32_t writes() const { return writes_; }
  uint8_t* bytes() { return mem_; }

 private:
  // False when the operation must not happen at all; sets tornNow_ for the cut one.
  bool operation() {
    tornNow_ = false;
    if (off_ || failAll_) return false;
    ++ops_;
    if (cutAt_ != 0 && ops_ == cutAt_) {
      off_ = true;
      tornNow_ = true;
    }
    return true;
  }

  uint32_t sectorSize_;
  uint32_t sectorCount_;
  uint8_t mem_[kMaxBytes];
  uint32_t cutAt_ = 0;
  uint32_t ops_ = 0;
  Tear tear_ = Tear::Nothing;
  uint32_t tearBytes_ = 0;
  bool off_ = false;
  bool tornNow_ = false;
  bool failAll_ = false;
  bool failWrites_ = false;
  uint32_t erases_ = 0;
  uint32_t writes_ = 0;
};

class ManualClock final : public hal::Clock {
 public:
  explicit ManualClock(uint32_t start = 0) : now_(start) {}
  uint32_t nowMs() override { return now_; }
  void advance(uint32_t ms) { now_ += ms; }

 private:
  uint32_t now_;
};

class RecordingRadio final : public hal::Radio {
 public:
  static constexpr size_t kMaxFrames = 16;
  struct Sent {
    uint8_t frame[64];
    size_t size;
    hal::TxParams params;
  };

  bool transmit(const uint8_t* frame, size_t size, const hal::TxParams& params) override {
    if (refuse || size > sizeof sent[0].frame) return false;
    Sent& s = sent[count % kMaxFrames];
    memcpy(s.frame, frame, size);
    s.size = size;
    s.params = params;
    ++count;
    return true;
  }
  size_t receive(uint8_t*, size_t) override { return 0; }
  const Sent& last() const { return sent[(count + kMaxFrames - 1) % kMaxFrames]; }

  Sent sent[kMaxFrames] = {};
  size_t count = 0;
  bool refuse = false;
};

}  // namespace citygate::fw::air::test
