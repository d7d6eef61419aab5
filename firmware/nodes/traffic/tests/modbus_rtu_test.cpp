// The Modbus RTU slave: CRC, parsing and exceptions, framing by silence on a fake clock.
#include "nodes/traffic/modbus_rtu.hpp"
#include "core/check.hpp"
#include "core/crc.hpp"
#include "nodes/traffic/tests/fakes.hpp"

namespace {

using namespace citygate::fw;
using namespace citygate::fw::traffic;
using FakeClock = citygate::fw::test::ManualClock;
using citygate::fw::test::FakeUart;

// A request with its CRC appended; returns the size.
size_t frame(uint8_t* out, const uint8_t* body, size_t size) {
  memcpy(out, body, size);
  const uint16_t crc = crc16Modbus(body, size);
  out[size] = static_cast<uint8_t>(crc);
  out[size + 1] = static_cast<uint8_t>(crc >> 8);
  return size + 2;
}

size_t readRequest(uint8_t* out, uint8_t unit, uint16_t address, uint16_t quantity, uint8_t function = 0x04) {
  const uint8_t body[] = {unit,
                          function,
                          static_cast<uint8_t>(address >> 8),
                          static_cast<uint8_t>(address),
                          static_cast<uint8_t>(quantity >> 8),
                          static_cast<uint8_t>(quantity)};
  return frame(out, body, sizeof body);
}

bool same(const uint8_t* a, const uint8_t* b, size_t n) {
  return memcmp(a, b, n) == 0;
}

FW_TEST("modbus: CRC-16 of the published frames") {
  const uint8_t m1[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A};
  const uint8_t m3[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD};
  const uint8_t m5[] = {0x01, 0x10, 0x30, 0x03, 0x00, 0x01, 0xFE, 0xC9};
  FW_CHECK_EQ(crc16Modbus(m1, 6), 0x0A84);
  FW_CHECK_EQ(crc16Modbus(m3, 6), 0xCDC5);
  FW_CHECK_EQ(crc16Modbus(m5, 6), 0xC9FE);
  FW_CHECK_EQ(crc16Modbus(m1, 8), 0);  // over a whole frame: 0
  uint8_t req[8];
  readRequest(req, 1, 0, 1);
  const uint8_t published[] = {0x01, 0x04, 0x00, 0x00, 0x00, 0x01, 0x31, 0xCA};
  FW_CHECK(same(req, published, 8));
}

FW_TEST("modbus: a read of input registers is answered with them") {
  uint16_t regs[36] = {};
  for (uint16_t i = 0; i < 36; ++i) regs[i] = static_cast<uint16_t>(0x0100 * i + i);
  uint8_t req[8];
  readRequest(req, 7, 3, 2);
  const Request r = parseRequest(req, 8, 7, 36);
  FW_CHECK(r.refusal == Refusal::None);
  FW_CHECK(r.reply());
  FW_CHECK_EQ(r.address, 3);
  FW_CHECK_EQ(r.quantity, 2);
  uint8_t out[256];
  const size_t n = buildReply(r, regs, 36, out, sizeof out);
  FW_CHECK_EQ(n, 9u);
  const uint8_t want[] = {0x07, 0x04, 0x04, 0x03, 0x03, 0x04, 0x04};
  FW_CHECK(same(out, want, sizeof want));
  FW_CHECK_EQ(crc16Modbus(out, n), 0);
  // the whole map in one read, and the last register alone
  readRequest(req, 7, 0, 36);
  FW_CHECK(parseRequest(req, 8, 7, 36).refusal == Refusal::None);
  FW_CHECK_EQ(buildReply(parseRequest(req, 8, 7, 36), regs, 36, out, sizeof out), 3u + 72u + 2u);
  readRequest(req, 7, 35, 1);
  FW_CHECK(parseRequest(req, 8, 7, 36).refusal == Refusal::None);
  // too small a buffer: nothing
  FW_CHECK_EQ(buildReply(parseRequest(req, 8, 7, 36), regs, 36, out, 6), 0u);
}

FW_TEST("modbus: exceptions 01, 02 and 03 with their published bytes") {
  uint16_t regs[36] = {};
  uint8_t out[256];
  // FC 0x03 (M1: read 1 holding register of unit 1): the node has none -> 01
  const uint8_t m1[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A};
  Request r = parseRequest(m1, sizeof m1, 1, 36);
  FW_CHECK(r.refusal == Refusal::IllegalFunction);
  FW_CHECK_EQ(r.exceptionCode(), 0x01);
  const uint8_t ex01[] = {0x01, 0x83, 0x01, 0x80, 0xF0};
  FW_CHECK_EQ(buildReply(r, regs, 36, out, sizeof out), 5u);
  FW_CHECK(same(out, ex01, 5));
  // FC 0x10 (M4, a write): 01 too, whatever its length
  const uint8_t m4[] = {0x01, 0x10, 0x30, 0x03, 0x00, 0x01, 0x02, 0x00, 0x01, 0x57, 0xA0};
  FW_CHECK(parseRequest(m4, sizeof m4, 1, 36).refusal == Refusal::IllegalFunction);
  // past the map -> 02
  uint8_t req[8];
  readRequest(req, 1, 36, 1);
  r = parseRequest(req, 8, 1, 36);
  FW_CHECK(r.refusal == Refusal::IllegalAddress);
  const uint8_t ex02[] = {0x01, 0x84, 0x02, 0xC2, 0xC1};
  FW_CHECK_EQ(buildReply(r, regs, 36, out, sizeof out), 5u);
  FW_CHECK(same(out, ex02, 5));
  readRequest(req, 1, 30, 7);
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::IllegalAddress);
  readRequest(req, 1, 0xFFFF, 2);
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::IllegalAddress);
  // quantity 0 or over 125 -> 03 (before the address is looked at)
  readRequest(req, 1, 0, 0);
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::IllegalValue);
  readRequest(req, 1, 0, 126);
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::IllegalValue);
  readRequest(req, 1, 40, 126);
  r = parseRequest(req, 8, 1, 36);
  FW_CHECK(r.refusal == Refusal::IllegalValue);
  FW_CHECK_EQ(r.exceptionCode(), 0x03);
  FW_CHECK_EQ(buildReply(r, regs, 36, out, sizeof out), 5u);
  FW_CHECK_EQ(out[1], 0x84);
  FW_CHECK_EQ(out[2], 0x03);
  readRequest(req, 1, 0, 125);
  FW_CHECK(parseRequest(req, 8, 1, 200).refusal == Refusal::None);
  // FC 0x04 with a PDU of the wrong length -> 03
  const uint8_t longBody[] = {0x01, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00};
  uint8_t longReq[9];
  frame(longReq, longBody, sizeof longBody);
  FW_CHECK(parseRequest(longReq, 9, 1, 36).refusal == Refusal::IllegalValue);
}

