// The Cortex-M port's hardware (cortexm.hpp).
#include "ports/cortexm/cortexm.hpp"

#include <string.h>

namespace citygate::fw::cortexm {
namespace {

template <typename T = uint32_t>
volatile T& reg(uintptr_t address) {
  return *reinterpret_cast<volatile T*>(address);
}

// System control space.
constexpr uintptr_t kSysTickCtrl = 0xE000E010, kSysTickLoad = 0xE000E014, kSysTickVal = 0xE000E018;
constexpr uintptr_t kNvicIser = 0xE000E100;
constexpr uintptr_t kAircr = 0xE000ED0C;

// CMSDK APB UART registers and bits.
constexpr uintptr_t kData = 0x00, kState = 0x04, kCtrl = 0x08, kIntStatus = 0x0C, kBaudDiv = 0x10;
constexpr uint32_t kStateTxFull = 1u << 0, kStateRxFull = 1u << 1;
constexpr uint32_t kCtrlTxEn = 1u << 0, kCtrlRxEn = 1u << 1, kCtrlTxInt = 1u << 2, kCtrlRxInt = 1u << 3;
constexpr uint32_t kIntTx = 1u << 0, kIntRx = 1u << 1;
constexpr uintptr_t kUartBase[CmsdkUart::kCount] = {0x40004000, 0x40005000, 0x40006000, 0x40007000, 0x40009000};
constexpr uint8_t kUartRxIrq[CmsdkUart::kCount] = {0, 2, 4, 18, 20};  // TX: one more

volatile uint32_t gMs = 0;
volatile bool gWake = false;  // set by an interrupt that means work, cleared by idle()
CmsdkUart* gUarts[CmsdkUart::kCount] = {};

uint16_t next(uint16_t index) {
  return static_cast<uint16_t>((index + 1) % CmsdkUart::kRing);
}

void enableIrq(uint8_t irq) {
  reg(kNvicIser + 4u * (irq / 32u)) = 1u << (irq % 32u);
}

}  // namespace

// --- IrqLock ---

IrqLock::IrqLock() {
  asm volatile("mrs %0, primask" : "=r"(primask_));
  asm volatile("cpsid i" ::: "memory");
}

IrqLock::~IrqLock() {
  asm volatile("msr primask, %0" ::"r"(primask_) : "memory");
}

// --- SysTickClock ---

void SysTickClock::start() {
  reg(kSysTickLoad) = kCoreClockHz / 1000u - 1u;
  reg(kSysTickVal) = 0;
  reg(kSysTickCtrl) = 0x7;  // processor clock, interrupt, enable
}

uint32_t SysTickClock::nowMs() {
  return gMs;
}

// --- CmsdkUart ---

bool CmsdkUart::open(uint8_t index, uint32_t baud) {
  if (index >= kCount || baud == 0) return false;
  {
    IrqLock lock;
    if (gUarts[index] != nullptr && gUarts[index] != this) return false;
    gUarts[index] = this;
  }
  base_ = kUartBase[index];
  baud_ = baud;
  rx_head_ = 0;
  rx_tail_ = 0;
  tx_head_ = 0;
  tx_tail_ = 0;
  tx_busy_ = false;
  reg(base_ + kBaudDiv) = kCoreClockHz / baud;  // at least 16: any baud up to 1.5 Mbit/s
  reg(base_ + kIntStatus) = kIntTx | kIntRx;    // write 1 to clear
  reg(base_ + kCtrl) = kCtrlTxEn | kCtrlRxEn | kCtrlTxInt | kCtrlRxInt;
  enableIrq(kUartRxIrq[index]);
  enableIrq(static_cast<uint8_t>(kUartRxIrq[index] + 1));
  return true;
}

size_t CmsdkUart::read(uint8_t* out, size_t capacity) {
  size_t n = 0;
  uint16_t tail = rx_tail_;
  const uint16_t head = rx_head_;  // one read: the interrupt only moves it forward
  while (n < capacity && tail != head) {
    out[n++] = rx_[tail];
    tail = next(tail);
  }
  rx_tail_ = tail;
  return n;
}

bool CmsdkUart::write(const uint8_t* data, size_t size) {
  if (base_ == 0) return false;
  IrqLock lock;
  const size_t used = (tx_head_ + kRing - tx_tail_) % kRing;
  if (size > kRing - 1 - used) return false;
  uint16_t head = tx_head_;
  for (size_t i = 0; i < size; ++i) {
    tx_[head] = data[i];
    head = next(head);
  }
  tx_head_ = head;
  if (!tx_busy_ && tx_tail_ != tx_head_) {
    // The transmitter is idle: the first byte starts it, the interrupt sends the rest.
    tx_busy_ = true;
    reg(base_ + kData) = tx_[tx_tail_];
    tx_tail_ = next(tx_tail_);
  }
  return true;
}

bool CmsdkUart::txIdle() const {
  return !tx_busy_;
}

void CmsdkUart::onRx() {
  reg(base_ + kIntStatus) = kIntRx;
  while ((reg(base_ + kState) & kStateRxFull) != 0) {
    const uint8_t byte = static_cast<uint8_t>(reg(base_ + kData));
    const uint16_t head = rx_head_;
    if (next(head) == rx_tail_) {
      overruns_ = overruns_ + 1;
    } else {
      rx_[head] = byte;
      rx_head_ = next(head);
    }
  }
  gWake = true;
}

void CmsdkUart::onTx() {
  reg(base_ + kIntStatus) = kIntTx;
  if ((reg(base_ + kState) & kStateTxFull) != 0) return;
  if (tx_tail_ == tx_head_) {
    tx_busy_ = false;
    return;
  }
  reg(base_ + kData) = tx_[tx_tail_];
  tx_tail_ = next(tx_tail_);
}

// --- RamNorFlash ---

void RamNorFlash::eraseAll() {
  memset(memory_, 0xFF, static_cast<size_t>(sector_count_) * kSectorSize);
}

bool RamNorFlash::inRange(uint32_t offset, size_t size) const {
  const uint32_t end = sector_count_ * kSectorSize;
  return offset <= end && size <= end - offset;
}

bool RamNorFlash::erase(uint32_t sector) {
  if (sector >= sector_count_) return false;
  memset(memory_ + static_cast<size_t>(sector) * kSectorSize, 0xFF, kSectorSize);
  return true;
}

bool RamNorFlash::write(uint32_t offset, const uint8_t* data, size_t size) {
  if (!inRange(offset, size)) return false;
  for (size_t i = 0; i < size; ++i) memory_[offset + i] &= data[i];  // programming only clears bits
  return true;
}

bool RamNorFlash::read(uint32_t offset, uint8_t* out, size_t size) {
  if (!inRange(offset, size)) return false;
  memcpy(out, memory_ + offset, size);
  return true;
}

}  // namespace citygate::fw::cortexm

