// UART0's receive path under qemu: ctest "firmware: cortexm_uart_rx" feeds a line to qemu's stdin
// (UART0 with -nographic) and the test waits, at most 5 s by SysTick, for it to arrive through the
// receive interrupt.
#include <string.h>

#include "core/check.hpp"
#include "ports/cortexm/cortexm.hpp"

namespace cm = citygate::fw::cortexm;
namespace hal = citygate::fw::hal;

FW_TEST("CmsdkUart: UART0 receives a line by interrupt, idle() wakes on it") {
  static cm::SysTickClock clock;
  clock.start();
  cm::CortexMBoard board(clock);
  static cm::CmsdkUart uart;
  FW_CHECK(uart.open(0, 115200));
  static const char expected[] = "ping from the host\n";
  char got[sizeof expected] = {};
  size_t n = 0;
  const uint32_t start = clock.nowMs();
  while (n < sizeof expected - 1 && hal::elapsed(start, clock.nowMs()) < 5000) {
    board.idle(1000);
    n += uart.read(reinterpret_cast<uint8_t*>(got) + n, sizeof expected - 1 - n);
  }
  FW_CHECK_EQ(n, sizeof expected - 1);
  FW_CHECK(memcmp(got, expected, sizeof expected - 1) == 0);
  FW_CHECK_EQ(uart.overruns(), 0u);
}
