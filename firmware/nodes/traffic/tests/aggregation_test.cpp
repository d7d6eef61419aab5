// Lane aggregation and the register image: hand-worked periods, exact register values, and the
// whole node (detectors -> aggregation -> Modbus) on fakes.
#include "core/check.hpp"
#include "core/crc.hpp"
#include "nodes/traffic/aggregator.hpp"
#include "nodes/traffic/passage_queue.hpp"
#include "nodes/traffic/registers.hpp"
#include "nodes/traffic/tests/fakes.hpp"
#include "nodes/traffic/traffic_node.hpp"
#include "nodes/traffic/traffic_provisioning.hpp"

namespace {

using namespace citygate::fw;
using namespace citygate::fw::traffic;
using FakeClock = citygate::fw::test::ManualClock;
using citygate::fw::test::FakeUart;
using citygate::fw::traffic::test::FakeDetectors;

constexpr uint32_t kStart = 1000;  // the node's clock when it starts
constexpr uint32_t kPeriod = 60000;

hal::Passage passage(uint8_t lane, uint32_t leftAfterStart, uint32_t occupiedMs, uint16_t speed, uint16_t length) {
  return {lane, kStart + leftAfterStart, occupiedMs, speed, length};
}

uint32_t u32(const uint16_t* regs, uint16_t address) {
  return (static_cast<uint32_t>(regs[address]) << 16) | regs[address + 1];
}

// Period 1 (0 .. 60 s after the start), worked by hand:
//   lane 1: left 10.0 s (occupied 400 ms, 50.0 km/h, 450 cm), 25.0 s (300, 62.0, 420),
//           40.0 s (500, 45.5, 1210)
//     intensity 3; occupancy 1200/60000 = 2.0 % -> 20; speed 1575/3 = 52.5 km/h -> 525;
//     length 2080/3 = 693.3 cm -> 693; arrivals 9.6, 24.7, 39.5 s: headway 29.9/2 = 14.95 s -> 150
//   lane 2: left 30.0 s (250 ms, 100.0 km/h, 500 cm)
//     intensity 1; occupancy 250/60000 = 0.4167 % -> 4; speed 1000; length 500; headway n/a
//   lane 3: nothing: intensity 0, occupancy 0, averages n/a
//   lane 4: left 59.999 s (2000 ms, 9.0 km/h, 500 cm)
//     intensity 1; occupancy 2000/60000 = 3.333 % -> 33; speed 90; length 500
// Period 2 (60 .. 120 s):
//   lane 1: left 61.0, 71.0, 81.0, 91.05 s, each occupied 1000 ms (30.0 km/h, 400 cm):
//     arrivals 60.0, 70.0, 80.0, 90.05 s: headway 30.05/3 = 10.0167 s -> 100; occupancy
//     4000/60000 = 6.667 % -> 67
//   lane 4: left 60.2 s after 500 ms on the loop: 200 ms of it in period 2 -> 3.3 ‰ -> 3
void period1(FakeDetectors& d) {
  d.add(passage(1, 10000, 400, 500, 450));
  d.add(passage(1, 25000, 300, 620, 420));
  d.add(passage(2, 30000, 250, 1000, 500));
  d.add(passage(1, 40000, 500, 455, 1210));
  d.add(passage(4, 59999, 2000, 90, 500));
}
void period2(FakeDetectors& d) {
  d.add(passage(4, 60200, 500, 200, 450));
  d.add(passage(1, 61000, 1000, 300, 400));
  d.add(passage(1, 71000, 1000, 300, 400));
  d.add(passage(1, 81000, 1000, 300, 400));
  d.add(passage(1, 91050, 1000, 300, 400));
}

FW_TEST("aggregation: the hand-worked first period, register by register") {
  FakeClock clock;
  FakeDetectors det(clock);
  period1(det);
  Aggregator agg;
  agg.start(kStart, kPeriod, 0x0F);
  clock.now = kStart + kPeriod - 1;
  hal::Passage p{};
  while (det.next(p)) FW_CHECK(agg.add(p) == Aggregator::Refusal::None);
  FW_CHECK(!agg.advance(clock.now));
  FW_CHECK(agg.completed() == nullptr);
  FW_CHECK_EQ(agg.msUntilBoundary(clock.now), 1u);
  FW_CHECK(agg.advance(kStart + kPeriod));
  FW_CHECK(agg.completed() != nullptr);
  uint16_t regs[kRegisterCount];
  renderRegisters(agg.completed(), 0x0F, regs);
  const uint16_t want[kRegisterCount] = {0, 3, 20, 525,    693,    150,    0, 0, 0, 0,  // lane 1
                                         0, 1, 4,  1000,   500,    0xFFFF, 0, 0, 0, 0,  // lane 2
                                         0, 0, 0,  0xFFFF, 0xFFFF, 0xFFFF, 0, 0, 0, 0,  // lane 3
                                         0, 1, 33, 90,     500,    0xFFFF};             // lane 4
  for (uint16_t a = 0; a < kRegisterCount; ++a) {
    if (regs[a] != want[a]) {
      check::print("register ");
      check::printNumber(a);
      check::print(": ");
      check::printNumber(regs[a]);
      check::print("\n");
    }
    FW_CHECK_EQ(regs[a], want[a]);
  }
}

FW_TEST("aggregation: the second period, a passage across the boundary, refusals") {
  FakeClock clock;
  FakeDetectors det(clock);
  period1(det);
  period2(det);
  det.add(passage(5, 95000, 100, 500, 400));  // no such lane
  det.add(passage(1, 59000, 100, 500, 400));  // delivered late: left in period 1
  Aggregator agg;
  agg.start(kStart, kPeriod, 0x0F);
  clock.now = kStart + 2 * kPeriod - 1;
  hal::Passage p{};
  while (det.next(p)) agg.add(p);
  FW_CHECK_EQ(agg.completedCount(), 1u);  // period 1 closed by the first passage of period 2
  FW_CHECK_EQ(agg.refusedBadLane(), 1u);
  FW_CHECK_EQ(agg.refusedLate(), 1u);
  FW_CHECK(agg.advance(kStart + 2 * kPeriod));
  FW_CHECK_EQ(agg.completedCount(), 2u);
  uint16_t regs[kRegisterCount];
  renderRegisters(agg.completed(), 0x0F, regs);
  FW_CHECK_EQ(u32(regs, 0), 4u);
  FW_CHECK_EQ(regs[2], 67);
  FW_CHECK_EQ(regs[3], 300);
  FW_CHECK_EQ(regs[4], 400);
  FW_CHECK_EQ(regs[5], 100);
  FW_CHECK_EQ(u32(regs, 10), 0u);
  FW_CHECK_EQ(regs[12], 0);
  FW_CHECK_EQ(regs[13], 0xFFFF);
  FW_CHECK_EQ(u32(regs, 30), 1u);
  FW_CHECK_EQ(regs[32], 3);
  FW_CHECK_EQ(regs[33], 200);
  FW_CHECK_EQ(regs[34], 450);
  FW_CHECK_EQ(regs[35], 0xFFFF);
  // a period with nothing at all
  FW_CHECK(agg.advance(kStart + 3 * kPeriod + 5));
  renderRegisters(agg.completed(), 0x0F, regs);
  FW_CHECK_EQ(u32(regs, 0), 0u);
  FW_CHECK_EQ(regs[2], 0);
  FW_CHECK_EQ(regs[5], 0xFFFF);
  FW_CHECK_EQ(agg.msUntilBoundary(kStart + 3 * kPeriod + 5), kPeriod - 5);
}

FW_TEST("aggregation: not available before the first complete period and on absent lanes") {
  uint16_t regs[kRegisterCount];
  renderRegisters(nullptr, 0x0F, regs);
  for (uint16_t lane = 0; lane < 4; ++lane) {
    const uint16_t b = static_cast<uint16_t>(lane * 10);
    FW_CHECK_EQ(u32(regs, b), 0xFFFFFFFFu);
    for (uint16_t k = 2; k <= 5; ++k) FW_CHECK_EQ(regs[b + k], 0xFFFF);
    for (uint16_t k = 6; k <= 9 && b + k < kRegisterCount; ++k) FW_CHECK_EQ(regs[b + k], 0);
  }
  PeriodTotals t{};
  t.lengthMs = 60000;
  t.lane[2].count = 5;
  renderRegisters(&t, 0x03, regs);  // lanes 3 and 4 have no detector
  FW_CHECK_EQ(u32(regs, 0), 0u);
  FW_CHECK_EQ(u32(regs, 20), 0xFFFFFFFFu);
  FW_CHECK_EQ(regs[22], 0xFFFF);
}

FW_TEST("aggregation: rounding half up, saturation below not-available") {
  const regmap::Point speed{1, regmap::Field::Speed, 3, 1, regmap::Order::Abcd, 1, 1};
  const regmap::Point headway{1, regmap::Field::Headway, 5, 1, regmap::Order::Abcd, 1, 100};
  uint32_t v = 0;
  FW_CHECK(registerValue(speed, {5, 2}, v));
  FW_CHECK_EQ(v, 3u);  // 2.5 -> 3
  FW_CHECK(registerValue(speed, {7, 3}, v));
  FW_CHECK_EQ(v, 2u);  // 2.33 -> 2
  FW_CHECK(!registerValue(speed, {7, 0}, v));
  FW_CHECK(registerValue(headway, {149, 1}, v));
  FW_CHECK_EQ(v, 1u);  // 149 ms -> 0.1 s
  FW_CHECK(registerValue(headway, {10000000, 1}, v));
  FW_CHECK_EQ(v, 0xFFFEu);  // 100000 -> saturates
  const regmap::Point count{1, regmap::Field::Intensity, 0, 2, regmap::Order::Abcd, 1, 1};
  FW_CHECK(registerValue(count, {0xFFFFFFFFull, 1}, v));
  FW_CHECK_EQ(v, 0xFFFFFFFEu);
}

// The node end to end on fakes: a Modbus read of the whole map, before and after the boundary,
// and a restarted node mid-period.
struct Rig {
  FakeClock clock;
  FakeUart uart{115200};
  FakeDetectors det{clock};
  Config config;
  Node node;
  Rig() : config(makeConfig()), node(config, clock, uart, det) {}
  static Config makeConfig() {
    Config c;
    c.unitId = 5;
    c.baud = 115200;
    c.periodS = 60;
    return c;
  }
  // FC 04, address 0, 36 registers; returns the reply's size
  size_t readAll(uint16_t* out) {
    const uint8_t body[] = {5, 0x04, 0, 0, 0, kRegisterCount};
    uint8_t req[8];
    memcpy(req, body, 6);
    const uint16_t crc = crc16Modbus(body, 6);
    req[6] = static_cast<uint8_t>(crc);
    req[7] = static_cast<uint8_t>(crc >> 8);
    uart.clearTx();
    uart.arrive(req, 8);
    node.step();
    clock.now += 5;
    node.step();
    if (uart.txSize != 3u + 2u * kRegisterCount + 2u || crc16Modbus(uart.tx, uart.txSize) != 0) return 0;
    for (uint16_t i = 0; i < kRegisterCount; ++i) {
      out[i] = static_cast<uint16_t>((uart.tx[3 + 2 * i] << 8) | uart.tx[4 + 2 * i]);
    }
    return uart.txSize;
  }
};

FW_TEST("node: served over Modbus, switching at the boundary, unavailable after a restart") {
  Rig rig;
  period1(rig.det);
  period2(rig.det);
  rig.clock.now = kStart;
  rig.node.start();
  uint16_t regs[kRegisterCount];
  rig.clock.now = kStart + 30000;
  FW_CHECK(rig.readAll(regs) != 0);
  FW_CHECK_EQ(u32(regs, 0), 0xFFFFFFFFu);  // no complete period yet
  rig.clock.now = kStart + kPeriod - 10;
  FW_CHECK(rig.readAll(regs) != 0);
  FW_CHECK_EQ(u32(regs, 0), 0xFFFFFFFFu);
  rig.clock.now = kStart + kPeriod;
  FW_CHECK(rig.readAll(regs) != 0);
  FW_CHECK_EQ(u32(regs, 0), 3u);
  FW_CHECK_EQ(regs[5], 150);
  FW_CHECK_EQ(u32(regs, 10), 1u);
  FW_CHECK_EQ(rig.node.counters().periods, 1u);
  rig.clock.now = kStart + 2 * kPeriod + 1;
  FW_CHECK(rig.readAll(regs) != 0);
  FW_CHECK_EQ(u32(regs, 0), 4u);
  FW_CHECK_EQ(rig.node.counters().passages, 10u);
  FW_CHECK_EQ(rig.node.slaveCounters().answered, 4u);

  // A restart 30 s into a period: nothing until a whole period has passed since.
  Rig again;
  again.clock.now = kStart + 2 * kPeriod + 30000;
  again.node.start();
  again.det.add({1, again.clock.now + 1000, 300, 500, 450});
  again.clock.now += kPeriod - 10;
  FW_CHECK(again.readAll(regs) != 0);
  FW_CHECK_EQ(u32(regs, 0), 0xFFFFFFFFu);
  FW_CHECK_EQ(regs[2], 0xFFFF);
  again.clock.now += 10;
  FW_CHECK(again.readAll(regs) != 0);
  FW_CHECK_EQ(u32(regs, 0), 1u);
  FW_CHECK_EQ(regs[3], 500);
}

FW_TEST("node: the configuration is checked") {
  Config c;
  FW_CHECK(validate(c) == nullptr);
  FW_CHECK_EQ(defaultLaneMask(), 0x0F);
  c.unitId = 0;
  FW_CHECK(validate(c) != nullptr);
  c.unitId = 248;
  FW_CHECK(validate(c) != nullptr);
  c = Config{};
  c.periodS = 0;
  FW_CHECK(validate(c) != nullptr);
  c = Config{};
  c.laneMask = 0x10;
  FW_CHECK(validate(c) != nullptr);
  c = Config{};
  c.baud = 300;
  FW_CHECK(validate(c) != nullptr);
}

FW_TEST("node: the provisioning record's settings, defaults for what is not set") {
  TrafficSettings s{};
  Config c;
  c.unitId = 99;
  FW_CHECK(configFromSettings(s, c) == nullptr);
  FW_CHECK_EQ(c.unitId, 1);
  FW_CHECK_EQ(c.baud, 19200u);
  FW_CHECK_EQ(c.periodS, 60u);
  FW_CHECK_EQ(c.laneMask, 0x0F);
  s.unitId = 17;
  s.baud = 9600;
  s.periodS = 300;
  s.laneIds[0] = 1;
  s.laneIds[1] = 3;
  s.laneCount = 2;
  FW_CHECK(configFromSettings(s, c) == nullptr);
  FW_CHECK_EQ(c.unitId, 17);
  FW_CHECK_EQ(c.baud, 9600u);
  FW_CHECK_EQ(c.periodS, 300u);
  FW_CHECK_EQ(c.laneMask, 0x05);
  s.laneIds[1] = 5;  // the map has four lanes
  FW_CHECK(configFromSettings(s, c) != nullptr);
  FW_CHECK_EQ(c.laneMask, 0x05);  // unchanged on error
  s.laneIds[1] = 2;
  s.unitId = 300;
  FW_CHECK(configFromSettings(s, c) != nullptr);
}

}  // namespace

