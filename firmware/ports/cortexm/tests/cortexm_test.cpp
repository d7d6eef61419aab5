// The Cortex-M port under qemu (mps2-an385): RamNorFlash keeps NOR semantics, the data area
// starts erased, SysTick counts milliseconds, idle() sleeps until its time, UART0 sends a line
// (qemu's stdio) with interrupts and queues all or nothing. Every wait is bounded by SysTick.
#include <string.h>

#include "core/check.hpp"
#include "ports/cortexm/cortexm.hpp"

namespace cm = citygate::fw::cortexm;
namespace hal = citygate::fw::hal;

namespace {

cm::SysTickClock& clock() {
  static cm::SysTickClock c;
  static bool started = false;
  if (!started) {
    c.start();
    started = true;
  }
  return c;
}

bool allBytes(const uint8_t* data, size_t size, uint8_t value) {
  for (size_t i = 0; i < size; ++i) {
    if (data[i] != value) return false;
  }
  return true;
}

uint8_t gMemory[2 * cm::RamNorFlash::kSectorSize];

}  // namespace

int picValue();  // tests/pic_data.cpp, built with -fPIC
const char* picPointer();

FW_TEST("start-up: .data, and a -fPIC object's GOT, are initialised from flash") {
  FW_CHECK_EQ(picValue(), 1234);
  FW_CHECK(picPointer() != nullptr && strcmp(picPointer(), "pic") == 0);
}

FW_TEST("RamNorFlash: writes clear bits, erase sets a sector, bounds") {
  cm::RamNorFlash flash(gMemory, 2);
  flash.eraseAll();
  FW_CHECK_EQ(flash.sectorSize(), 4096u);
  FW_CHECK_EQ(flash.sectorCount(), 2u);
  const uint8_t f0[] = {0xF0, 0xAA};
  const uint8_t x0f[] = {0x0F, 0xFF};
  FW_CHECK(flash.write(4094, f0, 2));
  FW_CHECK(flash.write(4094, x0f, 2));
  uint8_t got[4] = {};
  FW_CHECK(flash.read(4094, got, 4));  // across the sector boundary
  FW_CHECK(got[0] == 0x00 && got[1] == 0xAA && got[2] == 0xFF && got[3] == 0xFF);
  FW_CHECK(flash.erase(0));
  FW_CHECK(flash.read(4094, got, 2));
  FW_CHECK(allBytes(got, 2, 0xFF));
  FW_CHECK(!flash.erase(2));
  FW_CHECK(!flash.write(8192, f0, 1));
  FW_CHECK(!flash.write(0xFFFFFFFFu, f0, 2));
  FW_CHECK(!flash.read(8191, got, 2));
}

FW_TEST("dataArea: 16 sectors, erased on first use, the same object after") {
  cm::RamNorFlash& area = cm::dataArea();
  FW_CHECK_EQ(area.sectorCount(), 16u);
  static uint8_t sector[4096];
  for (uint32_t s = 0; s < area.sectorCount(); ++s) {
    FW_CHECK(area.read(s * 4096, sector, sizeof sector));
    FW_CHECK(allBytes(sector, sizeof sector, 0xFF));
  }
  const uint8_t mark[] = {0x12};
  FW_CHECK(area.write(5, mark, 1));
  uint8_t got = 0;
  FW_CHECK(cm::dataArea().read(5, &got, 1));  // not erased again
  FW_CHECK_EQ(got, 0x12);
  FW_CHECK(area.erase(0));
}

FW_TEST("SysTickClock and idle(): time passes in milliseconds, idle() waits its time") {
  cm::SysTickClock& c = clock();
  cm::CortexMBoard board(c);
  const uint32_t start = c.nowMs();
  board.idle(20);
  const uint32_t waited = hal::elapsed(start, c.nowMs());
  FW_CHECK(waited >= 20);
  FW_CHECK(waited < 2000);
}

FW_TEST("CmsdkUart: UART0 sends a line by interrupt, all or nothing") {
  cm::SysTickClock& c = clock();
  cm::CortexMBoard board(c);
  static cm::CmsdkUart uart;
  FW_CHECK(uart.open(0, 115200));
  FW_CHECK_EQ(uart.baud(), 115200u);
  static cm::CmsdkUart other;
  FW_CHECK(!other.open(0, 9600));  // UART0 is taken
  FW_CHECK(!other.open(5, 9600));  // there is no UART5
  static const char line[] = "cortexm_port: a line through UART0\n";
  FW_CHECK(uart.write(reinterpret_cast<const uint8_t*>(line), strlen(line)));
  static uint8_t big[cm::CmsdkUart::kRing];
  FW_CHECK(!uart.write(big, sizeof big));  // more than the ring holds: refused whole
  const uint32_t start = c.nowMs();
  while (!uart.txIdle() && hal::elapsed(start, c.nowMs()) < 2000) board.idle(1);
  FW_CHECK(uart.txIdle());
  uint8_t in[8];
  FW_CHECK_EQ(uart.read(in, sizeof in), 0u);  // nothing typed: read() does not wait
}
