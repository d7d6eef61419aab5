// The whole node on fakes: an uplink every interval with the simulated sensors' values, faults
// sent as the format's fault values, the duty cycle stretching a short interval, the counter
// continuing across a restart from the flash.
#include "nodes/air/air_node.hpp"
#include "citygate/v1/node_format.hpp"
#include "core/check.hpp"
#include "nodes/air/tests/fakes.hpp"
#include "ports/host/air_sim_sensors.hpp"

namespace air = citygate::fw::air;
namespace host = citygate::fw::host;
namespace nf = citygate::node_format;
using air::test::RecordingRadio;
using citygate::fw::test::FakeFlash;
using citygate::fw::test::ManualClock;

namespace {

air::AirConfig config() {
  air::AirConfig c;
  c.devAddr = 0x26011A01;
  for (uint8_t i = 0; i < 16; ++i) {
    c.nwkSKey[i] = static_cast<uint8_t>(0xA1 + i);
    c.appSKey[i] = static_cast<uint8_t>(0xB1 + i);
  }
  c.intervalS = 60;
  c.fcntMargin = 4;
  return c;
}

// A node on fakes: a manual clock, a radio that records, the simulated sensors, a 2 KB flash.
struct Bench {
  explicit Bench(uint32_t startMs = 0) : clock(startMs) {}

  // Runs `n` (the bench's node unless said) until the radio has sent `frames` more frames or
  // `maxMs` passed.
  void run(size_t frames, uint32_t maxMs) { run(node, frames, maxMs); }
  void run(air::AirNode& n, size_t frames, uint32_t maxMs) {
    const size_t want = radio.count + frames;
    for (uint32_t spent = 0; radio.count < want && spent < maxMs;) {
      uint32_t wait = n.poll();
      if (wait == 0) wait = 1;
      if (wait > 1000) wait = 1000;
      clock.advance(wait);
      spent += wait;
    }
  }

  ManualClock clock;
  RecordingRadio radio;
  host::SimAirBus bus;
  FakeFlash flash{256, 8};
  air::AirNode node{clock, radio, bus, flash};
};

// Decrypts the last frame's payload with the node's own session (the vectors prove the cipher).
bool lastPayload(RecordingRadio& radio, nf::air::Frame& out, uint32_t& fcnt) {
  const RecordingRadio::Sent& s = radio.last();
  if (s.size < air::kFrameOverhead) return false;
  air::Session session;
  const air::AirConfig c = config();
  if (!session.init(c.nwkSKey, c.appSKey)) return false;
  uint8_t payload[64];
  const size_t n = s.size - air::kFrameOverhead;
  for (size_t i = 0; i < n; ++i) payload[i] = s.frame[9 + i];
  fcnt = static_cast<uint32_t>(s.frame[6] | s.frame[7] << 8);
  if (!session.cryptPayload(payload, n, c.devAddr, fcnt, false)) return false;
  return nf::air::decode(payload, n, out) == nf::Status::Ok;
}

}  // namespace

FW_TEST("air node: uplinks with the sensors' values, FPort 1, on the three channels") {
  Bench b(5);
  FW_CHECK(b.node.start(config()) == nullptr);
  b.run(1, 5000);
  FW_CHECK_EQ(b.radio.count, 1u);
  const RecordingRadio::Sent& s = b.radio.last();
  FW_CHECK_EQ(s.size, 13u + 15u);
  FW_CHECK_EQ(s.frame[0], 0x40);  // unconfirmed data up
  FW_CHECK_EQ(s.frame[1], 0x01);  // DevAddr 26011A01, little-endian
  FW_CHECK_EQ(s.frame[4], 0x26);
  FW_CHECK_EQ(s.frame[8], 1);  // FPort
  FW_CHECK_EQ(s.params.frequencyHz, 868100000u);
  FW_CHECK_EQ(s.params.spreadingFactor, 7);
  nf::air::Frame f;
  uint32_t fcnt = 99;
  FW_CHECK(lastPayload(b.radio, f, fcnt));
  FW_CHECK_EQ(fcnt, 0u);
  using F = nf::air::Field;
  FW_CHECK_EQ(f.mask, nf::air::bit(F::Pm1) | nf::air::bit(F::Pm25) | nf::air::bit(F::Pm4) | nf::air::bit(F::Pm10) |
                          nf::air::bit(F::Temperature) | nf::air::bit(F::RelativeHumidity));
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Pm25)], 123);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Pm10)], 205);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Temperature)], 1825);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::RelativeHumidity)], 5500);
  b.run(2, 200000);
  FW_CHECK_EQ(b.radio.count, 3u);
  FW_CHECK_EQ(b.radio.sent[1].params.frequencyHz, 868300000u);
  FW_CHECK_EQ(b.radio.sent[2].params.frequencyHz, 868500000u);
  FW_CHECK(lastPayload(b.radio, f, fcnt));
  FW_CHECK_EQ(fcnt, 2u);
  FW_CHECK_EQ(b.node.stats().uplinks, 3u);
}

