#include "ngsi_ld.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <utility>

namespace citygate::ingest {

namespace pb = citygate::v1;

namespace {

constexpr const char* kCoreContext = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";

// One entity's JSON object, written attribute by attribute.
class Object {
 public:
  explicit Object(std::string& out) : out_(out) { out_ += '{'; }
  void key(std::string_view k) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += jsonString(k);
    out_ += ':';
  }
  void raw(std::string_view k, std::string_view json) {
    key(k);
    out_ += json;
  }
  void str(std::string_view k, std::string_view v) { raw(k, jsonString(v)); }
  void close() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

std::string property(std::string_view valueJson, std::string_view unitCode = {}, std::string_view observedAt = {}) {
  std::string out;
  Object o(out);
  o.str("type", "Property");
  o.raw("value", valueJson);
  if (!unitCode.empty()) o.str("unitCode", unitCode);
  if (!observedAt.empty()) o.str("observedAt", observedAt);
  o.close();
  return out;
}

// A measurement as a Property; false when it is not written (BAD, not a number). `convert` maps
// the value into the unit the data model wants.
bool measurement(Object& o, std::string_view name, const pb::Measurement& m, const std::string& observedAt,
                 double (*convert)(const pb::Measurement&) = nullptr, std::string_view unitOverride = {}) {
  if (m.quality() == pb::BAD) return false;
  const double v = convert != nullptr ? convert(m) : m.value();
  if (!std::isfinite(v)) return false;
  const std::string_view unit = unitOverride.empty() ? std::string_view(m.unit_code()) : unitOverride;
  o.raw(name, property(formatNumber(v, decimalsFor(unit)), unit, observedAt));
  return true;
}

void location(Object& o, const pb::GeoPoint& p) {
  o.raw("location", R"({"type":"GeoProperty","value":{"type":"Point","coordinates":[)" + formatNumber(p.lon(), 7) +
                        "," + formatNumber(p.lat(), 7) + "]}}");
}

void header(Object& o, const std::string& id, const char* type) {
  o.str("id", id);
  o.str("type", type);
}

void context(Object& o, const char* dataModelContext) {
  o.raw("@context", "[" + jsonString(dataModelContext) + "," + jsonString(kCoreContext) + "]");
}

std::string entityId(const std::string& id, const char* type, const std::string& sensorId) {
  if (!id.empty()) return id;
  return std::string("urn:ngsi-ld:") + type + ":" + sensorId;
}

// FIWARE's windDirection is -180..180 (0: north); the gateway's DD is 0..360.
double windDirection(const pb::Measurement& m) {
  return m.value() > 180.0 ? m.value() - 360.0 : m.value();
}
// relativeHumidity is a fraction 0..1; a percentage (P1) is converted.
double humidityFraction(const pb::Measurement& m) {
  return m.unit_code() == "P1" ? m.value() / 100.0 : m.value();
}

Entity airQuality(const pb::Reading& r, const pb::AirQualityObserved& a) {
  Entity e{entityId(a.id(), "AirQualityObserved", r.sensor_id()), "AirQualityObserved", {}};
  const std::string at = isoTime(a.has_date_observed() ? a.date_observed() : r.observed_at());
  Object o(e.json);
  header(o, e.id, "AirQualityObserved");
  o.raw("dateObserved", property(jsonString(at)));
  if (a.has_location()) location(o, a.location());
  const std::pair<const char*, const pb::Measurement* (*)(const pb::AirQualityObserved&)> plain[] = {
      {"no2", [](const pb::AirQualityObserved& x) { return x.has_no2() ? &x.no2() : nullptr; }},
      {"no", [](const pb::AirQualityObserved& x) { return x.has_no() ? &x.no() : nullptr; }},
      {"nox", [](const pb::AirQualityObserved& x) { return x.has_nox() ? &x.nox() : nullptr; }},
      {"o3", [](const pb::AirQualityObserved& x) { return x.has_o3() ? &x.o3() : nullptr; }},
      {"co", [](const pb::AirQualityObserved& x) { return x.has_co() ? &x.co() : nullptr; }},
      {"co2", [](const pb::AirQualityObserved& x) { return x.has_co2() ? &x.co2() : nullptr; }},
      {"so2", [](const pb::AirQualityObserved& x) { return x.has_so2() ? &x.so2() : nullptr; }},
      {"pm1", [](const pb::AirQualityObserved& x) { return x.has_pm1() ? &x.pm1() : nullptr; }},
      {"pm25", [](const pb::AirQualityObserved& x) { return x.has_pm25() ? &x.pm25() : nullptr; }},
      {"pm4", [](const pb::AirQualityObserved& x) { return x.has_pm4() ? &x.pm4() : nullptr; }},
      {"pm10", [](const pb::AirQualityObserved& x) { return x.has_pm10() ? &x.pm10() : nullptr; }},
      {"temperature", [](const pb::AirQualityObserved& x) { return x.has_temperature() ? &x.temperature() : nullptr; }},
      {"pressure", [](const pb::AirQualityObserved& x) { return x.has_pressure() ? &x.pressure() : nullptr; }},
      {"windSpeed", [](const pb::AirQualityObserved& x) { return x.has_wind_speed() ? &x.wind_speed() : nullptr; }},
      {"sh2", [](const pb::AirQualityObserved& x) { return x.has_sh2() ? &x.sh2() : nullptr; }},
      {"volatileOrganicCompoundsTotal",
       [](const pb::AirQualityObserved& x) {
         return x.has_volatile_organic_compounds_total() ? &x.volatile_organic_compounds_total() : nullptr;
       }},
  };
  for (const auto& [name, get] : plain) {
    if (const auto* m = get(a)) measurement(o, name, *m, at);
  }
  if (a.has_relative_humidity()) measurement(o, "relativeHumidity", a.relative_humidity(), at, humidityFraction, "C62");
  if (a.has_wind_direction()) measurement(o, "windDirection", a.wind_direction(), at, windDirection);
  context(o, "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld");
  o.close();
  return e;
}

Entity trafficFlow(const pb::Reading& r, const pb::TrafficFlowObserved& t) {
  Entity e{entityId(t.id(), "TrafficFlowObserved", r.sensor_id()), "TrafficFlowObserved", {}};
  const std::string from = t.has_date_observed_from() ? isoTime(t.date_observed_from()) : std::string();
  const std::string to = t.has_date_observed_to() ? isoTime(t.date_observed_to()) : std::string();
  // The period's end is when the counts were known; an ISO 8601 interval names the period.
  const std::string at = !to.empty() ? to : isoTime(r.observed_at());
  Object o(e.json);
  header(o, e.id, "TrafficFlowObserved");
  o.raw("dateObserved", property(jsonString(!from.empty() && !to.empty() ? from + "/" + to : at)));
  if (!from.empty()) o.raw("dateObservedFrom", property(jsonString(from)));
  if (!to.empty()) o.raw("dateObservedTo", property(jsonString(to)));
  if (t.has_location()) location(o, t.location());
  if (t.lane_id() != 0) o.raw("laneId", property(std::to_string(t.lane_id())));
  if (t.lane_direction() == pb::FORWARD) o.raw("laneDirection", property(jsonString("forward")));
  if (t.lane_direction() == pb::BACKWARD) o.raw("laneDirection", property(jsonString("backward")));
  if (t.has_intensity()) measurement(o, "intensity", t.intensity(), at);
  if (t.has_occupancy()) measurement(o, "occupancy", t.occupancy(), at);
  if (t.has_average_vehicle_speed()) measurement(o, "averageVehicleSpeed", t.average_vehicle_speed(), at);
  if (t.has_average_vehicle_length()) measurement(o, "averageVehicleLength", t.average_vehicle_length(), at);
  if (t.has_average_headway_time()) measurement(o, "averageHeadwayTime", t.average_headway_time(), at);
  if (t.has_average_gap_distance()) measurement(o, "averageGapDistance", t.average_gap_distance(), at);
  if (t.congested()) o.raw("congested", property("true", {}, at));
  if (!t.vehicle_type().empty()) o.raw("vehicleType", property(jsonString(t.vehicle_type())));
  context(o, "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld");
  o.close();
  return e;
}

const char* parkingStatus(pb::ParkingStatus s) {
  switch (s) {
    case pb::FREE:
      return "free";
    case pb::OCCUPIED:
      return "occupied";
    case pb::CLOSED:
      return "closed";
    default:
      return "unknown";
  }
}

Entity parkingSpot(const pb::Reading& r, const pb::ParkingSpot& p) {
  Entity e{entityId(p.id(), "ParkingSpot", r.sensor_id()), "ParkingSpot", {}};
  const std::string at = isoTime(r.observed_at());
  Object o(e.json);
  header(o, e.id, "ParkingSpot");
  o.raw("status", property(jsonString(parkingStatus(p.status())), {},
                           p.has_status_changed_at() ? isoTime(p.status_changed_at()) : at));
  if (p.category_size() != 0) {
    std::string list = "[";
    for (int i = 0; i < p.category_size(); ++i) list += (i != 0 ? "," : "") + jsonString(p.category(i));
    o.raw("category", property(list + "]"));
  }
  if (!p.ref_parking_site().empty()) {
    o.raw("refParkingSite", R"({"type":"Relationship","object":)" + jsonString(p.ref_parking_site()) + "}");
  }
  if (p.has_location()) location(o, p.location());
  if (p.has_temperature()) measurement(o, "temperature", p.temperature(), at);
  if (p.has_battery_voltage()) measurement(o, "batteryVoltage", p.battery_voltage(), at);
  context(o, "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld");
  o.close();
  return e;
}

}  // namespace

int decimalsFor(std::string_view unitCode) {
  static constexpr std::pair<std::string_view, int> kDecimals[] = {
      {"GQ", 1},  {"GP", 3}, {"CEL", 2}, {"C62", 4}, {"A97", 1}, {"KMH", 1}, {"MTR", 2}, {"SEC", 2},
      {"MTS", 2}, {"DD", 1}, {"59", 3},  {"61", 1},  {"H87", 0}, {"P1", 2},  {"VLT", 3},
  };
  for (const auto& [code, d] : kDecimals) {
    if (code == unitCode) return d;
  }
  return 6;
}

std::string formatNumber(double value, int decimals) {
  if (!std::isfinite(value)) return "null";
  double v = value;
  if (decimals >= 0 && decimals <= 15) {
    const double scale = std::pow(10.0, decimals);
    // Past 2^53 every double is an integer already; rounding would only add noise.
    if (std::fabs(value * scale) < 9.0e15) v = std::round(value * scale) / scale;
  }
  if (v == 0.0) v = 0.0;  // no "-0"
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string isoTime(const google::protobuf::Timestamp& t) {
  const std::time_t secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler can imagine in each field
  const int ms = t.nanos() / 1000000;
  if (ms != 0) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

std::optional<Entity> toNgsiLd(const pb::Reading& reading) {
  switch (reading.observation_case()) {
    case pb::Reading::kAirQualityObserved:
      return airQuality(reading, reading.air_quality_observed());
    case pb::Reading::kTrafficFlowObserved:
      return trafficFlow(reading, reading.traffic_flow_observed());
    case pb::Reading::kParkingSpot:
      return parkingSpot(reading, reading.parking_spot());
    default:
      return std::nullopt;
  }
}

}  // namespace citygate::ingest
