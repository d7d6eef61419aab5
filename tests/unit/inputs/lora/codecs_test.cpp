// Codecs: Cayenne LPP vectors C1-C9, the parking vectors of protocols.md 4.3, the citygate node
// formats' worked examples (codecs/README.md), and the readings the normaliser makes of them.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>

#include "citygate/v1/config.pb.h"
#include "core/normaliser.hpp"
#include "inputs/lora/codecs/citygate.hpp"
#include "inputs/lora/codecs/lpp.hpp"
#include "inputs/lora/codecs/parking.hpp"
#include "inputs/lora/codecs/registry.hpp"
#include "lora_test_util.hpp"

using namespace citygate;
using namespace citygate::lora;
using lora_test::hex;
namespace pb = citygate::v1;

namespace {

std::vector<LppItem> lpp(std::string_view h, const char** err = nullptr) {
  const auto bytes = hex(h);
  std::vector<LppItem> items;
  std::size_t pos = 0;
  LppItem it;
  const char* e = nullptr;
  while (pos < bytes.size()) {
    if ((e = nextLppItem(bytes, pos, it)) != nullptr) break;
    items.push_back(it);
  }
  if (err) *err = e;
  return items;
}

std::vector<core::RawValue> skips(std::size_t n) {
  return std::vector<core::RawValue>(n, core::RawValue{0, core::RawValue::State::Skip});
}

bool isSkip(const core::RawValue& v) {
  return v.state == core::RawValue::State::Skip;
}
bool isOk(const core::RawValue& v, double x) {
  return v.state == core::RawValue::State::Ok && std::fabs(v.value - x) < 1e-9;
}

// A device's codec + sensor, built through the registry as the config would.
struct Built {
  BuiltCodec codec;
  core::SensorSpec sensor;
};
Built build(const std::string& textproto) {
  pb::LoraDevice dev;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(textproto, &dev));
  config::Diagnostics d;
  auto b = buildCodec(dev, config::Location(), d);
  INFO(d.str());
  REQUIRE(b);
  Built out;
  out.codec = *b;
  out.sensor.id = dev.id();
  out.sensor.kind = b->kind;
  out.sensor.points = b->points;
  out.sensor.refParkingSite = dev.ref_parking_site();
  out.sensor.category = b->category;
  core::buildGroups(out.sensor);
  return out;
}

std::vector<pb::Reading> readings(const Built& b, std::uint8_t port, std::string_view payloadHex, DecodeStatus want) {
  auto values = skips(b.sensor.points.size());
  const auto payload = hex(payloadHex);
  const auto r = b.codec.codec->decode(port, payload, values);
  REQUIRE(r.status == want);
  std::vector<pb::Reading> out;
  if (r.status != DecodeStatus::Reading) return out;
  core::RawSample s;
  s.observedAt = WallClock::now();
  s.periodStart = s.observedAt - r.period;
  s.values = values;
  core::SensorMemory mem;
  core::Normaliser::normalise(b.sensor, s, mem, out);
  return out;
}

}  // namespace

TEST_CASE("C1-C3: temperature and humidity") {
  auto v = lpp("03670110056700FF");
  REQUIRE(v.size() == 2);
  CHECK(v[0].channel == 3);
  CHECK(v[0].type == 103);
  CHECK(v[0].values[0] == doctest::Approx(27.2));
  CHECK(v[1].channel == 5);
  CHECK(v[1].values[0] == doctest::Approx(25.5));
  v =
      lpp("036701100268"
          "6C");
  REQUIRE(v.size() == 2);
  CHECK(v[1].channel == 2);
  CHECK(lppTypeName(v[1].type) == "humidity");
  CHECK(v[1].values[0] == doctest::Approx(54.0));
  v = lpp("0567FFD1");
  REQUIRE(v.size() == 1);
  CHECK(v[0].values[0] == doctest::Approx(-4.7));
}

TEST_CASE("C4-C8: generic, accelerometer, voltage, current, frequency, altitude, power, distance, energy, ...") {
  CHECK(lpp("0164000003E6")[0].values[0] == 998);
  auto a = lpp("067104D2FB2E0000")[0];
  CHECK(a.count == 3);
  CHECK(a.values[0] == doctest::Approx(1.234));
  CHECK(a.values[1] == doctest::Approx(-1.234));
  CHECK(a.values[2] == 0);
  CHECK(lpp("037457B8")[0].values[0] == doctest::Approx(224.56));
  CHECK(lpp("017500ED")[0].values[0] == doctest::Approx(0.237));
  CHECK(lpp("017633BE27A0")[0].values[0] == 868100000);
  CHECK(lpp("0579FFEF")[0].values[0] == -17);
  CHECK(lpp("05800D7A")[0].values[0] == 3450);
  CHECK(lpp("018200000022")[0].values[0] == doctest::Approx(0.034));
  CHECK(lpp("018300795B30")[0].values[0] == doctest::Approx(7953.2));
  CHECK(lpp("01840100")[0].values[0] == 256);
  CHECK(lpp("058E01")[0].values[0] == 1);
  CHECK(lpp("0180FFFF")[0].values[0] == 65535);
}

