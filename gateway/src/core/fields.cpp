#include "core/fields.hpp"

#include <array>
#include <cmath>

namespace citygate::core {
namespace {

// Molar volume at 20 °C and 101.325 kPa: 24.055 L/mol. ppb -> µg/m³ = M / 24.055. The contract
// fixes the factors of the regulated gases (NO2 1.912, O3 1.995, SO2 2.663, CO ppm -> mg/m³
// 1.164); the others use M / 24.055.
struct Gas {
  std::string_view field;
  double ppbToCanonical;  // for CO: ppb -> mg/m³
};
constexpr std::array kGases{
    Gas{"no2", 1.912},
    Gas{"o3", 1.995},
    Gas{"so2", 2.663},
    Gas{"co", 0.001164},
    Gas{"no", 30.006 / 24.055},
    Gas{"nox", 1.912},  // NOx reported as NO2
    Gas{"sh2", 34.08 / 24.055},
    Gas{"co2", 44.01 / 24.055},
    Gas{"volatile_organic_compounds_total", 78.11 / 24.055},  // as benzene equivalent
};

constexpr std::array kAir{
    FieldInfo{"no2", "GQ", FieldType::Measurement},
    FieldInfo{"no", "GQ", FieldType::Measurement},
    FieldInfo{"nox", "GQ", FieldType::Measurement},
    FieldInfo{"o3", "GQ", FieldType::Measurement},
    FieldInfo{"co", "GP", FieldType::Measurement},
    FieldInfo{"co2", "GQ", FieldType::Measurement},
    FieldInfo{"so2", "GQ", FieldType::Measurement},
    FieldInfo{"pm1", "GQ", FieldType::Measurement},
    FieldInfo{"pm25", "GQ", FieldType::Measurement},
    FieldInfo{"pm4", "GQ", FieldType::Measurement},
    FieldInfo{"pm10", "GQ", FieldType::Measurement},
    FieldInfo{"temperature", "CEL", FieldType::Measurement},
    FieldInfo{"relative_humidity", "C62", FieldType::Measurement},
    FieldInfo{"pressure", "A97", FieldType::Measurement},
    FieldInfo{"wind_speed", "MTS", FieldType::Measurement},
    FieldInfo{"wind_direction", "DD", FieldType::Measurement},
    FieldInfo{"sh2", "GQ", FieldType::Measurement},
    FieldInfo{"volatile_organic_compounds_total", "GQ", FieldType::Measurement},
};

constexpr std::array kTraffic{
    FieldInfo{"intensity", "H87", FieldType::Measurement},
    FieldInfo{"occupancy", "C62", FieldType::Measurement},
    FieldInfo{"average_vehicle_speed", "KMH", FieldType::Measurement},
    FieldInfo{"average_vehicle_length", "MTR", FieldType::Measurement},
    FieldInfo{"average_headway_time", "SEC", FieldType::Measurement},
    FieldInfo{"average_gap_distance", "MTR", FieldType::Measurement},
    FieldInfo{"congested", "", FieldType::Flag},
};

constexpr std::array kParking{
    FieldInfo{"status", "", FieldType::ParkingStatus},
    FieldInfo{"temperature", "CEL", FieldType::Measurement},
    FieldInfo{"battery_voltage", "VLT", FieldType::Measurement},
};

const FieldInfo kGenericInfo{"", "", FieldType::Measurement};

template <typename Table>
std::optional<FieldRef> lookup(const Table& table, pb::ObservationKind kind, std::string_view name) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].name == name) return FieldRef{kind, static_cast<int>(i)};
  }
  return std::nullopt;
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
  switch (kind) {
    case pb::AIR_QUALITY:
      return lookup(kAir, kind, name);
    case pb::TRAFFIC:
      return lookup(kTraffic, kind, name);
    case pb::PARKING:
      return lookup(kParking, kind, name);
    case pb::GENERIC:
      if (validGenericName(name)) return FieldRef{kind, -1};
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

const FieldInfo& fieldInfo(FieldRef ref) {
  if (ref.index < 0) return kGenericInfo;
  switch (ref.kind) {
    case pb::AIR_QUALITY:
      return kAir.at(static_cast<std::size_t>(ref.index));
    case pb::TRAFFIC:
      return kTraffic.at(static_cast<std::size_t>(ref.index));
    case pb::PARKING:
      return kParking.at(static_cast<std::size_t>(ref.index));
    default:
      return kGenericInfo;
  }
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
    for (const auto& g : kGases) {
      if (g.field == info.name) return Conversion{g.ppbToCanonical * perPpb, 0.0};
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

pb::Measurement* mutableMeasurement(pb::AirQualityObserved& o, int index) {
  switch (index) {
    case 0:
      return o.mutable_no2();
    case 1:
      return o.mutable_no();
    case 2:
      return o.mutable_nox();
    case 3:
      return o.mutable_o3();
    case 4:
      return o.mutable_co();
    case 5:
      return o.mutable_co2();
    case 6:
      return o.mutable_so2();
    case 7:
      return o.mutable_pm1();
    case 8:
      return o.mutable_pm25();
    case 9:
      return o.mutable_pm4();
    case 10:
      return o.mutable_pm10();
    case 11:
      return o.mutable_temperature();
    case 12:
      return o.mutable_relative_humidity();
    case 13:
      return o.mutable_pressure();
    case 14:
      return o.mutable_wind_speed();
    case 15:
      return o.mutable_wind_direction();
    case 16:
      return o.mutable_sh2();
    case 17:
      return o.mutable_volatile_organic_compounds_total();
    default:
      return nullptr;
  }
}

pb::Measurement* mutableMeasurement(pb::TrafficFlowObserved& o, int index) {
  switch (index) {
    case 0:
      return o.mutable_intensity();
    case 1:
      return o.mutable_occupancy();
    case 2:
      return o.mutable_average_vehicle_speed();
    case 3:
      return o.mutable_average_vehicle_length();
    case 4:
      return o.mutable_average_headway_time();
    case 5:
      return o.mutable_average_gap_distance();
    default:
      return nullptr;
  }
}

pb::Measurement* mutableMeasurement(pb::ParkingSpot& o, int index) {
  switch (index) {
    case 1:
      return o.mutable_temperature();
    case 2:
      return o.mutable_battery_voltage();
    default:
      return nullptr;
  }
}

}  // namespace citygate::core
