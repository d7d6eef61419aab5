// What the pipeline knows about one configured sensor, compiled from the config and its profile
// or codec before any I/O, and the raw samples its source produces.
//
// A source (Modbus bus, LoRa packet forwarder) produces RawSamples on the executor: one value per
// PointSpec of the sensor, in the source's unit, before scale/offset. The Normaliser turns a
// RawSample into Readings.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/fields.hpp"
#include "core/time.hpp"

namespace citygate::core {

struct PointSpec {
  std::string name;  // field name, or the generic key
  FieldRef field;
  double scale = 1.0;
  double offset = 0.0;
  Conversion conversion;
  std::string unitCode;  // canonical UN/CEFACT code written into Measurement.unit_code
  bool hasRange = false;
  double min = 0.0;
  double max = 0.0;
  std::uint32_t lane = 0;
  pb::LaneDirection laneDirection = pb::LANE_DIRECTION_UNSPECIFIED;
  std::string bay;
  bool invert = false;
  // report by exception (0 = off; see core/report_by_exception.hpp)
  double deadbandAbsolute = 0.0;
  double deadbandPercent = 0.0;
  std::uint32_t maxSilentS = 0;
  std::uint32_t address = 0;  // Modbus PDU address, for the reading's source
  bool text = false;          // a STRING point: its value is text (GenericObservation.text_values)
  bool writable = false;      // commands may write it (the profile's writable range)

  bool hasDeadband() const { return deadbandAbsolute > 0 || deadbandPercent > 0; }
  // The one scaling of a raw value into the field's canonical unit (the normaliser's value, and
  // what report by exception compares). An integer raw value (every register type but the
  // floats) scaled by decimal factors is a decimal number: it is rounded to the decimals the scale,
  // offset and conversion have (decimalsOf), so that 284 * 0.1 is 28.4 and not 28.400000000000002
  // (the float noise a platform's JSON would show); nothing the scaling meant is rounded away.
  double canonical(double raw) const {
    const double v = (raw * scale + offset) * conversion.factor + conversion.offset;
    if (raw != std::floor(raw) || !std::isfinite(v)) return v;
    const double p = decimalScale_ != 0 ? decimalScale_ : computeDecimalScale();
    return std::round(v * p) / p;
  }
  // Fixes the scaling's decimals once scale, offset and conversion are set (the spec builders call
  // it; without it canonical() works them out on every call).
  void prepare() { decimalScale_ = computeDecimalScale(); }

 private:
  // 10^decimals for the scaling above, from scale, offset and conversion.
  double computeDecimalScale() const;
  double decimalScale_ = 0;
};

// The decimals (0..12) a decimal constant has: 0.1 -> 1, 1.9125 -> 4, 273.15 -> 2; 12 for one with
// no short decimal form (1/3).
int decimalsOf(double x);

// One output group: the points that make one Reading (a traffic lane, a parking bay, or all the
// points of an air-quality or generic sensor).
struct ReadingGroup {
  std::string entityId;  // FIWARE id
  std::string bay;
  std::uint32_t lane = 0;
  pb::LaneDirection laneDirection = pb::LANE_DIRECTION_UNSPECIFIED;
  std::vector<std::uint16_t> points;  // indices into SensorSpec::points
};

struct SensorSpec {
  std::string id;
  pb::ObservationKind kind = pb::OBSERVATION_KIND_UNSPECIFIED;
  std::vector<PointSpec> points;
  std::vector<ReadingGroup> groups;
  std::optional<pb::GeoPoint> location;
  std::string refParkingSite;
  std::string category;  // parking: onStreet / offStreet
  pb::Source source;     // static part (Modbus bus/unit); LoRa fills the rest per frame
};

// Builds SensorSpec::groups from its kind and points (lanes for traffic, bays for parking).
void buildGroups(SensorSpec& spec);

struct RawValue {
  enum class State : std::uint8_t { Ok, Bad, Skip };  // Skip: unchanged inside its deadband
  double value = 0.0;
  State state = State::Bad;
};

struct LoraMeta {
  std::uint32_t fCnt = 0;
  std::uint32_t fPort = 0;
  double rssi = 0;
  double snr = 0;
  double frequency = 0;
  std::string dataRate;
  std::string gatewayEui;
  std::uint32_t receptions = 1;
};

// Report by exception's memory of one point: the canonical value last let through, and when.
struct LastReported {
  double value = 0.0;
  WallTime at;
};

// What the pipeline remembers of one sensor between its samples. Owned by the source (one per
// device), used on the executor only.
struct SensorMemory {
  // Report by exception, per point (aligned with SensorSpec::points; none until one is sent).
  std::vector<std::optional<LastReported>> lastReported;
  std::uint64_t samplesHeldBack = 0;  // samples report by exception found unchanged entirely
  // The normaliser, per group.
  std::vector<pb::ParkingStatus> lastStatus;
  std::vector<std::optional<WallTime>> statusChangedAt;  // none until a status is seen
};

struct RawSample {
  WallTime observedAt;
  WallTime periodStart;                                      // traffic: start of the counting period
  std::vector<RawValue> values;                              // aligned with SensorSpec::points
  std::vector<std::pair<std::uint16_t, std::string>> texts;  // STRING points: (point index, text)
  std::optional<LoraMeta> lora;
};

}  // namespace citygate::core