TEST_CASE("C9: GPS, truncating and rounding encoders") {
  auto g = lpp("018806765EF2960A0003E8")[0];
  CHECK(g.count == 3);
  CHECK(g.values[0] == doctest::Approx(42.3518));
  CHECK(g.values[1] == doctest::Approx(-87.9094));
  CHECK(g.values[2] == doctest::Approx(10.0));
  CHECK(lpp("018806765FF2960A0003E8")[0].values[0] == doctest::Approx(42.3519));
}

TEST_CASE("LPP: unknown types and truncated entries stop the frame with a reason") {
  const char* err = nullptr;
  auto v = lpp("0367011003FF00", &err);
  CHECK(v.size() == 1);
  REQUIRE(err != nullptr);
  CHECK(std::string(err) == "unknown LPP type");
  v = lpp("036701", &err);
  CHECK(v.empty());
  CHECK(std::string(err) == "truncated LPP entry");
  v = lpp("03", &err);
  CHECK(std::string(err) == "truncated LPP entry header");
}

TEST_CASE("LPP codec: channel map -> AirQualityObserved with units and scale") {
  const auto b = build(R"(id: "lpp-air" codec: "cayenne-lpp" kind: "AIR_QUALITY"
      lpp_channel { channel: 3 field: "temperature" }
      lpp_channel { channel: 2 field: "relative_humidity" unit: "%" }
      lpp_channel { channel: 7 field: "pm25" scale: 100 })");
  // ch3 27.2 °C, ch2 54 %RH, ch7 analog 0.12 * 100 = 12 µg/m³, ch9 unmapped (ignored)
  const auto r = readings(b, 2,
                          "036701100268"
                          "6C"
                          "0702000C"
                          "096700FF",
                          DecodeStatus::Reading);
  REQUIRE(r.size() == 1);
  const auto& a = r[0].air_quality_observed();
  CHECK(a.temperature().value() == doctest::Approx(27.2));
  CHECK(a.temperature().unit_code() == "CEL");
  CHECK(a.relative_humidity().value() == doctest::Approx(0.54));
  CHECK(a.relative_humidity().unit_code() == "C62");
  CHECK(a.pm25().value() == doctest::Approx(12.0));
  CHECK_FALSE(a.has_no2());
  CHECK(r[0].quality() == pb::GOOD);
  // A mapped channel twice in one frame is ambiguous: BAD.
  const auto dup = readings(b, 2, "0367011003670111", DecodeStatus::Reading);
  CHECK(dup[0].air_quality_observed().temperature().quality() == pb::BAD);
  // Only unmapped channels: nothing to publish.
  readings(b, 2, "0967011", DecodeStatus::Malformed);
  readings(b, 2, "09670110", DecodeStatus::NoReading);
}

TEST_CASE("LPP codec: parking status and traffic lanes") {
  const auto p = build(R"(id: "lpp-park" codec: "cayenne-lpp" kind: "PARKING" ref_parking_site: "site"
      lpp_channel { channel: 1 field: "status" })");
  auto r = readings(p, 1, "016601", DecodeStatus::Reading);
  REQUIRE(r.size() == 1);
  CHECK(r[0].parking_spot().status() == pb::OCCUPIED);
  CHECK(r[0].parking_spot().ref_parking_site() == "site");
  const auto t = build(R"(id: "lpp-traffic" codec: "cayenne-lpp" kind: "TRAFFIC"
      lpp_channel { channel: 1 field: "intensity" lane_id: 1 }
      lpp_channel { channel: 2 field: "intensity" lane_id: 2 }
      lpp_channel { channel: 3 field: "average_vehicle_speed" lane_id: 1 })");
  r = readings(t, 1, "0164000000110264000000050384003C", DecodeStatus::Reading);
  REQUIRE(r.size() == 2);
  CHECK(r[0].traffic_flow_observed().lane_id() == 1);
  CHECK(r[0].traffic_flow_observed().intensity().value() == 17);
  CHECK(r[0].traffic_flow_observed().average_vehicle_speed().value() == 60);
  CHECK(r[1].traffic_flow_observed().lane_id() == 2);
  CHECK(r[1].traffic_flow_observed().intensity().value() == 5);
}

