// The Sparkplug metric model of the gateway's devices: each configured device (a Reading's
// sensor_id) is a Sparkplug device; each value a reading can carry is one metric, named after its
// FIWARE field (README "Sparkplug B"):
//   air quality      "pm25", "no2", "relativeHumidity", ...
//   traffic          "lane<N>/<field>" ("lane1/intensity", "lane1/congested"), "<field>" without a lane
//   parking          "status" (String free|occupied|closed|unknown), "temperature", ...; "<bay>/..." per bay
//   generic          the point's key; STRING points as String
// Measurements are Double, flags Boolean, statuses and texts String.
//
// MetricTable holds every device's metrics with their aliases (unique across the edge node, the
// node's own metrics first). The metrics of a device come from its SensorSpec (every point it can
// report: the DBIRTH); a value no point announced (a codec's extra field) is added when it first
// appears, and the device is born again before the DDATA that carries it, so a DDATA never names a
// metric its DBIRTH did not.
//
// MetricWriter turns one serialized citygate.v1.Reading into DDATA metrics: alias, the reading's
// observed_at, the value, is_historical, and the properties "seq" (the native Reading.seq) and
// "Quality" (only when not GOOD: 0, with "Uncertain" true for UNCERTAIN).
//
// Threading: executor only (owned by the EdgeNode).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "citygate/v1/reading.pb.h"
#include "core/sensor.hpp"
#include "sparkplug_b/sparkplug_b.pb.h"

namespace citygate::sparkplug {

namespace spb = org::eclipse::tahu::protobuf;

// Sparkplug's Quality property values: the specification allows 0 BAD, 192 GOOD and 500 STALE
// only ([tck-id-payloads-propertyset-quality-value-value]). An UNCERTAIN value (read, outside its
// plausible range) is sent as BAD with the property "Uncertain" (Boolean true): a host must not
// take it as good, and one that looks can still tell it from a failed read.
constexpr std::int32_t kQualityGood = 192;
constexpr std::int32_t kQualityBad = 0;

struct MetricDef {
  std::string name;
  std::uint64_t alias = 0;
  spb::DataType type = spb::Double;
  std::string unit;  // UN/CEFACT code (the DBIRTH's "engUnit" property); empty: none
  // A writable point behind the metric (a DCMD may write it): the point's field, lane and bay.
  std::string point;
  std::uint32_t lane = 0;
  std::string bay;
};

struct DeviceMetrics {
  std::string id;
  std::vector<MetricDef> metrics;
  std::unordered_map<std::string, std::size_t> byName;
  bool changed = false;  // a metric was added since the last DBIRTH
};

// The metric name of a point: its FIWARE field (or generic key) under its lane or bay.
std::string metricName(const core::PointSpec& point);
// Parking status as the String metric carries it ("free", ...); empty for UNSPECIFIED.
std::string_view parkingStatusText(citygate::v1::ParkingStatus status);

class MetricTable {
 public:
  // Device aliases start at `firstAlias` (the node's metrics use those below).
  explicit MetricTable(std::uint64_t firstAlias) : nextAlias_(firstAlias) {}

  // The device `id`, made (with no metrics) on first use. Stable addresses: devices are never
  // removed (a device dropped from the configuration simply sends nothing more).
  DeviceMetrics& device(std::string_view id);
  DeviceMetrics* find(std::string_view id);
  // Adds every point of `sensor` to its device (once per name).
  void addSensor(const core::SensorSpec& sensor);
  // The metric `name` of `device`, added with `type` when new (the device's `changed` set).
  const MetricDef& metric(DeviceMetrics& device, std::string_view name, spb::DataType type);
  // Every device, in the order they were first seen.
  const std::vector<std::unique_ptr<DeviceMetrics>>& devices() const { return devices_; }
  // A metric of any device by alias (DCMD by alias); nullptr if none.
  const MetricDef* byAlias(const DeviceMetrics& device, std::uint64_t alias) const;

 private:
  std::vector<std::unique_ptr<DeviceMetrics>> devices_;
  std::unordered_map<std::string, DeviceMetrics*> byId_;
  std::uint64_t nextAlias_;
};

// Appends the DDATA metrics of `reading` to `out` (aliases only; names the table did not know are
// added to it first).
void appendReadingMetrics(MetricTable& table, DeviceMetrics& device, const citygate::v1::Reading& reading,
                          bool historical, spb::Payload& out);

// The DBIRTH metrics of `device`: name, alias, datatype, timestamp `atMs`, is_null (no value is
// held between readings), "engUnit" for measurements.
void appendBirthMetrics(const DeviceMetrics& device, std::uint64_t atMs, spb::Payload& out);

}  // namespace citygate::sparkplug
