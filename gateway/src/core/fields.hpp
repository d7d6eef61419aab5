// The observation fields a profile point or a LoRa codec may fill, per observation kind, with
// their canonical UN/CEFACT unit, and the source units each field accepts (with the conversion
// into the canonical unit). Pure tables; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "citygate/v1/config.pb.h"
#include "citygate/v1/reading.pb.h"

namespace citygate::core {

namespace pb = citygate::v1;

// value_canonical = value_source * factor + offset
struct Conversion {
  double factor = 1.0;
  double offset = 0.0;
};

// A resolved observation field: its kind and its row in the one field table (core/fields.cpp).
// Generic points have index -1 and use their own name as the map key.
struct FieldRef {
  pb::ObservationKind kind = pb::OBSERVATION_KIND_UNSPECIFIED;
  int index = -1;

  bool isGeneric() const { return index < 0; }
};

enum class FieldType : std::uint8_t { Measurement, ParkingStatus, Flag };

struct FieldInfo {
  std::string_view name;
  std::string_view canonicalUnit;  // UN/CEFACT code
  FieldType type;
  std::string_view fiwareName;  // the FIWARE attribute (the reading's JSON name), e.g. relativeHumidity
};

// Looks a field up by name for a kind; nullopt when the kind has no such field (GENERIC accepts
// any name matching [a-z0-9_]{1,48}).
std::optional<FieldRef> findField(pb::ObservationKind kind, std::string_view name);
const FieldInfo& fieldInfo(FieldRef ref);
// Every field of a kind, in table order (none for GENERIC).
std::vector<FieldRef> fieldsOf(pb::ObservationKind kind);

// Converts `unit` (a source unit name such as "ppb", "%", "degF", "mm", or a UN/CEFACT code)
// into the field's canonical unit. An empty unit means "already canonical". Returns nullopt and
// sets `why` when the unit is unknown or cannot describe this field.
std::optional<Conversion> conversionFor(FieldRef field, std::string_view unit, std::string* why);

// For generic points: the UN/CEFACT code of a source unit name ("V" -> "VLT"); unknown names are
// kept as written.
std::string genericUnitCode(std::string_view unit);

// The Measurement slot of a field in an observation, created on first use; nullptr for a field
// of another kind, a flag, a parking status or a generic point.
pb::Measurement* mutableMeasurement(pb::AirQualityObserved& obs, FieldRef field);
pb::Measurement* mutableMeasurement(pb::TrafficFlowObserved& obs, FieldRef field);
pb::Measurement* mutableMeasurement(pb::ParkingSpot& obs, FieldRef field);

}  // namespace citygate::core
