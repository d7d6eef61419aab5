// Report by exception, the core stage between a source's raw sample and the normaliser (it was
// inside the Modbus source, which re-did the normaliser's scaling). Times are the samples' own.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>

#include "core/normaliser.hpp"
#include "core/report_by_exception.hpp"

using namespace citygate::core;
using citygate::WallTime;
using namespace std::chrono_literals;

namespace {

SensorSpec sensor(int points, double deadbandAbsolute, std::uint32_t maxSilentS) {
  SensorSpec s;
  s.id = "rbe";
  s.kind = pb::GENERIC;
  for (int i = 0; i < points; ++i) {
    PointSpec p;
    p.name = "p" + std::to_string(i);
    p.field = FieldRef{pb::GENERIC, -1};
    p.deadbandAbsolute = deadbandAbsolute;
    p.maxSilentS = maxSilentS;
    s.points.push_back(p);
  }
  buildGroups(s);
  return s;
}

RawSample sample(WallTime at, std::initializer_list<double> values) {
  RawSample r;
  r.observedAt = at;
  for (double v : values) r.values.push_back(RawValue{v, RawValue::State::Ok});
  return r;
}

const WallTime kT0 = WallTime{} + std::chrono::hours(24 * 365 * 56);

}  // namespace

TEST_CASE("report by exception: unchanged values inside the deadband are not sent until max_silent") {
  const SensorSpec s = sensor(1, 5, 1);
  SensorMemory m;
  int sent = 0;
  // a poll every 50 ms for 1.3 s, the value steady: the first, then one when max_silent (1 s) is over
  for (int i = 0; i < 26; ++i) {
    RawSample r = sample(kT0 + i * 50ms, {101});
    if (reportByException(s, r, m)) ++sent;
  }
  CHECK(sent == 2);
  CHECK(m.samplesHeldBack == 24);
}

TEST_CASE("report by exception: a change beyond the deadband is sent at once") {
  const SensorSpec s = sensor(1, 5, 60);
  SensorMemory m;
  int sent = 0;
  for (int i = 0; i < 10; ++i) {
    RawSample r = sample(kT0 + i * 50ms, {101.0 + 10 * i});
    if (reportByException(s, r, m)) ++sent;
  }
  CHECK(sent == 10);
  CHECK(m.samplesHeldBack == 0);
}

TEST_CASE("report by exception: the deadband is in the canonical unit, after scale, offset and unit conversion") {
  SensorSpec s = sensor(1, 1.0, 900);  // 1 °C
  s.points[0].scale = 0.1;             // raw tenths of °F
  s.points[0].conversion = Conversion{5.0 / 9.0, -32.0 * 5.0 / 9.0};
  SensorMemory m;
  RawSample first = sample(kT0, {680});  // 68 °F = 20 °C
  REQUIRE(reportByException(s, first, m));
  REQUIRE(m.lastReported[0]);
  CHECK(m.lastReported[0]->value == doctest::Approx(20.0));
  RawSample small = sample(kT0 + 1s, {689});  // 68.9 °F: +0.5 °C (raw +9 would pass a raw deadband of 1)
  CHECK_FALSE(reportByException(s, small, m));
  CHECK(small.values[0].state == RawValue::State::Skip);
  RawSample big = sample(kT0 + 2s, {700});  // 70 °F: +1.1 °C
  CHECK(reportByException(s, big, m));
  CHECK(m.lastReported[0]->value == doctest::Approx(21.111).epsilon(0.001));
}

TEST_CASE("report by exception: percent of the last value sent") {
  SensorSpec s = sensor(1, 0, 900);
  s.points[0].deadbandPercent = 10;
  SensorMemory m;
  RawSample a = sample(kT0, {200});
  CHECK(reportByException(s, a, m));
  RawSample b = sample(kT0 + 1s, {219});  // 9.5 %
  CHECK_FALSE(reportByException(s, b, m));
  RawSample c = sample(kT0 + 2s, {220});  // 10 %
  CHECK(reportByException(s, c, m));
}

TEST_CASE("report by exception: a BAD or non-finite point always goes and does not move the reference") {
  const SensorSpec s = sensor(2, 5, 900);
  SensorMemory m;
  RawSample a = sample(kT0, {100, 100});
  CHECK(reportByException(s, a, m));
  RawSample b = sample(kT0 + 1s, {101, 101});
  b.values[1].state = RawValue::State::Bad;
  CHECK(reportByException(s, b, m));
  CHECK(b.values[0].state == RawValue::State::Skip);
  CHECK(b.values[1].state == RawValue::State::Bad);
  RawSample c = sample(kT0 + 2s, {101, NAN});
  CHECK(reportByException(s, c, m));
  CHECK(c.values[1].state == RawValue::State::Ok);
  CHECK(m.lastReported[1]->value == 100);
  RawSample d = sample(kT0 + 3s, {101, 104});
  CHECK_FALSE(reportByException(s, d, m));
}

TEST_CASE("report by exception: only points with a deadband are filtered, the normaliser leaves the others in") {
  SensorSpec s = sensor(2, 0, 0);
  s.points[1].deadbandAbsolute = 5;
  s.points[1].maxSilentS = 900;
  SensorMemory m;
  RawSample a = sample(kT0, {1, 100});
  CHECK(reportByException(s, a, m));
  RawSample b = sample(kT0 + 1s, {1, 101});
  CHECK(reportByException(s, b, m));
  CHECK(b.values[0].state == RawValue::State::Ok);
  CHECK(b.values[1].state == RawValue::State::Skip);
  std::vector<pb::Reading> out;
  Normaliser::normalise(s, b, m, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].generic().values().contains("p0"));
  CHECK_FALSE(out[0].generic().values().contains("p1"));
}

TEST_CASE("report by exception: a text point keeps the sample alive") {
  SensorSpec s = sensor(2, 5, 900);
  s.points[1].deadbandAbsolute = 0;
  SensorMemory m;
  RawSample a = sample(kT0, {100, 0});
  CHECK(reportByException(s, a, m));
  RawSample b = sample(kT0 + 1s, {100, 0});
  b.values[1].state = RawValue::State::Skip;
  b.texts.emplace_back(1, "fw 1.2");
  CHECK(reportByException(s, b, m));
}