extern "C" uint8_t __nor_start[];
extern "C" uint8_t __nor_sector_count[];  // an absolute symbol: its address is the count
extern "C" uint32_t __nor_marker[2];

namespace citygate::fw::cortexm {

RamNorFlash& dataArea() {
  static RamNorFlash flash(__nor_start, static_cast<uint32_t>(reinterpret_cast<uintptr_t>(__nor_sector_count)));
  constexpr uint32_t kErased = 0x4E4F5246;  // "NORF"
  if (__nor_marker[0] != kErased || __nor_marker[1] != ~kErased) {
    flash.eraseAll();  // RAM powers up with anything in it; the part leaves the factory erased
    __nor_marker[0] = kErased;
    __nor_marker[1] = ~kErased;
  }
  return flash;
}

// --- CortexMBoard ---

void CortexMBoard::idle(uint32_t maxMs) {
  const uint32_t start = clock_.nowMs();
  for (;;) {
    IrqLock lock;
    // Interrupts are off between the test and WFI: one that comes in between is pending and ends
    // the WFI at once; it runs when the lock is released.
    if (gWake || hal::elapsed(start, clock_.nowMs()) >= maxMs) break;
    asm volatile("wfi" ::: "memory");
  }
  gWake = false;
}

void CortexMBoard::reset() {
  asm volatile("dsb" ::: "memory");
  reg(kAircr) = 0x05FA0004u;  // VECTKEY | SYSRESETREQ
  asm volatile("dsb" ::: "memory");
  for (;;) asm volatile("wfi");
}

}  // namespace citygate::fw::cortexm

// --- interrupt handlers (startup.c's vector table) ---

namespace cm = citygate::fw::cortexm;

extern "C" void SysTick_Handler() {
  cm::gMs = cm::gMs + 1;
}

#define CITYGATE_UART_HANDLERS(n)                        \
  extern "C" void UART##n##RX_Handler() {                \
    if (cm::gUarts[n] != nullptr) cm::gUarts[n]->onRx(); \
  }                                                      \
  extern "C" void UART##n##TX_Handler() {                \
    if (cm::gUarts[n] != nullptr) cm::gUarts[n]->onTx(); \
  }
CITYGATE_UART_HANDLERS(0)
CITYGATE_UART_HANDLERS(1)
CITYGATE_UART_HANDLERS(2)
CITYGATE_UART_HANDLERS(3)
CITYGATE_UART_HANDLERS(4)
