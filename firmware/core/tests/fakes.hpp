// Fakes of the hardware layer for the node tests: a NOR flash in RAM that can lose its power at any
// write or erase or at any byte of one, a UART with a scripted receive side that keeps what the
// node writes, and a clock the test sets. Freestanding (no heap, no libstdc++), like the tests.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hal.hpp"

namespace citygate::fw::test {

// NOR semantics: erased 0xFF, a write clears bits only, erase by sector. Two ways to cut the
// power, after which every write and erase fails and changes nothing until powerOn():
// - cutAt(k, tear, n): at the k-th write or erase from now, torn as `tear` says;
// - cutAtByte(n): at the n-th byte operation from now (an erase costs one per byte), that byte
//   left half done, the bytes before it done.
// Reads keep working (they show what the cells hold).
class FakeFlash final : public hal::Flash {
 public:
  static constexpr uint32_t kMaxBytes = 8 * 256;

  // What a write or erase cut by cutAt() leaves.
  enum class Tear : uint8_t {
    Nothing,   // no change
    Prefix,    // the first `tearBytes` bytes were programmed / erased
    EvenBits,  // a write cleared only the bits of even positions (a half-programmed cell)
  };

  // A flash larger than kMaxBytes has no sectors (every operation fails).
  FakeFlash(uint32_t sectorSize, uint32_t sectorCount)
      : sectorSize_(sectorSize), sectorCount_(sectorSize * sectorCount <= kMaxBytes ? sectorCount : 0) {
    reset();
  }

  uint32_t sectorSize() const override { return sectorSize_; }
  uint32_t sectorCount() const override { return sectorCount_; }
  uint32_t size() const { return sectorSize_ * sectorCount_; }

  bool erase(uint32_t sector) override {
    ++erases_;
    if (sector >= sectorCount_ || !begin()) return false;
    uint8_t* p = mem_ + sector * sectorSize_;
    for (uint32_t i = 0; i < sectorSize_; ++i) {
      if (torn_ && !(tear_ == Tear::Prefix && i < tearBytes_)) return false;
      if (!spendByte()) {
        p[i] = static_cast<uint8_t>(p[i] | 0xA5);  // half erased
        return false;
      }
      p[i] = 0xFF;
    }
    return !torn_;
  }

  bool write(uint32_t offset, const uint8_t* data, size_t size) override {
    ++writes_;
    if (offset + size > this->size() || failWrites_ || !begin()) return false;
    uint8_t* p = mem_ + offset;
    for (size_t i = 0; i < size; ++i) {
      if (torn_ && tear_ == Tear::EvenBits) {
        p[i] = static_cast<uint8_t>(p[i] & (data[i] | 0xAA));
        continue;
      }
      if (torn_ && !(tear_ == Tear::Prefix && i < tearBytes_)) return false;
      if (!spendByte()) {
        p[i] = static_cast<uint8_t>(p[i] & (data[i] | 0x5A));  // some bits programmed
        return false;
      }
      p[i] = static_cast<uint8_t>(p[i] & data[i]);  // NOR: bits only cleared
    }
    return !torn_;
  }

  bool read(uint32_t offset, uint8_t* out, size_t size) override {
    if (offset + size > this->size()) return false;
    memcpy(out, mem_ + offset, size);
    return true;
  }

  // The power goes at the k-th write or erase from now (1 = the next one), tearing it.
  void cutAt(uint32_t k, Tear tear, uint32_t tearBytes) {
    powerOn();
    cutAt_ = k;
    tear_ = tear;
    tearBytes_ = tearBytes;
  }
  // The power goes at the n-th byte operation from now (0 = the next one), leaving it half done.
  void cutAtByte(uint32_t n) {
    powerOn();
    byteBudget_ = n;
  }
  // Every write and erase from now on fails without a change (a flash that refuses).
  void failAll(bool on) { failAll_ = on; }
  void failWrites(bool on) { failWrites_ = on; }  // writes fail, erases work
  // The power comes back (a reset); no cut pending.
  void powerOn() {
    off_ = false;
    torn_ = false;
    cutAt_ = 0;
    ops_ = 0;
    byteBudget_ = -1;
  }
  // As new: erased, powered, nothing failing, counters at zero.
  void reset() {
    memset(mem_, 0xFF, sizeof mem_);
    powerOn();
    failAll_ = failWrites_ = false;
    erases_ = writes_ = byteOps_ = 0;
  }

  bool off() const { return off_; }
  uint32_t operations() const { return ops_; }   // writes and erases since the last cutAt()
  uint32_t erases() const { return erases_; }    // erase calls, done or not
  uint32_t writes() const { return writes_; }    // write calls, done or not
  uint32_t byteOps() const { return byteOps_; }  // bytes erased or written
  uint8_t* bytes() { return mem_; }

 private:
  // False when the operation cannot start (the power is off, the flash refuses); marks the one
  // cutAt() cuts.
  bool begin() {
    torn_ = false;
    if (off_ || failAll_) return false;
    ++ops_;
    if (cutAt_ != 0 && ops_ == cutAt_) {
      off_ = true;
      torn_ = true;
    }
    return true;
  }
  // False when cutAtByte() cuts the power at this byte.
  bool spendByte() {
    if (byteBudget_ == 0) {
      off_ = true;
      return false;
    }
    if (byteBudget_ > 0) --byteBudget_;
    ++byteOps_;
    return true;
  }

  uint32_t sectorSize_;
  uint32_t sectorCount_;
  uint8_t mem_[kMaxBytes];
  uint32_t cutAt_ = 0;
  uint32_t ops_ = 0;
  Tear tear_ = Tear::Nothing;
  uint32_t tearBytes_ = 0;
  int64_t byteBudget_ = -1;  // bytes before the cut; -1: no cut
  bool off_ = false;
  bool torn_ = false;
  bool failAll_ = false;
  bool failWrites_ = false;
  uint32_t erases_ = 0;
  uint32_t writes_ = 0;
  uint32_t byteOps_ = 0;
};

// The receive side is a script of bytes handed out at most `chunk` at a time; what the node
// writes is kept.
class FakeUart final : public hal::Uart {
 public:
  explicit FakeUart(uint32_t baud = 115200) : baud_(baud) {}

  size_t read(uint8_t* out, size_t capacity) override {
    size_t n = rxSize - rxPos;
    if (n > capacity) n = capacity;
    if (n > chunk) n = chunk;
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

  // Bytes for the node to receive (dropped when the script is full).
  void arrive(const uint8_t* data, size_t size) {
    if (rxSize + size > sizeof rx) return;
    memcpy(rx + rxSize, data, size);
    rxSize += size;
  }
  void clearTx() { txSize = writes = 0; }
  void clear() {
    rxSize = rxPos = 0;
    clearTx();
  }

  uint8_t rx[2048] = {};
  size_t rxSize = 0;
  size_t rxPos = 0;
  size_t chunk = SIZE_MAX;
  uint8_t tx[4096] = {};
  size_t txSize = 0;
  size_t writes = 0;
  bool refuseWrites = false;

 private:
  uint32_t baud_;
};

// A clock the test sets (`now`) or moves on.
class ManualClock final : public hal::Clock {
 public:
  explicit ManualClock(uint32_t start = 0) : now(start) {}
  uint32_t nowMs() override { return now; }
  void advance(uint32_t ms) { now += ms; }

  uint32_t now;
};

}  // namespace citygate::fw::test
