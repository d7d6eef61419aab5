#include "outputs/sparkplug/metrics.hpp"

#include <doctest/doctest.h>

#include <set>

#include "core/fields.hpp"

namespace citygate::sparkplug {
namespace {

namespace pb = citygate::v1;

// The DBIRTH names a point's metric after core/fields.cpp's FIWARE name; the DDATA names a value
// after the observation's proto field (its JSON name). They must be the same name.
TEST_CASE("every measurement field's FIWARE name is its proto field's JSON name") {
  const std::pair<pb::ObservationKind, const google::protobuf::Descriptor*> kinds[] = {
      {pb::AIR_QUALITY, pb::AirQualityObserved::descriptor()},
      {pb::TRAFFIC, pb::TrafficFlowObserved::descriptor()},
      {pb::PARKING, pb::ParkingSpot::descriptor()},
  };
  int checked = 0;
  for (const auto& [kind, desc] : kinds) {
    for (const auto ref : core::fieldsOf(kind)) {
      const auto& info = core::fieldInfo(ref);
      if (info.type != core::FieldType::Measurement) continue;
      CAPTURE(info.name);
      const auto* f = desc->FindFieldByCamelcaseName(std::string(info.fiwareName));
      REQUIRE(f != nullptr);
      CHECK(f->json_name() == info.fiwareName);
      CHECK(f->message_type() == pb::Measurement::descriptor());
      ++checked;
    }
  }
  CHECK(checked > 20);
}

core::SensorSpec trafficSensor() {
  core::SensorSpec s;
  s.id = "traffic-1";
  s.kind = pb::TRAFFIC;
  for (std::uint32_t lane = 1; lane <= 2; ++lane) {
    for (const char* field : {"intensity", "average_vehicle_speed", "congested"}) {
      core::PointSpec p;
      p.name = field;
      p.field = *core::findField(pb::TRAFFIC, field);
      p.unitCode = std::string(core::fieldInfo(p.field).canonicalUnit);
      p.lane = lane;
      s.points.push_back(p);
    }
  }
  return s;
}

TEST_CASE("a traffic counter's metrics: per lane, measurements Double with their unit, flags Boolean") {
  MetricTable table(10);
  table.addSensor(trafficSensor());
  auto& d = table.device("traffic-1");
  REQUIRE(d.metrics.size() == 6);
  CHECK(d.metrics[0].name == "lane1/intensity");
  CHECK(d.metrics[0].type == spb::Double);
  CHECK(d.metrics[0].alias == 10);
  CHECK(d.metrics[1].name == "lane1/averageVehicleSpeed");
  CHECK(d.metrics[1].unit == "KMH");
  CHECK(d.metrics[2].name == "lane1/congested");
  CHECK(d.metrics[2].type == spb::Boolean);
  CHECK(d.metrics[2].unit.empty());
  CHECK(d.metrics[5].alias == 15);

  // A reading of lane 2: its metrics by alias, with the native seq, congested false included.
  pb::Reading r;
  r.set_seq(77);
  r.set_sensor_id("traffic-1");
  r.mutable_observed_at()->set_seconds(1700000000);
  r.set_quality(pb::GOOD);
  auto* t = r.mutable_traffic_flow_observed();
  t->set_lane_id(2);
  t->mutable_intensity()->set_value(12);
  t->mutable_average_vehicle_speed()->set_value(48.5);
  t->mutable_average_vehicle_speed()->set_quality(pb::UNCERTAIN);
  d.changed = false;
  spb::Payload out;
  appendReadingMetrics(table, d, r, true, out);
  CHECK_FALSE(d.changed);
  REQUIRE(out.metrics_size() == 3);
  std::set<std::uint64_t> aliases;
  for (const auto& m : out.metrics()) {
    CHECK_FALSE(m.has_name());
    CHECK_FALSE(m.has_datatype());
    CHECK(m.timestamp() == 1700000000000ULL);
    CHECK(m.is_historical());
    REQUIRE(m.properties().keys_size() >= 1);
    CHECK(m.properties().keys(0) == "seq");
    CHECK(m.properties().values(0).long_value() == 77);
    aliases.insert(m.alias());
  }
  CHECK(aliases == std::set<std::uint64_t>{13, 14, 15});
  // UNCERTAIN is Quality 0 (the specification has no "uncertain") with Uncertain true; GOOD
  // carries no Quality.
  const auto& speed = out.metrics(1);
  CHECK(speed.double_value() == 48.5);
  REQUIRE(speed.properties().keys_size() == 3);
  CHECK(speed.properties().keys(1) == "Quality");
  CHECK(speed.properties().values(1).type() == spb::Int32);
  CHECK(speed.properties().values(1).int_value() == static_cast<std::uint32_t>(kQualityBad));
  CHECK(speed.properties().keys(2) == "Uncertain");
  CHECK(speed.properties().values(2).boolean_value());
  CHECK(out.metrics(0).properties().keys_size() == 1);
  CHECK_FALSE(out.metrics(2).boolean_value());
}

TEST_CASE("a value no point announced is added, and the device marked for a new DBIRTH") {
  MetricTable table(1);
  auto& d = table.device("gen-1");
  pb::Reading r;
  r.set_sensor_id("gen-1");
  (*r.mutable_generic()->mutable_values())["volts"].set_value(3.3);
  (*r.mutable_generic()->mutable_text_values())["serial"] = "CG-1";
  spb::Payload out;
  appendReadingMetrics(table, d, r, false, out);
  CHECK(d.changed);
  REQUIRE(d.metrics.size() == 2);
  CHECK(d.metrics[d.byName.at("volts")].type == spb::Double);
  CHECK(d.metrics[d.byName.at("serial")].type == spb::String);
  spb::Payload birth;
  appendBirthMetrics(d, 5, birth);
  REQUIRE(birth.metrics_size() == 2);
  for (const auto& m : birth.metrics()) {
    CHECK(m.has_name());
    CHECK(m.has_alias());
    CHECK(m.has_datatype());
    CHECK(m.timestamp() == 5);
    CHECK(m.is_null());
  }
}

TEST_CASE("parking: status as text, per bay") {
  MetricTable table(1);
  auto& d = table.device("park-1");
  pb::Reading r;
  r.mutable_parking_spot()->set_bay("b3");
  r.mutable_parking_spot()->set_status(pb::OCCUPIED);
  spb::Payload out;
  appendReadingMetrics(table, d, r, false, out);
  REQUIRE(out.metrics_size() == 1);
  CHECK(out.metrics(0).string_value() == "occupied");
  CHECK(d.metrics[0].name == "b3/status");
  CHECK(d.metrics[0].type == spb::String);
  CHECK(parkingStatusText(pb::PARKING_STATUS_UNSPECIFIED).empty());
}

}  // namespace
}  // namespace citygate::sparkplug
