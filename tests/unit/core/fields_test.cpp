#include <doctest/doctest.h>

#include "core/fields.hpp"

using namespace citygate::core;
namespace pb = citygate::v1;

namespace {
Conversion conv(pb::ObservationKind k, const char* field, const char* unit) {
  auto f = findField(k, field);
  REQUIRE(f.has_value());
  std::string why;
  auto c = conversionFor(*f, unit, &why);
  INFO(why);
  REQUIRE(c.has_value());
  return *c;
}
}  // namespace

TEST_CASE("ppb to µg/m³ uses the contract's factors at 20 °C") {
  CHECK(conv(pb::AIR_QUALITY, "no2", "ppb").factor == doctest::Approx(1.912));
  CHECK(conv(pb::AIR_QUALITY, "o3", "ppb").factor == doctest::Approx(1.995));
  CHECK(conv(pb::AIR_QUALITY, "so2", "ppb").factor == doctest::Approx(2.663));
  CHECK(conv(pb::AIR_QUALITY, "co", "ppm").factor == doctest::Approx(1.164));  // ppm -> mg/m³
  CHECK(conv(pb::AIR_QUALITY, "co", "ppb").factor == doctest::Approx(0.001164));
}

TEST_CASE("percent to fraction, and other canonical units") {
  CHECK(conv(pb::AIR_QUALITY, "relative_humidity", "%RH").factor == doctest::Approx(0.01));
  CHECK(conv(pb::TRAFFIC, "occupancy", "%").factor == doctest::Approx(0.01));
  CHECK(conv(pb::TRAFFIC, "average_vehicle_length", "mm").factor == doctest::Approx(0.001));
  CHECK(conv(pb::TRAFFIC, "average_vehicle_speed", "m/s").factor == doctest::Approx(3.6));
  CHECK(conv(pb::AIR_QUALITY, "pressure", "Pa").factor == doctest::Approx(0.01));
  const auto f = conv(pb::AIR_QUALITY, "temperature", "degF");
  CHECK(212 * f.factor + f.offset == doctest::Approx(100));
  CHECK(conv(pb::AIR_QUALITY, "pm25", "").factor == 1.0);
  CHECK(conv(pb::AIR_QUALITY, "co", "ug/m3").factor == doctest::Approx(0.001));
}

TEST_CASE("units that cannot describe a field are refused with a reason") {
  std::string why;
  CHECK_FALSE(conversionFor(*findField(pb::AIR_QUALITY, "pm25"), "ppb", &why));
  CHECK(why.find("not a gas") != std::string::npos);
  CHECK_FALSE(conversionFor(*findField(pb::AIR_QUALITY, "temperature"), "km/h", &why));
  CHECK_FALSE(conversionFor(*findField(pb::AIR_QUALITY, "temperature"), "furlongs", &why));
  CHECK(why.find("unknown unit") != std::string::npos);
}

TEST_CASE("fields per kind") {
  CHECK(findField(pb::AIR_QUALITY, "pm25"));
  CHECK_FALSE(findField(pb::AIR_QUALITY, "intensity"));
  CHECK(findField(pb::TRAFFIC, "intensity"));
  CHECK(findField(pb::PARKING, "status"));
  CHECK(findField(pb::GENERIC, "anything_goes_1"));
  CHECK_FALSE(findField(pb::GENERIC, "Bad Name"));
  CHECK(genericUnitCode("V") == "VLT");
}

namespace {

// Each row of the one field table against reading.proto: the field of that name in the kind's
// observation message, its JSON (FIWARE) name, and the Measurement the accessor returns.
template <typename Observation>
void checkRows(pb::ObservationKind kind, std::size_t expected) {
  const auto refs = fieldsOf(kind);
  CHECK(refs.size() == expected);
  const auto* desc = Observation::descriptor();
  for (const FieldRef ref : refs) {
    const FieldInfo& info = fieldInfo(ref);
    INFO(info.name);
    CHECK(findField(kind, info.name)->index == ref.index);
    const auto* fd = desc->FindFieldByName(std::string(info.name));
    REQUIRE(fd != nullptr);
    CHECK(fd->json_name() == info.fiwareName);
    Observation obs;
    pb::Measurement* m = mutableMeasurement(obs, ref);
    if (info.type == FieldType::Measurement) {
      REQUIRE(m != nullptr);
      CHECK(fd->message_type() == pb::Measurement::descriptor());
      CHECK(obs.GetReflection()->HasField(obs, fd));  // the accessor reached this field, not another
      CHECK(&obs.GetReflection()->GetMessage(obs, fd) == m);
    } else {
      CHECK(m == nullptr);
    }
  }
}

}  // namespace

TEST_CASE("one field table: names, FIWARE names and accessors agree with reading.proto") {
  checkRows<pb::AirQualityObserved>(pb::AIR_QUALITY, 18);
  checkRows<pb::TrafficFlowObserved>(pb::TRAFFIC, 7);
  checkRows<pb::ParkingSpot>(pb::PARKING, 3);
  CHECK(fieldsOf(pb::GENERIC).empty());
  // a field of another kind reaches nothing
  pb::ParkingSpot spot;
  CHECK(mutableMeasurement(spot, *findField(pb::AIR_QUALITY, "temperature")) == nullptr);
  CHECK(fieldInfo(FieldRef{pb::GENERIC, -1}).name.empty());
}
