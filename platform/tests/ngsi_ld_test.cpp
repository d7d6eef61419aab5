// The NGSI-LD mapping (normalized form) and the numbers in it. The entities are checked against
// the FIWARE JSON schemas by fiware_schemas_test.py.
#include "ngsi_ld.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

using namespace citygate::ingest;
namespace pb = citygate::v1;

namespace {

void at(google::protobuf::Timestamp* t, std::int64_t s, std::int32_t nanos = 0) {
  t->set_seconds(s);
  t->set_nanos(nanos);
}

void meas(pb::Measurement* m, double v, const char* unit, pb::Quality q = pb::GOOD) {
  m->set_value(v);
  m->set_unit_code(unit);
  m->set_quality(q);
}

bool has(const std::string& json, const std::string& part) {
  return json.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("numbers: no float noise, shortest round trip, rounded to the unit's decimals") {
  CHECK(formatNumber(28.400000000000002, 1) == "28.4");
  CHECK(formatNumber(0.1 + 0.2, 4) == "0.3");
  CHECK(formatNumber(0.1 + 0.2, 17) == "0.30000000000000004");  // no rounding asked: exact
  CHECK(formatNumber(197.0, 0) == "197");
  CHECK(formatNumber(21.456, 2) == "21.46");
  CHECK(formatNumber(-0.0001, 2) == "0");  // never "-0"
  CHECK(formatNumber(-3.25, 2) == "-3.25");
  CHECK(formatNumber(4294967295.0, 0) == "4294967295");
  CHECK(formatNumber(1e20, 1) == "1e+20");  // past 2^53: as it is, still valid JSON
  CHECK(formatNumber(std::nan(""), 2) == "null");
  CHECK(formatNumber(std::numeric_limits<double>::infinity(), 2) == "null");
  CHECK(decimalsFor("GQ") == 1);
  CHECK(decimalsFor("H87") == 0);
  CHECK(decimalsFor("C62") == 4);
  CHECK(decimalsFor("XYZ") == 6);
}

TEST_CASE("times are ISO 8601 UTC") {
  google::protobuf::Timestamp t;
  at(&t, 1764686400);
  CHECK(isoTime(t) == "2025-12-02T14:40:00Z");
  at(&t, 1764686400, 250000000);
  CHECK(isoTime(t) == "2025-12-02T14:40:00.250Z");
}

TEST_CASE("JSON strings are escaped") {
  CHECK(jsonString("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST_CASE("AirQualityObserved: every attribute a Property, measurements with unitCode and observedAt") {
  pb::Reading r;
  r.set_seq(7);
  r.set_sensor_id("aq-1");
  at(r.mutable_observed_at(), 1764686400);
  auto* a = r.mutable_air_quality_observed();
  a->set_id("urn:ngsi-ld:AirQualityObserved:aq-1");
  at(a->mutable_date_observed(), 1764686400);
  a->mutable_location()->set_lat(47.05);
  a->mutable_location()->set_lon(8.31);
  meas(a->mutable_no2(), 28.400000000000002, "GQ");
  meas(a->mutable_relative_humidity(), 0.54, "C62");
  meas(a->mutable_wind_direction(), 270, "DD");
  meas(a->mutable_pm10(), 12, "GQ", pb::BAD);
  meas(a->mutable_temperature(), 21.456, "CEL", pb::UNCERTAIN);
  const auto e = toNgsiLd(r);
  REQUIRE(e);
  CHECK(e->type == "AirQualityObserved");
  CHECK(e->id == "urn:ngsi-ld:AirQualityObserved:aq-1");
  const auto& j = e->json;
  CHECK(j.rfind(R"({"id":"urn:ngsi-ld:AirQualityObserved:aq-1","type":"AirQualityObserved",)", 0) == 0);
  CHECK(has(j, R"("dateObserved":{"type":"Property","value":"2025-12-02T14:40:00Z"})"));
  CHECK(has(j, R"("location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[8.31,47.05]}})"));
  CHECK(has(j, R"("no2":{"type":"Property","value":28.4,"unitCode":"GQ","observedAt":"2025-12-02T14:40:00Z"})"));
  CHECK(has(j, R"("relativeHumidity":{"type":"Property","value":0.54,"unitCode":"C62")"));
  CHECK(has(j, R"("windDirection":{"type":"Property","value":-90,"unitCode":"DD")"));  // FIWARE: -180..180
  CHECK(has(j, R"("temperature":{"type":"Property","value":21.46,"unitCode":"CEL")"));
  CHECK_FALSE(has(j, "pm10"));  // BAD: no value to give
  CHECK(has(
      j,
      R"("@context":["https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld","https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]})"));
}

TEST_CASE("AirQualityObserved: a humidity in percent becomes the fraction FIWARE wants") {
  pb::Reading r;
  r.set_sensor_id("aq-2");
  meas(r.mutable_air_quality_observed()->mutable_relative_humidity(), 54.3, "P1");
  const auto e = toNgsiLd(r);
  REQUIRE(e);
  CHECK(e->id == "urn:ngsi-ld:AirQualityObserved:aq-2");  // from the sensor id when the reading has none
  CHECK(has(e->json, R"("relativeHumidity":{"type":"Property","value":0.543,"unitCode":"C62")"));
}

TEST_CASE("TrafficFlowObserved: period, lane, integer counts") {
  pb::Reading r;
  r.set_sensor_id("tc-1");
  auto* t = r.mutable_traffic_flow_observed();
  t->set_id("urn:ngsi-ld:TrafficFlowObserved:tc-1:lane1");
  at(t->mutable_date_observed_from(), 1764686400);
  at(t->mutable_date_observed_to(), 1764686460);
  t->set_lane_id(1);
  t->set_lane_direction(pb::BACKWARD);
  meas(t->mutable_intensity(), 17, "H87");
  meas(t->mutable_occupancy(), 0.12345, "C62");
  meas(t->mutable_average_vehicle_speed(), 48.300000000000004, "KMH");
  t->set_vehicle_type("car");
  const auto e = toNgsiLd(r);
  REQUIRE(e);
  const auto& j = e->json;
  CHECK(has(j, R"("dateObserved":{"type":"Property","value":"2025-12-02T14:40:00Z/2025-12-02T14:41:00Z"})"));
  CHECK(has(j, R"("dateObservedFrom":{"type":"Property","value":"2025-12-02T14:40:00Z"})"));
  CHECK(has(j, R"("laneId":{"type":"Property","value":1})"));
  CHECK(has(j, R"("laneDirection":{"type":"Property","value":"backward"})"));
  CHECK(has(j, R"("intensity":{"type":"Property","value":17,"unitCode":"H87","observedAt":"2025-12-02T14:41:00Z"})"));
  CHECK(has(j, R"("occupancy":{"type":"Property","value":0.1235,)"));
  CHECK(has(j, R"("averageVehicleSpeed":{"type":"Property","value":48.3,)"));
  CHECK(has(j, R"("vehicleType":{"type":"Property","value":"car"})"));
  CHECK_FALSE(has(j, "congested"));
}

TEST_CASE("ParkingSpot: FIWARE's lowercase status, category, refParkingSite a Relationship") {
  const std::pair<pb::ParkingStatus, const char*> cases[] = {{pb::FREE, "free"},
                                                             {pb::OCCUPIED, "occupied"},
                                                             {pb::CLOSED, "closed"},
                                                             {pb::UNKNOWN, "unknown"},
                                                             {pb::PARKING_STATUS_UNSPECIFIED, "unknown"}};
  for (const auto& [status, text] : cases) {
    pb::Reading r;
    r.set_sensor_id("ps-1");
    at(r.mutable_observed_at(), 1764686400);
    auto* p = r.mutable_parking_spot();
    p->set_status(status);
    at(p->mutable_status_changed_at(), 1764686000);
    p->add_category("onStreet");
    p->set_ref_parking_site("urn:ngsi-ld:ParkingSite:main-street");
    const auto e = toNgsiLd(r);
    REQUIRE(e);
    CHECK(has(e->json, std::string(R"("status":{"type":"Property","value":")") + text +
                           R"(","observedAt":"2025-12-02T14:33:20Z"})"));
    CHECK(has(e->json, R"("category":{"type":"Property","value":["onStreet"]})"));
    CHECK(has(e->json, R"("refParkingSite":{"type":"Relationship","object":"urn:ngsi-ld:ParkingSite:main-street"})"));
  }
}

TEST_CASE("a generic observation has no FIWARE model") {
  pb::Reading r;
  (*r.mutable_generic()->mutable_values())["period"].set_value(60);
  CHECK_FALSE(toNgsiLd(r));
  CHECK_FALSE(toNgsiLd(pb::Reading()));
}