TEST_CASE("Nwave NPS405 vectors") {
  NwaveNps405Codec c;
  auto v = skips(kParkingPoints);
  CHECK(c.decode(1, hex("95"), v).status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 1));
  CHECK(isSkip(v[kParkingTemperature]));
  CHECK(isSkip(v[kParkingBattery]));
  v = skips(kParkingPoints);
  CHECK(c.decode(2, hex("00D3D800590B"), v).status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 0));
  CHECK(isOk(v[kParkingBattery], 3.344));
  CHECK(isOk(v[kParkingTemperature], -10));
  v = skips(kParkingPoints);
  CHECK(c.decode(3, hex("0204090200"), v).status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 0));
  v = skips(kParkingPoints);
  CHECK(c.decode(10, hex("D1201F345678"), v).status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 1));
  v = skips(kParkingPoints);
  CHECK(c.decode(10, hex("51201F345678"), v).status == DecodeStatus::NoReading);
  CHECK(c.decode(6, hex("0102"), v).status == DecodeStatus::NoReading);
  CHECK(c.decode(1, {}, v).status == DecodeStatus::Malformed);
  CHECK(c.decode(2, hex("00D3"), v).status == DecodeStatus::Malformed);
  CHECK(c.decode(7, hex("00"), v).status == DecodeStatus::UnknownPort);
}

TEST_CASE("Bosch TPS110 vectors") {
  BoschTps110Codec c;
  auto v = skips(kParkingPoints);
  CHECK(c.decode(1, hex("01"), v).status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 1));
  v = skips(kParkingPoints);
  CHECK(c.decode(2, hex("01FF"), v).status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 1));
  CHECK(isOk(v[kParkingTemperature], -1));
  v = skips(kParkingPoints);
  CHECK(c.decode(3,
                 hex("24030000750300000000000000"
                     "1D020301"),
                 v)
            .status == DecodeStatus::Reading);
  CHECK(isOk(v[kParkingStatus], 1));
  CHECK(c.decode(3, hex("24030000750300000000000000001D0203"), v).status == DecodeStatus::Reading);
  CHECK(c.decode(3, hex("240300007503000000000000001D0203"), v).status == DecodeStatus::Malformed);
  CHECK(c.decode(4, hex("00"), v).status == DecodeStatus::NoReading);
  CHECK(c.decode(9, hex("00"), v).status == DecodeStatus::UnknownPort);
}

TEST_CASE("parking codecs -> ParkingSpot readings with status, temperature and battery") {
  const auto b = build(R"(id: "parking-bay-0042" codec: "nwave-nps405" ref_parking_site: "pilatusplatz")");
  auto r = readings(b, 2, "80D3D800590B", DecodeStatus::Reading);
  REQUIRE(r.size() == 1);
  const auto& p = r[0].parking_spot();
  CHECK(p.id() == "urn:ngsi-ld:ParkingSpot:parking-bay-0042");
  CHECK(p.status() == pb::OCCUPIED);
  CHECK(p.ref_parking_site() == "pilatusplatz");
  CHECK(p.category(0) == "onStreet");
  CHECK(p.battery_voltage().value() == doctest::Approx(3.344));
  CHECK(p.battery_voltage().unit_code() == "VLT");
  CHECK(p.temperature().value() == doctest::Approx(-10));
  CHECK(r[0].quality() == pb::GOOD);
  r = readings(b, 1, "15", DecodeStatus::Reading);
  CHECK(r[0].parking_spot().status() == pb::FREE);
  CHECK_FALSE(r[0].parking_spot().has_temperature());
}

TEST_CASE("citygate-air v1: the README's worked example") {
  const auto b = build(R"(id: "air-node-01" codec: "citygate-air")");
  const auto r = readings(b, 1, "010c1a007b00cd00d20721157c", DecodeStatus::Reading);
  REQUIRE(r.size() == 1);
  const auto& a = r[0].air_quality_observed();
  CHECK(a.pm25().value() == doctest::Approx(12.3));
  CHECK(a.pm25().unit_code() == "GQ");
  CHECK(a.pm10().value() == doctest::Approx(20.5));
  CHECK(a.no2().value() == doctest::Approx(21.0 * 1.912));  // ppb -> µg/m³ at 20 °C
  CHECK(a.temperature().value() == doctest::Approx(18.25));
  CHECK(a.relative_humidity().value() == doctest::Approx(0.55));
  CHECK(a.relative_humidity().unit_code() == "C62");
  CHECK_FALSE(a.has_pm1());
  CHECK_FALSE(a.has_co());
  CHECK(r[0].quality() == pb::GOOD);
}

