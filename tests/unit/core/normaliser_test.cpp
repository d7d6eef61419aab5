#include <doctest/doctest.h>

#include "core/normaliser.hpp"

using namespace citygate;
using namespace citygate::core;
namespace pb = citygate::v1;

namespace {

PointSpec point(pb::ObservationKind kind, const char* field, const char* unit, double scale = 1.0) {
  PointSpec p;
  p.name = field;
  p.field = *findField(kind, field);
  p.scale = scale;
  std::string why;
  p.conversion = *conversionFor(p.field, unit, &why);
  p.unitCode = p.field.isGeneric() ? genericUnitCode(unit) : std::string(fieldInfo(p.field).canonicalUnit);
  return p;
}

RawSample sample(std::vector<double> values) {
  RawSample s;
  s.observedAt = WallTime{std::chrono::seconds(1700000000)};
  s.periodStart = s.observedAt - std::chrono::seconds(60);
  for (double v : values) s.values.push_back(RawValue{v, RawValue::State::Ok});
  return s;
}

}  // namespace

TEST_CASE("air quality: scale, ppb conversion, %RH to fraction, plausible range") {
  SensorSpec spec;
  spec.id = "air-1";
  spec.kind = pb::AIR_QUALITY;
  spec.points.push_back(point(pb::AIR_QUALITY, "no2", "ppb"));
  spec.points.push_back(point(pb::AIR_QUALITY, "relative_humidity", "%RH", 0.1));
  auto pm = point(pb::AIR_QUALITY, "pm25", "ug/m3", 0.1);
  pm.hasRange = true;
  pm.min = 0;
  pm.max = 500;
  spec.points.push_back(pm);
  buildGroups(spec);
  SensorMemory mem;
  std::vector<pb::Reading> out;
  Normaliser::normalise(spec, sample({20, 655, 123}), mem, out);
  REQUIRE(out.size() == 1);
  const auto& a = out[0].air_quality_observed();
  CHECK(a.no2().value() == doctest::Approx(38.24));
  CHECK(a.no2().unit_code() == "GQ");
  CHECK(a.relative_humidity().value() == doctest::Approx(0.655));
  CHECK(a.relative_humidity().unit_code() == "C62");
  CHECK(a.pm25().value() == doctest::Approx(12.3));
  CHECK(out[0].quality() == pb::GOOD);
  CHECK(a.id() == "urn:ngsi-ld:AirQualityObserved:air-1");

  out.clear();
  Normaliser::normalise(spec, sample({20, 655, 9999}), mem, out);  // PM2.5 999.9: implausible
  CHECK(out[0].quality() == pb::UNCERTAIN);
  CHECK(out[0].air_quality_observed().pm25().quality() == pb::UNCERTAIN);
  CHECK(out[0].air_quality_observed().pm25().value() == doctest::Approx(999.9));

  out.clear();
  auto bad = sample({20, 655, 1});
  bad.values[0].state = RawValue::State::Bad;
  Normaliser::normalise(spec, bad, mem, out);
  CHECK(out[0].quality() == pb::BAD);
  CHECK(out[0].air_quality_observed().no2().quality() == pb::BAD);
}

TEST_CASE("traffic: one reading per lane with the counting period") {
  SensorSpec spec;
  spec.id = "tc";
  spec.kind = pb::TRAFFIC;
  for (std::uint32_t lane : {1u, 2u}) {
    auto p = point(pb::TRAFFIC, "intensity", "count");
    p.lane = lane;
    spec.points.push_back(p);
    auto o = point(pb::TRAFFIC, "occupancy", "%", 0.1);
    o.lane = lane;
    spec.points.push_back(o);
  }
  buildGroups(spec);
  SensorMemory mem;
  std::vector<pb::Reading> out;
  Normaliser::normalise(spec, sample({12, 250, 7, 100}), mem, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].traffic_flow_observed().lane_id() == 1);
  CHECK(out[0].traffic_flow_observed().intensity().value() == 12);
  CHECK(out[0].traffic_flow_observed().occupancy().value() == doctest::Approx(0.25));
  CHECK(out[1].traffic_flow_observed().lane_id() == 2);
  CHECK(out[1].traffic_flow_observed().date_observed_to().seconds() -
            out[1].traffic_flow_observed().date_observed_from().seconds() ==
        60);
}

TEST_CASE("parking: one reading per bay, status_changed_at follows changes") {
  SensorSpec spec;
  spec.id = "pg";
  spec.kind = pb::PARKING;
  spec.refParkingSite = "site";
  spec.category = "onStreet";
  for (const char* bay : {"B1", "B2"}) {
    auto p = point(pb::PARKING, "status", "");
    p.bay = bay;
    spec.points.push_back(p);
  }
  buildGroups(spec);
  SensorMemory mem;
  std::vector<pb::Reading> out;
  auto s1 = sample({1, 0});
  Normaliser::normalise(spec, s1, mem, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].parking_spot().status() == pb::OCCUPIED);
  CHECK(out[1].parking_spot().status() == pb::FREE);
  CHECK(out[0].parking_spot().id() == "urn:ngsi-ld:ParkingSpot:pg:B1");
  CHECK(out[0].parking_spot().ref_parking_site() == "site");
  out.clear();
  auto s2 = sample({1, 1});
  s2.observedAt += std::chrono::seconds(30);
  Normaliser::normalise(spec, s2, mem, out);
  CHECK(out[0].parking_spot().status_changed_at().seconds() == 1700000000);  // unchanged
  CHECK(out[1].parking_spot().status_changed_at().seconds() == 1700000030);  // changed now
}

TEST_CASE("skipped points (report by exception) produce no reading when nothing changed") {
  SensorSpec spec;
  spec.id = "g";
  spec.kind = pb::GENERIC;
  spec.points.push_back(point(pb::GENERIC, "level", "m"));
  buildGroups(spec);
  SensorMemory mem;
  std::vector<pb::Reading> out;
  auto s = sample({3});
  s.values[0].state = RawValue::State::Skip;
  Normaliser::normalise(spec, s, mem, out);
  CHECK(out.empty());
  s.values[0].state = RawValue::State::Ok;
  Normaliser::normalise(spec, s, mem, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].generic().values().at("level").unit_code() == "MTR");
}

TEST_CASE("a decimally scaled integer is the decimal it means, without float noise") {
  CHECK(decimalsOf(0.1) == 1);
  CHECK(decimalsOf(1.9125) == 4);
  CHECK(decimalsOf(273.15) == 2);
  CHECK(decimalsOf(1.0 / 3.0) == 12);
  auto p = point(pb::AIR_QUALITY, "temperature", "CEL", 0.1);
  CHECK(284 * 0.1 != 28.4);  // what plain arithmetic gives
  CHECK(p.canonical(284) == 28.4);
  CHECK(p.canonical(-3) == -0.3);
  // Kelvin with a scale: the conversion's offset has decimals of its own, all kept.
  auto k = point(pb::AIR_QUALITY, "temperature", "K", 0.01);
  CHECK(k.canonical(29315) == 20.0);
  CHECK(k.canonical(29316) == 20.01);
  // A value that is not an integer (a float register) is left as it is.
  CHECK(p.canonical(284.5) == 284.5 * 0.1);
}