FW_TEST("modbus: no reply to a bad CRC, a broadcast, another unit, a fragment") {
  uint16_t regs[36] = {};
  uint8_t out[256];
  uint8_t req[8];
  readRequest(req, 1, 0, 1);
  req[7] ^= 0x01;
  Request r = parseRequest(req, 8, 1, 36);
  FW_CHECK(r.refusal == Refusal::BadCrc);
  FW_CHECK(!r.reply());
  FW_CHECK_EQ(buildReply(r, regs, 36, out, sizeof out), 0u);
  readRequest(req, 0, 0, 1);
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::Broadcast);
  readRequest(req, 2, 0, 1);
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::OtherUnit);
  readRequest(req, 2, 0, 1, 0x03);  // another unit's unsupported function: not ours to refuse
  FW_CHECK(parseRequest(req, 8, 1, 36).refusal == Refusal::OtherUnit);
  FW_CHECK(parseRequest(req, 3, 1, 36).refusal == Refusal::TooShort);
  FW_CHECK(parseRequest(req, 0, 1, 36).refusal == Refusal::TooShort);
  FW_CHECK(parseRequest(req, 257, 1, 36).refusal == Refusal::TooLong);
}

FW_TEST("modbus: t3.5 from the baud rate") {
  FW_CHECK_EQ(t35Micros(9600), 4011u);
  FW_CHECK_EQ(t35Micros(19200), 2006u);
  FW_CHECK_EQ(t35Micros(38400), 1750u);
  FW_CHECK_EQ(t35Micros(115200), 1750u);
  FW_CHECK_EQ(t35Micros(1200), 32084u);
  FW_CHECK_EQ(frameGapMs(19200), 4u);
  FW_CHECK_EQ(frameGapMs(9600), 6u);
  FW_CHECK_EQ(frameGapMs(115200), 3u);
}

FW_TEST("modbus: a frame ends after 3.5 characters of silence, not before") {
  FakeClock clock;
  FakeUart uart(19200);  // gap: 4 ms on the millisecond clock
  uint16_t regs[36] = {};
  regs[5] = 0xBEEF;
  RtuSlave slave(uart, clock, 9, regs, 36);
  uint8_t req[8];
  readRequest(req, 9, 5, 1);
  clock.now = 100;
  uart.arrive(req, 3);
  FW_CHECK_EQ(slave.poll(), 4u);
  clock.now = 103;  // 3 ms: still inside the frame
  uart.arrive(req + 3, 5);
  FW_CHECK(slave.poll() > 0);
  FW_CHECK_EQ(uart.txSize, 0u);
  clock.now = 106;
  FW_CHECK(slave.poll() > 0);
  FW_CHECK_EQ(uart.txSize, 0u);
  clock.now = 107;  // 4 ms after the last byte
  FW_CHECK_EQ(slave.poll(), 0u);
  FW_CHECK_EQ(uart.txSize, 7u);
  FW_CHECK_EQ(uart.tx[3], 0xBE);
  FW_CHECK_EQ(uart.tx[4], 0xEF);
  FW_CHECK_EQ(slave.counters().answered, 1u);
  FW_CHECK_EQ(slave.counters().frames, 1u);
}