TEST_CASE("citygate-air v1: every field, sentinels, and malformed frames") {
  CitygateAirCodec c;
  // All 15 fields: 3 + 30 bytes. co 1.234 ppm, co2 415 ppm, temperature -5.5 °C, wind 3.21 m/s 270.5°.
  const auto all =
      hex("017fff"
          "0001"
          "0002"
          "0003"
          "0004"
          "0005"
          "0006"
          "0007"
          "0008"
          "04d2"
          "019f"
          "fdda"
          "1388"
          "27a6"
          "0141"
          "0a91");
  auto v = skips(kAirFields.size());
  REQUIRE(c.decode(1, all, v).status == DecodeStatus::Reading);
  CHECK(isOk(v[8], 1234));
  CHECK(isOk(v[9], 415));
  CHECK(isOk(v[10], -550));
  CHECK(isOk(v[13], 321));
  CHECK(isOk(v[14], 2705));
  // 0xFFFF (unsigned) and 0x8000 (signed) are "sensor fault": BAD points.
  v = skips(kAirFields.size());
  REQUIRE(c.decode(1,
                   hex("010402"
                       "ffff"
                       "8000"),
                   v)
              .status == DecodeStatus::Reading);
  CHECK(v[1].state == core::RawValue::State::Bad);
  CHECK(v[10].state == core::RawValue::State::Bad);
  CHECK(c.decode(1,
                 hex("020002"
                     "007b"),
                 v)
            .status == DecodeStatus::Malformed);  // version 2
  CHECK(c.decode(1,
                 hex("018002"
                     "007b"
                     "0000"),
                 v)
            .status == DecodeStatus::Malformed);                           // bit 15
  CHECK(c.decode(1, hex("010000"), v).status == DecodeStatus::Malformed);  // no field
  CHECK(c.decode(1,
                 hex("010002"
                     "00"),
                 v)
            .status == DecodeStatus::Malformed);  // short
  CHECK(c.decode(1,
                 hex("010002"
                     "007b00"),
                 v)
            .status == DecodeStatus::Malformed);  // long
  CHECK(c.decode(1, hex("01"), v).status == DecodeStatus::Malformed);
  CHECK(c.decode(2, hex("010002007b"), v).status == DecodeStatus::UnknownPort);
}

TEST_CASE("citygate-traffic v1: the README's worked example -> two TrafficFlowObserved") {
  const auto b = build(R"(id: "traffic-node-01" codec: "citygate-traffic")");
  CHECK(b.sensor.points.size() == kTrafficMaxLanes * kTrafficPointsPerLane);
  const auto r = readings(b, 1, "01012c020107002a1901e5820b00117834", DecodeStatus::Reading);
  REQUIRE(r.size() == 2);
  const auto& l1 = r[0].traffic_flow_observed();
  CHECK(l1.lane_id() == 1);
  CHECK(l1.intensity().value() == 42);
  CHECK(l1.intensity().unit_code() == "H87");
  CHECK(l1.occupancy().value() == doctest::Approx(0.125));
  CHECK(l1.average_vehicle_speed().value() == doctest::Approx(48.5));
  CHECK_FALSE(l1.congested());
  CHECK(l1.date_observed_to().seconds() - l1.date_observed_from().seconds() == 300);
  const auto& l2 = r[1].traffic_flow_observed();
  CHECK(l2.lane_id() == 2);
  CHECK(l2.intensity().value() == 17);
  CHECK(l2.occupancy().value() == doctest::Approx(0.6));
  CHECK(l2.average_vehicle_length().value() == doctest::Approx(5.2));
  CHECK(l2.congested());
  CHECK(l2.id() == "urn:ngsi-ld:TrafficFlowObserved:traffic-node-01:lane2");
}

