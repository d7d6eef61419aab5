// A citygate.v1.Reading as a FIWARE NGSI-LD entity in normalized form: AirQualityObserved,
// TrafficFlowObserved or ParkingSpot (the Reading's observation oneof), with the Smart Data
// Models' @context and the NGSI-LD core context, every attribute a Property (`location` a
// GeoProperty Point [lon, lat], refParkingSite a Relationship), measurements with unitCode and
// observedAt. Measurements of BAD quality, and NaN or infinite values, are left out.
//
// Numbers are written without float noise: rounded to the decimals that are meaningful for the
// measurement's unit (decimalsFor), then the shortest text that reads back as the same double
// (std::to_chars): 28.4, never 28.400000000000002.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/json.hpp"

#include "citygate/v1/reading.pb.h"

namespace citygate::ingest {

// The decimals worth keeping for a UN/CEFACT unit code (reading.proto's list); 6 for others.
int decimalsFor(std::string_view unitCode);

// `value` rounded to `decimals` places and written as the shortest JSON number that round-trips.
// Not finite: "null".
std::string formatNumber(double value, int decimals);

// RFC 3339 / ISO 8601 UTC: 2026-12-02T16:28:16Z, with milliseconds when they are not zero.
std::string isoTime(const google::protobuf::Timestamp& t);

using core::jsonString;  // core/json.hpp

struct Entity {
  std::string id;
  std::string type;
  std::string json;  // one line
};

// The entity for a reading; nullopt for a GenericObservation (no FIWARE model) or no observation.
std::optional<Entity> toNgsiLd(const citygate::v1::Reading& reading);

}  // namespace citygate::ingest
