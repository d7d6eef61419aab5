// Fakes of hal.hpp for the air node's unit tests: a radio that records its frames, and hex
// helpers (the flash and the clock: core/tests/fakes.hpp). Freestanding (no heap, no libstdc++),
// like the tests.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hal.hpp"
#include "core/tests/fakes.hpp"

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