TEST_CASE("citygate-traffic v1: malformed frames") {
  CitygateTrafficCodec c;
  auto v = skips(kTrafficMaxLanes * kTrafficPointsPerLane);
  CHECK(c.decode(1, hex("01012c010100"), v).status == DecodeStatus::Reading);  // lane 1, congested flag only
  CHECK(isOk(v[trafficPoint(1, kTrafficCongested)], 0));
  CHECK(c.decode(1, hex("010000010100"), v).status == DecodeStatus::Malformed);      // period 0
  CHECK(c.decode(1, hex("01012c00"), v).status == DecodeStatus::Malformed);          // no lane
  CHECK(c.decode(1, hex("01012c09"), v).status == DecodeStatus::Malformed);          // 9 lanes
  CHECK(c.decode(1, hex("01012c010900"), v).status == DecodeStatus::Malformed);      // lane 9
  CHECK(c.decode(1, hex("01012c011100"), v).status == DecodeStatus::Malformed);      // reserved lane bit
  CHECK(c.decode(1, hex("01012c010140"), v).status == DecodeStatus::Malformed);      // reserved mask bit
  CHECK(c.decode(1, hex("01012c0201000100"), v).status == DecodeStatus::Malformed);  // lane repeated
  CHECK(c.decode(1, hex("01012c010101"), v).status == DecodeStatus::Malformed);      // truncated record
  CHECK(c.decode(1, hex("01012c01010000"), v).status == DecodeStatus::Malformed);    // trailing byte
  CHECK(c.decode(1, hex("02012c010100"), v).status == DecodeStatus::Malformed);      // version 2
  CHECK(c.decode(3, hex("01012c010100"), v).status == DecodeStatus::UnknownPort);
}

TEST_CASE("registry: every built-in point resolves to a field with its canonical unit") {
  for (const char* codec : {"nwave-nps405", "bosch-tps110", "citygate-air", "citygate-traffic"}) {
    INFO(codec);
    const auto b = build(std::string("id: \"x\" codec: \"") + codec + "\"");
    for (const auto& p : b.sensor.points) {
      INFO(p.name);
      CHECK(p.field.kind == b.sensor.kind);
      CHECK(p.field.index >= 0);
      CHECK(p.conversion.factor > 0);
    }
  }
  CHECK(knownCodecs() == "bosch-tps110, cayenne-lpp, citygate-air, citygate-traffic, nwave-nps405");
}

TEST_CASE("citygate formats: the points derived from node_format.hpp equal the gateway's table before the split") {
  // The literal table of citygate.hpp at 5c49aae: field, scale, source unit, plausible range.
  struct Old {
    std::string_view field;
    double scale;
    std::string_view unit;
    double min, max;
  };
  const Old air[] = {{"pm1", 0.1, "ug/m3", 0, 1000},
                     {"pm25", 0.1, "ug/m3", 0, 1000},
                     {"pm4", 0.1, "ug/m3", 0, 1000},
                     {"pm10", 0.1, "ug/m3", 0, 2000},
                     {"no2", 0.1, "ppb", 0, 4000},
                     {"no", 0.1, "ppb", 0, 4000},
                     {"o3", 0.1, "ppb", 0, 2000},
                     {"so2", 0.1, "ppb", 0, 4000},
                     {"co", 0.001, "ppm", 0, 100},
                     {"co2", 1.0, "ppm", 0, 0},
                     {"temperature", 0.01, "degC", -50, 70},
                     {"relative_humidity", 0.01, "%", 0, 1},
                     {"pressure", 0.1, "hPa", 800, 1100},
                     {"wind_speed", 0.01, "m/s", 0, 75},
                     {"wind_direction", 0.1, "deg", 0, 360}};
  const Old traffic[] = {{"intensity", 1.0, "", 0, 0},
                         {"occupancy", 0.005, "", 0, 1},
                         {"average_vehicle_speed", 0.1, "km/h", 0, 250},
                         {"average_vehicle_length", 0.1, "m", 0, 25.5},
                         {"average_headway_time", 0.1, "s", 0, 0},
                         {"average_gap_distance", 0.1, "m", 0, 0}};
  auto same = [](const CitygateField& now, const Old& old) {
    INFO(old.field);
    CHECK(now.field == old.field);
    CHECK(now.scale == old.scale);  // exact: 1 / 10 is the double nearest 0.1
    CHECK(now.unit == old.unit);
    CHECK(now.min == old.min);
    CHECK(now.max == old.max);
  };
  REQUIRE(kAirFields.size() == std::size(air));
  for (std::size_t i = 0; i < kAirFields.size(); ++i) same(kAirFields[i], air[i]);
  REQUIRE(kTrafficFields.size() == std::size(traffic));
  for (std::size_t i = 0; i < kTrafficFields.size(); ++i) same(kTrafficFields[i], traffic[i]);
}
