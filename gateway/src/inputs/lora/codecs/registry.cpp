#include "inputs/lora/codecs/registry.hpp"

#include <cmath>
#include <set>

#include "citygate/v1/config.pb.h"
#include "inputs/lora/codecs/citygate.hpp"
#include "inputs/lora/codecs/lpp.hpp"
#include "inputs/lora/codecs/parking.hpp"

namespace citygate::lora {

namespace pb = citygate::v1;

namespace {

constexpr std::string_view kLpp = "cayenne-lpp";

struct Entry {
  std::string_view name;
  pb::ObservationKind kind;  // UNSPECIFIED: the device's `kind` decides (LPP)
};
constexpr std::array kCodecs{
    Entry{"bosch-tps110", pb::PARKING},     Entry{kLpp, pb::OBSERVATION_KIND_UNSPECIFIED},
    Entry{"citygate-air", pb::AIR_QUALITY}, Entry{"citygate-traffic", pb::TRAFFIC},
    Entry{"nwave-nps405", pb::PARKING},
};

// A point of a built-in format; the tables are ours, so an error here is a programming error
// caught by the unit tests, not a config diagnostic.
core::PointSpec makePoint(pb::ObservationKind kind, std::string_view field, std::string_view unit, double scale,
                          double min, double max, std::uint32_t lane) {
  core::PointSpec p;
  p.name = std::string(field);
  p.field = core::findField(kind, field).value_or(core::FieldRef{});
  p.scale = scale;
  p.conversion = core::conversionFor(p.field, unit, nullptr).value_or(core::Conversion{});
  p.unitCode = std::string(core::fieldInfo(p.field).canonicalUnit);
  p.prepare();
  if (min != max) {
    p.hasRange = true;
    p.min = min;
    p.max = max;
  }
  p.lane = lane;
  return p;
}

void buildParking(BuiltCodec& b) {
  b.points.resize(kParkingPoints);
  b.points[kParkingStatus] = makePoint(pb::PARKING, "status", "", 1, 0, 0, 0);
  b.points[kParkingTemperature] = makePoint(pb::PARKING, "temperature", "degC", 1, -40, 85, 0);
  b.points[kParkingBattery] = makePoint(pb::PARKING, "battery_voltage", "V", 1, 2.0, 4.0, 0);
  b.category = "onStreet";
}

void buildAir(BuiltCodec& b) {
  for (const auto& f : kAirFields)
    b.points.push_back(makePoint(pb::AIR_QUALITY, f.field, f.unit, f.scale, f.min, f.max, 0));
}

void buildTraffic(BuiltCodec& b) {
  for (std::uint32_t lane = 1; lane <= kTrafficMaxLanes; ++lane) {
    for (const auto& f : kTrafficFields) {
      b.points.push_back(makePoint(pb::TRAFFIC, f.field, f.unit, f.scale, f.min, f.max, lane));
    }
    b.points.push_back(makePoint(pb::TRAFFIC, "congested", "", 1, 0, 0, lane));
  }
}

bool buildLpp(const pb::LoraDevice& dev, const config::Location& at, pb::ObservationKind kind, BuiltCodec& b,
              config::Diagnostics& diags) {
  const std::size_t before = diags.size();
  if (dev.lpp_channel_size() == 0) {
    at.field("codec").error(diags, "codec 'cayenne-lpp' needs at least one lpp_channel { channel field }");
    return false;
  }
  std::array<std::int16_t, 256> map{};
  map.fill(-1);
  std::set<std::pair<std::uint32_t, std::string>> laneFields;
  std::set<std::string> fields;
  bool status = false;
  for (int i = 0; i < dev.lpp_channel_size(); ++i) {
    const pb::LppChannel& ch = dev.lpp_channel(i);
    const config::Location cl = at.child("lpp_channel", i);
    const std::size_t chErrors = diags.size();
    if (ch.channel() > 255) {
      cl.field("channel").error(diags, "LPP channel " + std::to_string(ch.channel()) + " is outside 0..255");
    } else if (map[ch.channel()] >= 0) {
      cl.field("channel").error(diags, "LPP channel " + std::to_string(ch.channel()) + " is mapped twice");
    }
    const auto field = core::findField(kind, ch.field());
    if (!field) {
      cl.field("field").error(
          diags, "'" + ch.field() + "' is not a field of " + pb::ObservationKind_Name(kind) + " observations");
      continue;
    }
    std::string why;
    const auto conv = core::conversionFor(*field, ch.unit(), &why);
    if (!conv) cl.field("unit").error(diags, why);
    if (!std::isfinite(ch.scale())) cl.field("scale").error(diags, "scale must be finite");
    const core::FieldInfo& info = core::fieldInfo(*field);
    if (kind == pb::TRAFFIC) {
      if (ch.lane_id() == 0)
        cl.field("lane_id").error(diags, "traffic channel '" + ch.field() + "' needs a lane_id (1..)");
      if (!laneFields.emplace(ch.lane_id(), ch.field()).second) {
        cl.field("field").error(diags,
                                "lane " + std::to_string(ch.lane_id()) + " has two '" + ch.field() + "' channels");
      }
    } else {
      if (ch.lane_id() != 0) cl.field("lane_id").error(diags, "lane_id is only for TRAFFIC devices");
      if (!fields.insert(ch.field()).second) {
        cl.field("field").error(diags, "field '" + ch.field() + "' is mapped from two channels");
      }
    }
    if (info.type == core::FieldType::ParkingStatus) status = true;
    if (diags.size() != chErrors) continue;
    core::PointSpec p;
    p.name = ch.field();
    p.field = *field;
    p.scale = ch.scale() == 0 ? 1.0 : ch.scale();
    p.conversion = *conv;
    p.unitCode = field->isGeneric() ? core::genericUnitCode(ch.unit()) : std::string(info.canonicalUnit);
    p.prepare();
    p.lane = ch.lane_id();
    map[ch.channel()] = static_cast<std::int16_t>(b.points.size());
    b.points.push_back(std::move(p));
  }
  if (kind == pb::PARKING && !status && diags.size() == before) {
    at.field("lpp_channel").error(diags, "a PARKING device needs a channel mapped to 'status'");
  }
  b.codec = std::make_shared<LppCodec>(map);
  return diags.size() == before;
}

}  // namespace

std::string knownCodecs() {
  std::string s;
  for (const auto& e : kCodecs) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

std::optional<BuiltCodec> buildCodec(const pb::LoraDevice& dev, const config::Location& at,
                                     config::Diagnostics& diags) {
  const Entry* entry = nullptr;
  for (const auto& e : kCodecs) {
    if (e.name == dev.codec()) entry = &e;
  }
  if (entry == nullptr) {
    at.field(dev.codec().empty() ? "id" : "codec")
        .error(diags, dev.codec().empty() ? "lora device '" + dev.id() + "' needs a codec (" + knownCodecs() + ")"
                                          : "unknown codec '" + dev.codec() + "' (known: " + knownCodecs() + ")");
    return std::nullopt;
  }
  pb::ObservationKind kind = entry->kind;
  if (!dev.kind().empty()) {
    pb::ObservationKind k = pb::OBSERVATION_KIND_UNSPECIFIED;
    if (!pb::ObservationKind_Parse(dev.kind(), &k) || k == pb::OBSERVATION_KIND_UNSPECIFIED) {
      at.field("kind").error(diags, "unknown kind '" + dev.kind() + "' (AIR_QUALITY, TRAFFIC, PARKING or GENERIC)");
      return std::nullopt;
    }
    if (entry->kind != pb::OBSERVATION_KIND_UNSPECIFIED && k != entry->kind) {
      at.field("kind").error(diags, "codec '" + dev.codec() + "' produces " + pb::ObservationKind_Name(entry->kind) +
                                        " observations, not " + dev.kind());
      return std::nullopt;
    }
    kind = k;
  }
  BuiltCodec b;
  if (entry->name == kLpp) {
    if (kind == pb::OBSERVATION_KIND_UNSPECIFIED) {
      at.field("codec").error(diags, "codec 'cayenne-lpp' needs a kind (AIR_QUALITY, TRAFFIC, PARKING or GENERIC)");
      return std::nullopt;
    }
    b.kind = kind;
    if (!buildLpp(dev, at, kind, b, diags)) return std::nullopt;
    return b;
  }
  if (dev.lpp_channel_size() > 0) {
    at.field("lpp_channel").error(diags, "lpp_channel is only for codec 'cayenne-lpp'");
    return std::nullopt;
  }
  b.kind = kind;
  if (entry->name == "nwave-nps405") {
    b.codec = std::make_shared<NwaveNps405Codec>();
    buildParking(b);
  } else if (entry->name == "bosch-tps110") {
    b.codec = std::make_shared<BoschTps110Codec>();
    buildParking(b);
  } else if (entry->name == "citygate-air") {
    b.codec = std::make_shared<CitygateAirCodec>();
    buildAir(b);
  } else {
    b.codec = std::make_shared<CitygateTrafficCodec>();
    buildTraffic(b);
  }
  return b;
}

}  // namespace citygate::lora
