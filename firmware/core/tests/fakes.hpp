// Fakes of the hardware layer for the provisioning tests: a NOR flash that can lose its power at
// any byte of an erase or a write, and a UART with a scripted receive side.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hal.hpp"

namespace citygate::fw::test {

// NOR semantics (erased 0xFF, a write clears bits only, erase by sector). `budget` counts byte
// operations (an erase costs one per byte); when it runs out the power is cut: the byte being
// erased or written is left half done, and every later operation fails until power() is called.
template <uint32_t SectorSize, uint32_t Sectors>
class FakeFlash final : public hal::Flash {
 public:
  FakeFlash() { memset(bytes, 0xFF, sizeof bytes); }

  uint32_t sectorSize() const override { return SectorSize; }
  uint32_t sectorCount() const override { return Sectors; }

  bool erase(uint32_t sector) override {
    if (!powered || sector >= Sectors) return false;
    ++erases;
    for (uint32_t i = 0; i < SectorSize; ++i) {
      uint8_t& b = bytes[sector * SectorSize + i];
      if (!spend()) {
        b = static_cast<uint8_t>(b | 0xA5);  // half erased
        return false;
      }
      b = 0xFF;
    }
    return true;
  }

  bool write(uint32_t offset, const uint8_t* data, size_t size) override {
    if (!powered || offset + size > sizeof bytes) return false;
    for (size_t i = 0; i < size; ++i) {
      uint8_t& b = bytes[offset + i];
      if (!spend()) {
        b = static_cast<uint8_t>(b & (data[i] | 0x5A));  // some bits programmed
        return false;
      }
      b = static_cast<uint8_t>(b & data[i]);
    }
    return true;
  }

  bool read(uint32_t offset, uint8_t* out, size_t size) override {
    if (!powered || offset + size > sizeof bytes) return false;
    memcpy(out, bytes + offset, size);
    return true;
  }

  // Power comes back (a reset): unlimited budget again.
  void power() {
    powered = true;
    budget = -1;
  }

  uint8_t bytes[SectorSize * Sectors];
  int64_t budget = -1;  // byte operations left; -1: unlimited
  bool powered = true;
  uint32_t erases = 0;

 private:
  bool spend() {
    if (budget < 0) return true;
    if (budget == 0) {
      powered = false;
      return false;
    }
    --budget;
    return true;
  }
};

// The receive side is a script of bytes handed out `chunk` at a time; what the node writes is
// kept.
class FakeUart final : public hal::Uart {
 public:
  size_t read(uint8_t* out, size_t capacity) override {
    size_t n = rxSize - rxPos;
    if (n > capacity) n = capacity;
    if (n > chunk) n = chunk;
    memcpy(out, rx + rxPos, n);
    rxPos += n;
    return n;
  }
  bool write(const uint8_t* data, size_t size) override {
    if (txSize + size > sizeof tx) return false;
    memcpy(tx + txSize, data, size);
    txSize += size;
    return true;
  }
  uint32_t baud() const override { return 115200; }

  void send(const uint8_t* data, size_t size) {
    if (rxSize + size > sizeof rx) return;
    memcpy(rx + rxSize, data, size);
    rxSize += size;
  }
  void clear() { rxSize = rxPos = txSize = 0; }

  uint8_t rx[2048] = {};
  size_t rxSize = 0;
  size_t rxPos = 0;
  size_t chunk = 64;
  uint8_t tx[4096] = {};
  size_t txSize = 0;
};

}  // namespace citygate::fw::test
