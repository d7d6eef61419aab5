// Fuzz target: the traffic node's Modbus RTU slave (firmware/nodes/traffic/modbus_rtu.hpp), with
// whatever arrives on its RS-485 line. The first byte is the node's unit id; the rest is the
// line, parsed whole as one frame (parseRequest/buildReply) and then fed to the slave in pieces
// whose gaps (silence or not) the bytes themselves choose. Checks: a reply only to the node's own
// unit, a CRC that checks, a normal reply exactly as long as the quantity asked, exception codes
// 01..03 only, the registers read back as served.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/crc.hpp"
#include "nodes/traffic/modbus_rtu.hpp"
#include "nodes/traffic/registers.hpp"
#include "nodes/traffic/tests/fakes.hpp"

using namespace citygate::fw;
using namespace citygate::fw::traffic;

namespace {

void checkReply(const uint8_t* out, size_t n, uint8_t unit, const uint16_t* regs, const Request& r) {
  if (n < 5 || crc16Modbus(out, n) != 0 || out[0] != unit || unit == 0) __builtin_trap();
  if (out[1] & 0x80) {
    if (n != 5 || out[2] < 1 || out[2] > 3) __builtin_trap();
    return;
  }
  if (out[1] != 0x04 || n != 5u + 2u * r.quantity || out[2] != 2 * r.quantity) __builtin_trap();
  for (uint16_t i = 0; i < r.quantity; ++i) {
    const uint16_t v = static_cast<uint16_t>((out[3 + 2 * i] << 8) | out[4 + 2 * i]);
    if (v != regs[r.address + i]) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t unit = data[0];
  const uint8_t* line = data + 1;
  const size_t lineSize = size - 1;
  uint16_t regs[kRegisterCount];
  for (uint16_t i = 0; i < kRegisterCount; ++i) regs[i] = static_cast<uint16_t>(0x1111u * i + 7u);

  // The whole input as one frame.
  const Request r = parseRequest(line, lineSize, unit, kRegisterCount);
  uint8_t out[kMaxFrame];
  const size_t n = buildReply(r, regs, kRegisterCount, out, sizeof out);
  if (n > 0) {
    if (!r.reply() || line[0] != unit) __builtin_trap();
    checkReply(out, n, unit, regs, r);
  } else if (r.reply()) {
    __builtin_trap();  // a request to answer with no answer built
  }

  // The same bytes on the line: each byte's low bit says whether a silence comes before the next.
  citygate::fw::test::ManualClock clock;
  citygate::fw::test::FakeUart uart(19200);
  RtuSlave slave(uart, clock, unit == 0 ? 1 : unit, regs, kRegisterCount);
  size_t start = 0;
  for (size_t i = 0; i < lineSize && i < sizeof uart.rx; ++i) {
    if ((line[i] & 1) != 0 || i + 1 == lineSize) {
      uart.arrive(line + start, i + 1 - start);
      slave.poll();
      clock.now += (line[i] & 1) != 0 ? frameGapMs(uart.baud()) : 1;
      slave.poll();
      start = i + 1;
    }
  }
  clock.now += 100;
  slave.poll();
  const SlaveCounters& c = slave.counters();
  uint32_t refused = 0;
  for (uint32_t k : c.refused) refused += k;
  if (refused != c.frames || c.answered + c.exceptions + c.sendFailures > c.frames) __builtin_trap();
  return 0;
}
