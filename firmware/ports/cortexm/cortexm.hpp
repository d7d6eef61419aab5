// The Cortex-M port's hardware (firmware/README.md, "Ports"), for qemu-system-arm's mps2-an385
// (Cortex-M3, 25 MHz): SysTick as the clock, the CMSDK APB UARTs, a RAM-backed NOR flash, and
// the board (WFI, SYSRESETREQ). Objects are statically allocated by the node's main; there is at
// most one object per UART.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::cortexm {

constexpr uint32_t kCoreClockHz = 25000000;  // mps2-an385's SYSCLK (qemu: the same)

// A 1 ms SysTick interrupt counting milliseconds from start().
class SysTickClock final : public hal::Clock {
 public:
  void start();  // SysTick on the processor clock, 1 kHz, interrupt enabled
  uint32_t nowMs() override;
};

// A CMSDK APB UART (mps2-an385: UART0..4 at 0x40004000, 0x40005000, 0x40006000, 0x40007000,
// 0x40009000; under `qemu -nographic` UART0 is stdio). 8N1; interrupt driven both ways through
// 256-byte rings: read() takes what the receive interrupt stored (a byte that finds the ring full
// is dropped and counted), write() queues the whole buffer or nothing and the transmit interrupt
// sends it. A static CmsdkUart is constant-initialised with its vtable pointer, so it sits in
// .data: about 540 B of flash for its initial image on top of its RAM.
class CmsdkUart final : public hal::Uart {
 public:
  static constexpr size_t kRing = 256;
  static constexpr uint8_t kCount = 5;

  bool open(uint8_t index, uint32_t baud);  // false for an index without a UART or in use
  size_t read(uint8_t* out, size_t capacity) override;
  bool write(const uint8_t* data, size_t size) override;
  uint32_t baud() const override { return baud_; }
  bool txIdle() const;  // everything written has left the transmitter
  uint32_t overruns() const { return overruns_; }

  void onRx();  // interrupt handlers (ports/cortexm/cortexm.cpp)
  void onTx();

 private:
  uintptr_t base_ = 0;
  uint32_t baud_ = 0;
  uint8_t rx_[kRing] = {};
  uint8_t tx_[kRing] = {};
  volatile uint16_t rx_head_ = 0, rx_tail_ = 0;  // head: the interrupt writes; tail: read()
  volatile uint16_t tx_head_ = 0, tx_tail_ = 0;  // head: write(); tail: the interrupt sends
  volatile bool tx_busy_ = false;
  volatile uint32_t overruns_ = 0;
};

// NOR flash emulated in RAM with NOR semantics (erased = 0xFF, a write ANDs, a sector is erased
// whole): the stand-in on qemu for a real MCU's flash controller, so the flash stores run on the
// target exactly as they will on a part. Over any memory (tests), or the linker script's data
// area with dataArea().
class RamNorFlash final : public hal::Flash {
 public:
  static constexpr uint32_t kSectorSize = 4096;

  RamNorFlash(uint8_t* memory, uint32_t sectorCount) : memory_(memory), sector_count_(sectorCount) {}
  void eraseAll();

  uint32_t sectorSize() const override { return kSectorSize; }
  uint32_t sectorCount() const override { return sector_count_; }
  bool erase(uint32_t sector) override;
  bool write(uint32_t offset, const uint8_t* data, size_t size) override;
  bool read(uint32_t offset, uint8_t* out, size_t size) override;

 private:
  bool inRange(uint32_t offset, size_t size) const;

  uint8_t* memory_;
  uint32_t sector_count_;
};

// The node's data area of mps2-an385.ld (16 sectors at 0x00300000): erased the first time it is
// used after power-on (a marker word says so), kept across reset().
RamNorFlash& dataArea();

// The board: idle() sleeps in WFI until an interrupt that means work (a UART's receive) or maxMs
// (SysTick wakes it every millisecond to look at the time: start() the clock first, or idle()
// waits for an interrupt that may never come); reset() requests a system reset
// (SCB AIRCR SYSRESETREQ; qemu restarts the ELF, the data area stays).
class CortexMBoard final : public hal::Board {
 public:
  explicit CortexMBoard(hal::Clock& clock) : clock_(clock) {}
  void idle(uint32_t maxMs) override;
  [[noreturn]] void reset() override;

 private:
  hal::Clock& clock_;
};

// Interrupts off and back on around a short critical section (PRIMASK, nested correctly).
class IrqLock {
 public:
  IrqLock();
  ~IrqLock();
  IrqLock(const IrqLock&) = delete;
  IrqLock& operator=(const IrqLock&) = delete;

 private:
  uint32_t primask_;
};

}  // namespace citygate::fw::cortexm
