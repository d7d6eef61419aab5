#include "outputs/sparkplug/metrics.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <string>

#include "core/fields.hpp"

namespace citygate::sparkplug {

namespace pb = citygate::v1;

namespace {

std::string prefixOf(std::uint32_t lane, std::string_view bay) {
  if (lane > 0) return "lane" + std::to_string(lane) + "/";
  if (!bay.empty()) return std::string(bay) + "/";
  return {};
}

std::uint64_t millisOf(const google::protobuf::Timestamp& t) {
  if (t.seconds() < 0) return 0;
  return static_cast<std::uint64_t>(t.seconds()) * 1000U + static_cast<std::uint64_t>(t.nanos() / 1000000);
}

// One reading's common part of every metric it makes.
struct ReadingContext {
  MetricTable& table;
  DeviceMetrics& device;
  spb::Payload& out;
  std::uint64_t timestamp;
  std::uint64_t seq;
  bool historical;
  pb::Quality quality;  // the reading's (a measurement without its own takes it)

  spb::Payload::Metric& add(const std::string& name, spb::DataType type, pb::Quality q) const {
    const MetricDef& def = table.metric(device, name, type);
    auto* m = out.add_metrics();
    m->set_alias(def.alias);
    m->set_timestamp(timestamp);
    if (historical) m->set_is_historical(true);
    auto* props = m->mutable_properties();
    props->add_keys("seq");
    auto* s = props->add_values();
    s->set_type(spb::UInt64);
    s->set_long_value(seq);
    if (q == pb::QUALITY_UNSPECIFIED) q = quality;
    if (q == pb::BAD || q == pb::UNCERTAIN) {
      props->add_keys("Quality");
      auto* v = props->add_values();
      v->set_type(spb::Int32);
      v->set_int_value(static_cast<std::uint32_t>(kQualityBad));
    }
    if (q == pb::UNCERTAIN) {
      props->add_keys("Uncertain");
      auto* v = props->add_values();
      v->set_type(spb::Boolean);
      v->set_boolean_value(true);
    }
    return *m;
  }

