// HeardTable: DevAddrs heard but not configured; bounded, least recently heard evicted.
#include <doctest/doctest.h>

#include "inputs/lora/heard.hpp"

using namespace citygate;
using namespace citygate::lora;
using namespace std::chrono_literals;

namespace {

HeardSignal signal(double rssi, double snr = 5.0, std::string_view dr = "SF9BW125") {
  HeardSignal s;
  s.rssi = rssi;
  s.snr = snr;
  s.frequency = 868.3;
  s.dataRate = dr;
  s.fcnt16 = 12;
  s.gatewayEui = 0xAA555A0000000001ULL;
  return s;
}

const HeardEntry* find(const HeardTable& t, std::uint32_t addr) {
  for (const auto& e : t.entries()) {
    if (e.devAddr == addr) return &e;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("a DevAddr heard again is one entry: frames counted, last signal and time kept, first time kept") {
  HeardTable t;
  const WallTime t0 = WallClock::now();
  t.heard(0x26011F99, signal(-80, 4), t0);
  t.heard(0x26011F99, signal(-95, -2.5, "SF12BW125"), t0 + 30s);
  REQUIRE(t.size() == 1);
  const HeardEntry& e = t.entries()[0];
  CHECK(e.devAddr == 0x26011F99);
  CHECK(e.frames == 2);
  CHECK(e.lastRssi == -95);
  CHECK(e.lastSnr == -2.5);
  CHECK(e.dataRateText() == "SF12BW125");
  CHECK(e.frequency == 868.3);
  CHECK(e.lastFcnt16 == 12);
  CHECK(e.gatewayEui == 0xAA555A0000000001ULL);
  CHECK(e.firstHeard == t0);
  CHECK(e.lastHeard == t0 + 30s);
  CHECK(t.evicted() == 0);
}

TEST_CASE("the table is bounded: a full table evicts the DevAddr heard least recently, and counts it") {
  HeardTable t(4);
  CHECK(t.capacity() == 4);
  const WallTime t0 = WallClock::now();
  for (std::uint32_t a = 1; a <= 4; ++a) t.heard(a, signal(-70), t0 + std::chrono::seconds(a));
  t.heard(1, signal(-71), t0 + 10s);  // 1 heard again: now 2 is the least recent
  t.heard(5, signal(-72), t0 + 11s);
  CHECK(t.size() == 4);
  CHECK(t.evicted() == 1);
  CHECK(find(t, 2) == nullptr);
  REQUIRE(find(t, 1) != nullptr);
  CHECK(find(t, 1)->frames == 2);
  REQUIRE(find(t, 5) != nullptr);
  CHECK(find(t, 5)->frames == 1);  // a new entry, nothing of the evicted one
  CHECK(find(t, 5)->firstHeard == t0 + 11s);
  for (std::uint32_t a = 100; a < 200; ++a) t.heard(a, signal(-80), t0 + 20s);
  CHECK(t.size() == 4);
  CHECK(t.evicted() == 101);
}

TEST_CASE("sorted(): the most recently heard first") {
  HeardTable t;
  const WallTime t0 = WallClock::now();
  t.heard(0xA, signal(-70), t0);
  t.heard(0xB, signal(-70), t0);
  t.heard(0xC, signal(-70), t0);
  t.heard(0xA, signal(-70), t0);
  const auto s = t.sorted();
  REQUIRE(s.size() == 3);
  CHECK(s[0].devAddr == 0xA);
  CHECK(s[1].devAddr == 0xC);
  CHECK(s[2].devAddr == 0xB);
}

TEST_CASE("a data rate longer than the entry's field is cut, never overflows") {
  HeardTable t;
  t.heard(1, signal(-70, 1, "FSK50000"), WallClock::now());
  CHECK(t.entries()[0].dataRateText() == "FSK50000");
  t.heard(1, signal(-70, 1, "SF12BW125SF12BW125SF12BW125"), WallClock::now());
  CHECK(t.entries()[0].dataRateText() == "SF12BW125SF12BW");
  t.heard(1, signal(-70, 1, ""), WallClock::now());
  CHECK(t.entries()[0].dataRateText().empty());
}

TEST_CASE("a table of capacity 0 still holds one (never an out-of-range write)") {
  HeardTable t(0);
  t.heard(1, signal(-70), WallClock::now());
  t.heard(2, signal(-70), WallClock::now());
  CHECK(t.size() == 1);
  CHECK(t.entries()[0].devAddr == 2);
  CHECK(t.evicted() == 1);
}
