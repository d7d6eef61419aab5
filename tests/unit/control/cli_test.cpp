// citygatectl's pure parts: the probe table (every type x order), and the human formatting.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

#include "cli/format.hpp"
#include "cli/probe.hpp"
#include "inputs/modbus/decode.hpp"

using namespace citygate;
using namespace citygate::cli;

namespace {

const ProbeRow& row(const std::vector<ProbeRow>& rows, const std::string& type, std::uint32_t at) {
  for (const auto& r : rows) {
    if (r.type == type && r.at == at) return r;
  }
  FAIL("no row " << type << " @" << at);
  return rows.front();
}

std::vector<std::uint16_t> float32(float v, pb::WordOrder order) {
  std::uint32_t raw;
  std::memcpy(&raw, &v, 4);
  std::uint16_t out[2];
  modbus::encode32(raw, order, out);
  return {out[0], out[1], 0, 0};
}

}  // namespace

TEST_CASE("probe: 123456.0 stored CDAB shows 123456 in the CDAB column, and only there") {
  const auto regs = float32(123456.0F, pb::CDAB);
  CHECK(regs[0] == 0x2000);
  CHECK(regs[1] == 0x47F1);
  const Probe p = interpret(10, regs);
  const auto& f = row(p.rows32, "f32", 10);
  CHECK(f.cells[1].text == "123456");
  CHECK(f.cells[0].text != "123456");
  CHECK(f.cells[2].text != "123456");
  CHECK(f.cells[3].text != "123456");
  const std::string page = renderProbe(p, Style{});
  CHECK(page.find("123456") != std::string::npos);
  // every order of the same value lands in its own column
  for (int o = 0; o < 4; ++o) {
    const auto order = static_cast<pb::WordOrder>(o + 1);
    const Probe q = interpret(0, float32(-229.01F, order));
    CHECK(row(q.rows32, "f32", 0).cells[o].text == "-229.01");
  }
}

TEST_CASE("probe: integers exactly, 64-bit forms, offsets, text") {
  std::uint16_t w[4];
  modbus::encode64(0x0102030405060708ULL, pb::DCBA, w);
  Probe p = interpret(100, std::vector<std::uint16_t>(w, w + 4));
  CHECK(row(p.rows64, "u64", 100).cells[3].text == "72623859790382856");
  CHECK(p.rows32.size() == 9);  // u32 i32 f32 at 100, 101, 102
  CHECK(p.rows64.size() == 3);
  const Probe n = interpret(0, std::vector<std::uint16_t>{0xFFFF, 0xFFFE, 0x4347, 0x2D30});
  CHECK(row(n.rows32, "i32", 0).cells[0].text == "-2");
  CHECK(row(n.rows32, "u32", 0).cells[0].text == "4294967294");
  CHECK(n.asciiAB.substr(4) == "CG-0");
  CHECK(n.asciiBA.substr(4) == "GC0-");
  double d = 1.5;
  std::uint64_t raw;
  std::memcpy(&raw, &d, 8);
  modbus::encode64(raw, pb::CDAB, w);
  p = interpret(0, std::vector<std::uint16_t>(w, w + 4));
  CHECK(row(p.rows64, "f64", 0).cells[1].text == "1.5");
  const std::string json = probeJson(p, "");
  CHECK(json.find("\"CDAB\":1.5") != std::string::npos);
}

TEST_CASE("probe JSON keeps NaN as a string") {
  const Probe p = interpret(0, std::vector<std::uint16_t>{0x7FC0, 0x0000});
  const std::string json = probeJson(p, "");
  CHECK(json.find("\"ABCD\":\"NaN\"") != std::string::npos);
}

