#include "core/fields.hpp"

#include <array>
#include <cmath>

namespace citygate::core {
namespace {

using AirSlot = pb::Measurement* (pb::AirQualityObserved::*)();
using TrafficSlot = pb::Measurement* (pb::TrafficFlowObserved::*)();
using ParkingSlot = pb::Measurement* (pb::ParkingSpot::*)();

// One row per observation field: what a profile or codec names it, its kind, canonical UN/CEFACT
// unit, type, FIWARE attribute name (the reading's JSON name), its Measurement in the observation
// message (none for a flag or a status), and for gases the ppb -> canonical factor.
//
// Gases: molar volume at 20 °C and 101.325 kPa is 24.055 L/mol, so ppb -> µg/m³ = M / 24.055.
// The contract fixes the factors of the regulated gases (NO2 1.912, O3 1.995, SO2 2.663, CO
// ppm -> mg/m³ 1.164); the others use M / 24.055.
struct FieldRow {
  FieldInfo info;
  pb::ObservationKind kind;
  AirSlot air = nullptr;
  TrafficSlot traffic = nullptr;
  ParkingSlot parking = nullptr;
  double ppbToCanonical = 0.0;  // 0: not a gas
};

constexpr FieldRow air(std::string_view name, std::string_view unit, std::string_view fiware, AirSlot slot,
                       double ppbToCanonical = 0.0) {
  return FieldRow{
      {name, unit, FieldType::Measurement, fiware}, pb::AIR_QUALITY, slot, nullptr, nullptr, ppbToCanonical};
}
constexpr FieldRow traffic(std::string_view name, std::string_view unit, FieldType type, std::string_view fiware,
                           TrafficSlot slot) {
  return FieldRow{{name, unit, type, fiware}, pb::TRAFFIC, nullptr, slot, nullptr, 0.0};
}
constexpr FieldRow parking(std::string_view name, std::string_view unit, FieldType type, std::string_view fiware,
                           ParkingSlot slot) {
  return FieldRow{{name, unit, type, fiware}, pb::PARKING, nullptr, nullptr, slot, 0.0};
}

using Air = pb::AirQualityObserved;
using Traffic = pb::TrafficFlowObserved;
using Parking = pb::ParkingSpot;
constexpr auto kMeasurement = FieldType::Measurement;

const std::array kFields{
    air("no2", "GQ", "no2", &Air::mutable_no2, 1.912),
    air("no", "GQ", "no", &Air::mutable_no, 30.006 / 24.055),
    air("nox", "GQ", "nox", &Air::mutable_nox, 1.912),  // NOx reported as NO2
    air("o3", "GQ", "o3", &Air::mutable_o3, 1.995),
    air("co", "GP", "co", &Air::mutable_co, 0.001164),  // ppb -> mg/m³
    air("co2", "GQ", "co2", &Air::mutable_co2, 44.01 / 24.055),
    air("so2", "GQ", "so2", &Air::mutable_so2, 2.663),
    air("pm1", "GQ", "pm1", &Air::mutable_pm1),
    air("pm25", "GQ", "pm25", &Air::mutable_pm25),
    air("pm4", "GQ", "pm4", &Air::mutable_pm4),
    air("pm10", "GQ", "pm10", &Air::mutable_pm10),
    air("temperature", "CEL", "temperature", &Air::mutable_temperature),
    air("relative_humidity", "C62", "relativeHumidity", &Air::mutable_relative_humidity),
    air("pressure", "A97", "pressure", &Air::mutable_pressure),
    air("wind_speed", "MTS", "windSpeed", &Air::mutable_wind_speed),
    air("wind_direction", "DD", "windDirection", &Air::mutable_wind_direction),
    air("sh2", "GQ", "sh2", &Air::mutable_sh2, 34.08 / 24.055),
    air("volatile_organic_compounds_total", "GQ", "volatileOrganicCompoundsTotal",
        &Air::mutable_volatile_organic_compounds_total, 78.11 / 24.055),  // as benzene equivalent

    traffic("intensity", "H87", kMeasurement, "intensity", &Traffic::mutable_intensity),
    traffic("occupancy", "C62", kMeasurement, "occupancy", &Traffic::mutable_occupancy),
    traffic("average_vehicle_speed", "KMH", kMeasurement, "averageVehicleSpeed",
            &Traffic::mutable_average_vehicle_speed),
    traffic("average_vehicle_length", "MTR", kMeasurement, "averageVehicleLength",
            &Traffic::mutable_average_vehicle_length),
    traffic("average_headway_time", "SEC", kMeasurement, "averageHeadwayTime", &Traffic::mutable_average_headway_time),
    traffic("average_gap_distance", "MTR", kMeasurement, "averageGapDistance", &Traffic::mutable_average_gap_distance),
    traffic("congested", "", FieldType::Flag, "congested", nullptr),

    parking("status", "", FieldType::ParkingStatus, "status", nullptr),
    parking("temperature", "CEL", kMeasurement, "temperature", &Parking::mutable_temperature),
    parking("battery_voltage", "VLT", kMeasurement, "batteryVoltage", &Parking::mutable_battery_voltage),
};

const FieldInfo kGenericInfo{"", "", FieldType::Measurement, ""};

const FieldRow* row(FieldRef ref) {
  if (ref.index < 0 || static_cast<std::size_t>(ref.index) >= kFields.size()) return nullptr;
  const FieldRow& r = kFields[static_cast<std::size_t>(ref.index)];
  return r.kind == ref.kind ? &r : nullptr;
}

bool validGenericName(std::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Source unit names accepted in profiles, with the quantity they measure.
enum class Dim { Concentration, Temperature, Fraction, Pressure, Speed, Length, Time, Count, Voltage, Angle };

struct UnitDef {
  std::string_view name;
  Dim dim;
  double toBase;      // value_base = value * toBase + offsetBase
  double offsetBase;  // base units: µg/m³ (mass conc.), °C, fraction, hPa, km/h, m, s, 1, V, deg
  std::string_view code;
};

constexpr std::array kUnits{
    UnitDef{"ug/m3", Dim::Concentration, 1, 0, "GQ"},
    UnitDef{"GQ", Dim::Concentration, 1, 0, "GQ"},
    UnitDef{"mg/m3", Dim::Concentration, 1000, 0, "GP"},
    UnitDef{"GP", Dim::Concentration, 1000, 0, "GP"},
    UnitDef{"degC", Dim::Temperature, 1, 0, "CEL"},
    UnitDef{"CEL", Dim::Temperature, 1, 0, "CEL"},
    UnitDef{"degF", Dim::Temperature, 5.0 / 9.0, -32.0 * 5.0 / 9.0, "FAH"},
    UnitDef{"K", Dim::Temperature, 1, -273.15, "KEL"},
    UnitDef{"fraction", Dim::Fraction, 1, 0, "C62"},
    UnitDef{"C62", Dim::Fraction, 1, 0, "C62"},
    UnitDef{"%", Dim::Fraction, 0.01, 0, "P1"},
    UnitDef{"%RH", Dim::Fraction, 0.01, 0, "P1"},
    UnitDef{"P1", Dim::Fraction, 0.01, 0, "P1"},
    UnitDef{"hPa", Dim::Pressure, 1, 0, "A97"},
    UnitDef{"A97", Dim::Pressure, 1, 0, "A97"},
    UnitDef{"mbar", Dim::Pressure, 1, 0, "MBR"},
    UnitDef{"Pa", Dim::Pressure, 0.01, 0, "PAL"},
    UnitDef{"kPa", Dim::Pressure, 10, 0, "KPA"},
    UnitDef{"km/h", Dim::Speed, 1, 0, "KMH"},
    UnitDef{"KMH", Dim::Speed, 1, 0, "KMH"},
    UnitDef{"m/s", Dim::Speed, 3.6, 0, "MTS"},
    UnitDef{"MTS", Dim::Speed, 3.6, 0, "MTS"},
    UnitDef{"mph", Dim::Speed, 1.609344, 0, "HM"},
    UnitDef{"m", Dim::Length, 1, 0, "MTR"},
    UnitDef{"MTR", Dim::Length, 1, 0, "MTR"},
    UnitDef{"cm", Dim::Length, 0.01, 0, "CMT"},
    UnitDef{"mm", Dim::Length, 0.001, 0, "MMT"},
    UnitDef{"dm", Dim::Length, 0.1, 0, "DMT"},
    UnitDef{"s", Dim::Time, 1, 0, "SEC"},
    UnitDef{"SEC", Dim::Time, 1, 0, "SEC"},
    UnitDef{"ms", Dim::Time, 0.001, 0, "C26"},
    UnitDef{"ds", Dim::Time, 0.1, 0, "SEC"},
    UnitDef{"count", Dim::Count, 1, 0, "H87"},
    UnitDef{"H87", Dim::Count, 1, 0, "H87"},
    UnitDef{"V", Dim::Voltage, 1, 0, "VLT"},
    UnitDef{"VLT", Dim::Voltage, 1, 0, "VLT"},
    UnitDef{"mV", Dim::Voltage, 0.001, 0, "2Z"},
    UnitDef{"deg", Dim::Angle, 1, 0, "DD"},
    UnitDef{"DD", Dim::Angle, 1, 0, "DD"},
};

const UnitDef* findUnit(std::string_view name) {
  for (const auto& u : kUnits) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

// The dimension and base->canonical factor of each canonical code.
struct Canonical {
  std::string_view code;
  Dim dim;
  double baseToCanonical;
};
constexpr std::array kCanonical{
    Canonical{"GQ", Dim::Concentration, 1},  Canonical{"GP", Dim::Concentration, 0.001},
    Canonical{"CEL", Dim::Temperature, 1},   Canonical{"C62", Dim::Fraction, 1},
    Canonical{"A97", Dim::Pressure, 1},      Canonical{"KMH", Dim::Speed, 1},
    Canonical{"MTS", Dim::Speed, 1.0 / 3.6}, Canonical{"MTR", Dim::Length, 1},
    Canonical{"SEC", Dim::Time, 1},          Canonical{"H87", Dim::Count, 1},
    Canonical{"VLT", Dim::Voltage, 1},       Canonical{"DD", Dim::Angle, 1},
};

}  // namespace

std::optional<FieldRef> findField(pb::ObservationKind kind, std::string_view name) {
  if (kind == pb::GENERIC) {
    if (validGenericName(name)) return FieldRef{kind, -1};
    return std::nullopt;
  }
  for (std::size_t i = 0; i < kFields.size(); ++i) {
    if (kFields[i].kind == kind && kFields[i].info.name == name) return FieldRef{kind, static_cast<int>(i)};
  }
  return std::nullopt;
}

const FieldInfo& fieldInfo(FieldRef ref) {
  const FieldRow* r = row(ref);
  return r != nullptr ? r->info : kGenericInfo;
}

std::optional<Conversion> conversionFor(FieldRef field, std::string_view unit, std::string* why) {
  const FieldInfo& info = fieldInfo(field);
  if (field.isGeneric() || info.type != FieldType::Measurement) {
    if (!field.isGeneric() && !unit.empty()) {
      if (why) *why = "field '" + std::string(info.name) + "' has no unit";
      return std::nullopt;
    }
    return Conversion{};
  }
  if (unit.empty() || unit == info.canonicalUnit) return Conversion{};

  const Canonical* canon = nullptr;
  for (const auto& c : kCanonical) {
    if (c.code == info.canonicalUnit) canon = &c;
  }
  if (unit == "ppb" || unit == "ppm" || unit == "61" || unit == "59") {
    const double perPpb = (unit == "ppm" || unit == "59") ? 1000.0 : 1.0;
    if (const FieldRow* r = row(field); r != nullptr && r->ppbToCanonical > 0) {
      return Conversion{r->ppbToCanonical * perPpb, 0.0};
    }
    if (why) *why = "'" + std::string(unit) + "' cannot be converted for '" + std::string(info.name) + "' (not a gas)";
    return std::nullopt;
  }
  const UnitDef* def = findUnit(unit);
  if (def == nullptr) {
    if (why) *why = "unknown unit '" + std::string(unit) + "'";
    return std::nullopt;
  }
  if (canon == nullptr || canon->dim != def->dim) {
    if (why) {
      *why = "unit '" + std::string(unit) + "' does not measure '" + std::string(info.name) + "' (canonical " +
             std::string(info.canonicalUnit) + ")";
    }
    return std::nullopt;
  }
  return Conversion{def->toBase * canon->baseToCanonical, def->offsetBase * canon->baseToCanonical};
}

std::string genericUnitCode(std::string_view unit) {
  if (const UnitDef* def = findUnit(unit)) return std::string(def->code);
  if (unit == "ppb") return "61";
  if (unit == "ppm") return "59";
  return std::string(unit);
}

pb::Measurement* mutableMeasurement(pb::AirQualityObserved& o, FieldRef field) {
  const FieldRow* r = row(field);
  return r != nullptr && r->air != nullptr ? (o.*(r->air))() : nullptr;
}

pb::Measurement* mutableMeasurement(pb::TrafficFlowObserved& o, FieldRef field) {
  const FieldRow* r = row(field);
  return r != nullptr && r->traffic != nullptr ? (o.*(r->traffic))() : nullptr;
}

pb::Measurement* mutableMeasurement(pb::ParkingSpot& o, FieldRef field) {
  const FieldRow* r = row(field);
  return r != nullptr && r->parking != nullptr ? (o.*(r->parking))() : nullptr;
}

std::vector<FieldRef> fieldsOf(pb::ObservationKind kind) {
  std::vector<FieldRef> out;
  for (std::size_t i = 0; i < kFields.size(); ++i) {
    if (kFields[i].kind == kind) out.push_back(FieldRef{kind, static_cast<int>(i)});
  }
  return out;
}

}  // namespace citygate::core