FW_TEST("air node: a sensor with a bad CRC or absent sends fault values, not numbers") {
  Bench b;
  b.bus.sht3x.fault = host::SimFault::BadCrc;
  b.bus.sps30.fault = host::SimFault::Absent;
  FW_CHECK(b.node.start(config()) == nullptr);
  b.run(1, 10000);
  nf::air::Frame f;
  uint32_t fcnt = 0;
  FW_CHECK(lastPayload(b.radio, f, fcnt));
  using F = nf::air::Field;
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Pm25)], 0xFFFF);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Pm1)], 0xFFFF);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Temperature)], -32768);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::RelativeHumidity)], 0xFFFF);
  FW_CHECK_EQ(b.node.sht3x().stats().crcErrors, 1u);
  FW_CHECK(b.node.sps30().stats().nacks >= 1);
  // The sensors come back: the next frame has numbers again (the SPS30 is started again).
  b.bus.sht3x.fault = host::SimFault::None;
  b.bus.sps30.fault = host::SimFault::None;
  b.run(1, 100000);
  FW_CHECK(lastPayload(b.radio, f, fcnt));
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Pm25)], 123);
  FW_CHECK_EQ(f.raw[static_cast<int>(F::Temperature)], 1825);
}

FW_TEST("air node: the duty cycle stretches an interval shorter than 100 x the time on air") {
  Bench b;
  air::AirConfig c = config();
  c.intervalS = 1;
  c.spreadingFactor = 12;  // 28 bytes at SF12: 1.65 s on air, 165 s between frames
  FW_CHECK(b.node.start(c) == nullptr);
  b.run(1, 10000);
  const uint32_t first = b.clock.nowMs();
  b.run(1, 400000);
  FW_CHECK_EQ(b.radio.count, 2u);
  const uint32_t gap = b.clock.nowMs() - first;
  FW_CHECK(gap >= 100 * b.node.stats().lastToaUs / 1000);
  FW_CHECK(gap < 100 * b.node.stats().lastToaUs / 1000 + 1500);
  FW_CHECK(b.node.stats().stretched >= 1);
}

FW_TEST("air node: a restart from the flash continues the counter, a power cut skips at most the margin") {
  Bench b;
  uint32_t fcnt = 0;
  nf::air::Frame f;
  FW_CHECK(b.node.start(config()) == nullptr);
  b.run(6, 1000000);
  FW_CHECK(lastPayload(b.radio, f, fcnt));
  FW_CHECK_EQ(fcnt, 5u);
  air::AirNode again(b.clock, b.radio, b.bus, b.flash);
  FW_CHECK(again.start(config()) == nullptr);
  b.run(again, 1, 10000);
  FW_CHECK(lastPayload(b.radio, f, fcnt));
  FW_CHECK_EQ(fcnt, 8u);  // margin 4: counters 0..7 were reserved, 6 and 7 skipped
}

FW_TEST("air node: bad settings are refused with a reason that names no key") {
  Bench b;
  air::AirConfig c = config();
  c.devAddr = 0;
  FW_CHECK(b.node.start(c) != nullptr);
  c = config();
  for (auto& k : c.appSKey) k = 0;
  FW_CHECK(b.node.start(c) != nullptr);
  c = config();
  c.intervalS = 0;
  FW_CHECK(b.node.start(c) != nullptr);
  c = config();
  c.fcntMargin = 0;
  FW_CHECK(b.node.start(c) != nullptr);
  FakeFlash tiny(256, 4);
  air::AirNode small(b.clock, b.radio, b.bus, tiny);
  FW_CHECK(small.start(config()) != nullptr);
  FW_CHECK_EQ(b.node.poll(), 1000u);
  FW_CHECK_EQ(b.radio.count, 0u);
}