namespace {

FW_TEST("passage queue: first in, first out, full drops and counts") {
  citygate::fw::traffic::PassageQueue q;
  citygate::fw::hal::Passage p{};
  FW_CHECK(!q.next(p));
  for (uint32_t i = 0; i < citygate::fw::traffic::PassageQueue::kCapacity; ++i) {
    FW_CHECK(q.push({1, i, 10, 500, 450}));
  }
  FW_CHECK(!q.push({1, 999, 10, 500, 450}));
  FW_CHECK_EQ(q.dropped(), 1u);
  for (uint32_t i = 0; i < 300; ++i) {  // across the 8-bit index wrap
    FW_CHECK(q.next(p));
    FW_CHECK_EQ(p.atMs, i);
    FW_CHECK(q.push({2, i + citygate::fw::traffic::PassageQueue::kCapacity, 10, 500, 450}));
  }
}

}  // namespace

namespace {

FW_TEST("node: the settings of a provisioning record") {
  using namespace citygate::fw::traffic;
  citygate::fw::NodeProvisioning record = citygate_v1_NodeProvisioning_init_zero;
  record.kind = citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER;
  Config c;
  FW_CHECK(configFromSettings(settingsFrom(record), c) == nullptr);  // no traffic settings: defaults
  FW_CHECK_EQ(c.unitId, 1);
  FW_CHECK_EQ(c.laneMask, 0x0F);
  record.has_traffic = true;
  record.traffic.unit_id = 12;
  record.traffic.baud = 38400;
  record.traffic.period_s = 0;  // default
  record.traffic.lane_count = 3;
  record.traffic.lane[0].lane_id = 4;
  record.traffic.lane[1].lane_id = 2;
  record.traffic.lane[2].lane_id = 1;
  FW_CHECK(configFromSettings(settingsFrom(record), c) == nullptr);
  FW_CHECK_EQ(c.unitId, 12);
  FW_CHECK_EQ(c.baud, 38400u);
  FW_CHECK_EQ(c.periodS, 60u);
  FW_CHECK_EQ(c.laneMask, 0x0B);
}

}  // namespace