  void measurement(const std::string& name, const pb::Measurement& value) const {
    add(name, spb::Double, value.quality()).set_double_value(value.value());
  }
};

// Every Measurement set in `obs` (air quality, traffic, parking): the FIWARE field is the proto
// field's JSON name (relative_humidity -> relativeHumidity), as core/fields.cpp names them
// (tests/unit/outputs/sparkplug/metrics_test.cpp holds the two together).
void measurementsOf(const google::protobuf::Message& obs, const std::string& prefix, const ReadingContext& c) {
  const auto* refl = obs.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  refl->ListFields(obs, &fields);
  for (const auto* f : fields) {
    if (f->message_type() != pb::Measurement::descriptor()) continue;
    c.measurement(prefix + f->json_name(), static_cast<const pb::Measurement&>(refl->GetMessage(obs, f)));
  }
}

}  // namespace

std::string metricName(const core::PointSpec& point) {
  const std::string field = point.field.isGeneric() ? point.name : std::string(core::fieldInfo(point.field).fiwareName);
  return prefixOf(point.lane, point.bay) + field;
}

std::string_view parkingStatusText(pb::ParkingStatus status) {
  switch (status) {
    case pb::FREE:
      return "free";
    case pb::OCCUPIED:
      return "occupied";
    case pb::CLOSED:
      return "closed";
    case pb::UNKNOWN:
      return "unknown";
    default:
      return {};
  }
}

DeviceMetrics& MetricTable::device(std::string_view id) {
  if (auto* d = find(id)) return *d;
  auto d = std::make_unique<DeviceMetrics>();
  d->id = std::string(id);
  auto* raw = d.get();
  devices_.push_back(std::move(d));
  byId_.emplace(raw->id, raw);
  return *raw;
}

DeviceMetrics* MetricTable::find(std::string_view id) {
  const auto it = byId_.find(std::string(id));
  return it == byId_.end() ? nullptr : it->second;
}

const MetricDef& MetricTable::metric(DeviceMetrics& device, std::string_view name, spb::DataType type) {
  const auto it = device.byName.find(std::string(name));
  if (it != device.byName.end()) return device.metrics[it->second];
  MetricDef def;
  def.name = std::string(name);
  def.alias = nextAlias_++;
  def.type = type;
  device.byName.emplace(def.name, device.metrics.size());
  device.metrics.push_back(std::move(def));
  device.changed = true;
  return device.metrics.back();
}

void MetricTable::addSensor(const core::SensorSpec& sensor) {
  DeviceMetrics& d = device(sensor.id);
  for (const auto& p : sensor.points) {
    spb::DataType type = spb::Double;
    if (p.text) {
      type = spb::String;
    } else if (!p.field.isGeneric()) {
      switch (core::fieldInfo(p.field).type) {
        case core::FieldType::ParkingStatus:
          type = spb::String;
          break;
        case core::FieldType::Flag:
          type = spb::Boolean;
          break;
        case core::FieldType::Measurement:
          break;
      }
    }
    const std::size_t before = d.metrics.size();
    const MetricDef& def = metric(d, metricName(p), type);
    if (d.metrics.size() == before) continue;  // another point of the same name
    auto& added = d.metrics.back();
    if (type == spb::Double) added.unit = p.unitCode;
    if (p.writable) {
      added.point = p.name;
      added.lane = p.lane;
      added.bay = p.bay;
    }
    (void)def;
  }
}

const MetricDef* MetricTable::byAlias(const DeviceMetrics& device, std::uint64_t alias) const {
  for (const auto& m : device.metrics) {
    if (m.alias == alias) return &m;
  }
  return nullptr;
}

void appendReadingMetrics(MetricTable& table, DeviceMetrics& device, const pb::Reading& reading, bool historical,
                          spb::Payload& out) {
  const ReadingContext c{table,      device,           out, millisOf(reading.observed_at()), reading.seq(),
                         historical, reading.quality()};
  switch (reading.observation_case()) {
    case pb::Reading::kAirQualityObserved:
      measurementsOf(reading.air_quality_observed(), {}, c);
      break;
    case pb::Reading::kTrafficFlowObserved: {
      const auto& t = reading.traffic_flow_observed();
      const std::string prefix = prefixOf(t.lane_id(), {});
      measurementsOf(t, prefix, c);
      // proto3 has no presence for a bool: congested is sent when the device announced it (or true).
      const std::string congested = prefix + "congested";
      if (t.congested() || device.byName.contains(congested)) {
        c.add(congested, spb::Boolean, pb::QUALITY_UNSPECIFIED).set_boolean_value(t.congested());
      }
      break;
    }
    case pb::Reading::kParkingSpot: {
      const auto& p = reading.parking_spot();
      const std::string prefix = prefixOf(0, p.bay());
      if (const auto text = parkingStatusText(p.status()); !text.empty()) {
        c.add(prefix + "status", spb::String, pb::QUALITY_UNSPECIFIED).set_string_value(std::string(text));
      }
      measurementsOf(p, prefix, c);
      break;
    }
    case pb::Reading::kGeneric: {
      // Map order is unspecified; the metrics of one reading share its timestamp and seq anyway.
      for (const auto& [key, m] : reading.generic().values()) c.measurement(key, m);
      for (const auto& [key, text] : reading.generic().text_values()) {
        c.add(key, spb::String, pb::QUALITY_UNSPECIFIED).set_string_value(text);
      }
      break;
    }
    case pb::Reading::OBSERVATION_NOT_SET:
      break;
  }
}

void appendBirthMetrics(const DeviceMetrics& device, std::uint64_t atMs, spb::Payload& out) {
  for (const auto& def : device.metrics) {
    auto* m = out.add_metrics();
    m->set_name(def.name);
    m->set_alias(def.alias);
    m->set_timestamp(atMs);
    m->set_datatype(static_cast<std::uint32_t>(def.type));
    m->set_is_null(true);
    if (!def.unit.empty()) {
      auto* props = m->mutable_properties();
      props->add_keys("engUnit");
      auto* v = props->add_values();
      v->set_type(spb::String);
      v->set_string_value(def.unit);
    }
  }
}

}  // namespace citygate::sparkplug