FW_TEST("modbus: a silence inside a request splits it into two refused fragments") {
  FakeClock clock;
  FakeUart uart(9600);  // gap: 6 ms
  uint16_t regs[36] = {};
  RtuSlave slave(uart, clock, 1, regs, 36);
  uint8_t req[8];
  readRequest(req, 1, 0, 1);
  clock.now = 0;
  uart.arrive(req, 4);
  slave.poll();
  clock.now = 6;  // a silence of t3.5 in the middle
  uart.arrive(req + 4, 4);
  slave.poll();
  clock.now = 20;
  slave.poll();
  FW_CHECK_EQ(uart.txSize, 0u);
  FW_CHECK_EQ(slave.counters().frames, 2u);
  FW_CHECK_EQ(slave.counters().refused[static_cast<size_t>(Refusal::BadCrc)], 2u);
  // back-to-back requests separated by the silence are two answers
  uart.arrive(req, 8);
  slave.poll();
  clock.now = 26;
  uart.arrive(req, 8);
  slave.poll();
  clock.now = 40;
  slave.poll();
  FW_CHECK_EQ(uart.writes, 2u);
  FW_CHECK_EQ(slave.counters().answered, 2u);
}

FW_TEST("modbus: a request run together with another station's frame is found at its tail") {
  FakeClock clock;
  FakeUart uart(19200);
  uint16_t regs[36] = {};
  regs[0] = 0x1234;
  RtuSlave slave(uart, clock, 4, regs, 36);
  // unit 9's answer (1 register) and then, 2 ms later (t3.5 at 19200, under the slave's 4 ms), a
  // request to this node
  uint8_t other[7];
  const uint8_t otherBody[] = {9, 0x04, 2, 0xAB, 0xCD};
  frame(other, otherBody, sizeof otherBody);
  uint8_t req[8];
  // From `at`: unit 9's answer, the request 2 ms later, then a silence.
  auto runTogether = [&](uint32_t at) {
    clock.now = at;
    uart.arrive(other, sizeof other);
    slave.poll();
    clock.now = at + 2;
    uart.arrive(req, sizeof req);
    slave.poll();
    clock.now = at + 10;
    slave.poll();
  };
  readRequest(req, 4, 0, 1);
  runTogether(0);
  FW_CHECK_EQ(slave.counters().frames, 1u);
  FW_CHECK_EQ(slave.counters().tailRequests, 1u);
  FW_CHECK_EQ(slave.counters().answered, 1u);
  FW_CHECK_EQ(uart.txSize, 7u);
  FW_CHECK_EQ(uart.tx[3], 0x12);
  // the same with a request to another unit at the tail: nothing
  uart.clearTx();
  readRequest(req, 5, 0, 1);
  runTogether(10);
  FW_CHECK_EQ(uart.txSize, 0u);
  FW_CHECK_EQ(slave.counters().tailRequests, 1u);
}

FW_TEST("modbus: every refusal has its counter, and an overlong frame is dropped whole") {
  FakeClock clock;
  FakeUart uart(19200);
  uint16_t regs[36] = {};
  RtuSlave slave(uart, clock, 1, regs, 36);
  uint8_t req[8];
  uint32_t t = 0;
  auto send = [&](const uint8_t* bytes, size_t n) {
    uart.arrive(bytes, n);
    slave.poll();
    t += 10;
    clock.now = t;
    slave.poll();
  };
  readRequest(req, 1, 0, 1);
  req[6] ^= 0xFF;
  send(req, 8);
  readRequest(req, 0, 0, 1);
  send(req, 8);
  readRequest(req, 3, 0, 1);
  send(req, 8);
  readRequest(req, 1, 0, 1, 0x03);
  send(req, 8);
  readRequest(req, 1, 0, 0);
  send(req, 8);
  readRequest(req, 1, 36, 1);
  send(req, 8);
  send(req, 2);
  uint8_t big[300];
  for (size_t i = 0; i < sizeof big; ++i) big[i] = static_cast<uint8_t>(i);
  send(big, sizeof big);
  readRequest(req, 1, 0, 36);
  send(req, 8);
  const SlaveCounters& c = slave.counters();
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::BadCrc)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::Broadcast)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::OtherUnit)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::IllegalFunction)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::IllegalValue)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::IllegalAddress)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::TooShort)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::TooLong)], 1u);
  FW_CHECK_EQ(c.refused[static_cast<size_t>(Refusal::None)], 1u);
  FW_CHECK_EQ(c.exceptions, 3u);
  FW_CHECK_EQ(c.answered, 1u);
  FW_CHECK_EQ(c.frames, 9u);
  // a UART that refuses the reply is counted too
  uart.refuseWrites = true;
  send(req, 8);
  FW_CHECK_EQ(slave.counters().sendFailures, 1u);
}

}  // namespace