TEST_CASE("relative times, durations, sizes") {
  using namespace std::chrono;
  const auto now = system_clock::time_point(seconds(1'700'000'000));
  google::protobuf::Timestamp t;
  CHECK(relativeTime(t, now) == "never");
  t.set_seconds(1'700'000'000 - 12);
  CHECK(relativeTime(t, now) == "12 s ago");
  t.set_seconds(1'700'000'000 - 3 * 60 - 5);
  CHECK(relativeTime(t, now) == "3 min ago");
  t.set_seconds(1'700'000'000 - 2 * 3600 - 14 * 60);
  CHECK(relativeTime(t, now) == "2 h 14 min ago");
  t.set_seconds(1'700'000'000 + 20);
  CHECK(relativeTime(t, now) == "in 20 s");
  CHECK(bytes(812) == "812 B");
  CHECK(bytes(12595) == "12.3 KiB");
  CHECK(bytes(256ULL << 20) == "256 MiB");
  CHECK(micros(250) == "250 µs");
  CHECK(micros(18000) == "18 ms");
  CHECK(number(38.239999) == "38.24");
}

TEST_CASE("state changes as the platform's alarms show them: local HH:MM:SS beside the relative time") {
  using namespace std::chrono;
  const std::string before = std::getenv("TZ") != nullptr ? std::getenv("TZ") : "";
  ::setenv("TZ", "CET-1", 1);  // UTC+1, as a POSIX rule: no tzdata needed
  ::tzset();
  const auto now = system_clock::time_point(seconds(1'700'000'000));  // 2023-11-14 22:13:20 UTC
  google::protobuf::Timestamp t;
  CHECK(stateSince(t, now) == "never");
  CHECK(pointInTime(t, now) == "never");
  t.set_seconds(1'700'000'000 - 4 * 60 - 3);
  CHECK(stateSince(t, now) == "23:09:17, 4 min");
  CHECK(pointInTime(t, now) == "23:09:17 (4 min ago)");
  t.set_seconds(1'700'000'000 + 20);
  CHECK(pointInTime(t, now) == "23:13:40 (in 20 s)");
  t.set_seconds(1'700'000'000);
  t.set_nanos(400'000'000);  // just ahead
  CHECK(pointInTime(t, now) == "23:13:20 (now)");
  t.set_nanos(0);
  t.set_seconds(1'700'000'000 + 3600);  // tomorrow, local time
  CHECK(pointInTime(t, now) == "2023-11-15 00:13:20 (in 1 h)");
  t.set_seconds(1'700'000'000 - 86400 - 3600);
  CHECK(stateSince(t, now) == "2023-11-13 22:13:20, 1 d 1 h");
  if (before.empty()) {
    ::unsetenv("TZ");
  } else {
    ::setenv("TZ", before.c_str(), 1);
  }
  ::tzset();
}

TEST_CASE("tables align on what is visible, colour codes and UTF-8 aside") {
  Style colour{true};
  Table t({"DEVICE", "VALUE"});
  t.add({colour.paint("air", Colour::Green), "38 µg/m³"});
  t.add({"traffic-01", "x"});
  const std::string out = t.render(Style{});
  CHECK(out == "DEVICE      VALUE\n" + colour.paint("air", Colour::Green) + "         38 µg/m³\ntraffic-01  x\n");
  CHECK(displayWidth(colour.paint("µg/m³", Colour::Red)) == 5);
}

TEST_CASE("readings for people: units, lanes, generic values") {
  pb::Reading r;
  auto* a = r.mutable_air_quality_observed();
  a->mutable_no2()->set_value(38.24);
  a->mutable_no2()->set_unit_code("GQ");
  a->mutable_temperature()->set_value(21.5);
  a->mutable_temperature()->set_unit_code("CEL");
  CHECK(observationSummary(r) == "no2 38.24 µg/m³  temperature 21.5 °C");

  pb::Reading t;
  auto* f = t.mutable_traffic_flow_observed();
  f->set_lane_id(2);
  f->mutable_intensity()->set_value(17);
  f->mutable_intensity()->set_unit_code("H87");
  f->set_congested(true);
  CHECK(observationSummary(t) == "lane 2 intensity 17 veh  congested yes");
  const auto rows = observationRows(t);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][0] == "lane 2 intensity");

  pb::Reading g;
  (*g.mutable_generic()->mutable_values())["power"].set_value(5);
  (*g.mutable_generic()->mutable_text_values())["serial"] = "CG-0042";
  CHECK(observationSummary(g) == "power 5  serial \"CG-0042\"");

  pb::Reading p;
  p.mutable_parking_spot()->set_status(pb::OCCUPIED);
  p.mutable_parking_spot()->set_bay("A");
  CHECK(observationSummary(p) == "bay A status occupied");
}
