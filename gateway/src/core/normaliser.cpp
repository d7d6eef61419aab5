#include "core/normaliser.hpp"

#include <algorithm>
#include <cmath>

#include <google/protobuf/arena.h>

namespace citygate::core {
namespace {

pb::Quality worse(pb::Quality a, pb::Quality b) {
  return std::max(a, b);
}  // GOOD < UNCERTAIN < BAD

struct Value {
  double v;
  pb::Quality quality;
};

Value canonicalValue(const PointSpec& p, const RawValue& raw) {
  if (raw.state == RawValue::State::Bad || !std::isfinite(raw.value)) return {raw.value, pb::BAD};
  const double v = p.canonical(raw.value);
  pb::Quality q = pb::GOOD;
  if (p.hasRange && (v < p.min || v > p.max)) q = pb::UNCERTAIN;
  return {v, q};
}

void setMeasurement(pb::Measurement* m, const PointSpec& p, Value v) {
  m->set_value(v.v);
  m->set_unit_code(p.unitCode);
  m->set_quality(v.quality);
}

pb::ParkingStatus toStatus(const PointSpec& p, const RawValue& raw, double canonical) {
  if (raw.state == RawValue::State::Bad) return pb::UNKNOWN;
  // BOOL points: 1 = occupied (invert for "1 = free"). Register points: 0 free, 1 occupied,
  // 2 closed, anything else unknown.
  const auto code = static_cast<long long>(std::llround(canonical));
  if (p.invert) {
    if (code == 0) return pb::OCCUPIED;
    if (code == 1) return pb::FREE;
  } else {
    if (code == 0) return pb::FREE;
    if (code == 1) return pb::OCCUPIED;
  }
  if (code == 2) return pb::CLOSED;
  return pb::UNKNOWN;
}

}  // namespace

void Normaliser::normalise(const SensorSpec& spec, const RawSample& sample, SensorMemory& memory,
                           std::vector<pb::Reading>& out) {
  // One encoding of the generic map for both forms: here it is parsed back into the message.
  std::vector<GenericWire> generic(spec.groups.size());
  const std::size_t first = out.size();
  out.reserve(first + spec.groups.size());
  build(spec, sample, memory, [&]() -> Target {
    const std::size_t i = out.size() - first;
    return {&out.emplace_back(), &generic[i]};
  });
  for (std::size_t i = first; i < out.size(); ++i) {
    const GenericWire& g = generic[i - first];
    if (g.active()) out[i].mutable_generic()->ParseFromArray(g.bytes().data(), static_cast<int>(g.bytes().size()));
  }
}

void Normaliser::normalise(const SensorSpec& spec, const RawSample& sample, SensorMemory& memory,
                           google::protobuf::Arena& arena, std::vector<pb::Reading*>& out,
                           std::vector<GenericWire>& generic) {
  build(spec, sample, memory, [&]() -> Target {
    out.push_back(google::protobuf::Arena::CreateMessage<pb::Reading>(&arena));
    if (generic.size() < out.size()) generic.resize(out.size());
    GenericWire& g = generic[out.size() - 1];
    g.reset();
    return {out.back(), &g};
  });
}

void Normaliser::build(const SensorSpec& spec, const RawSample& sample, SensorMemory& memory,
                       const std::function<Target()>& next) {
  if (memory.lastStatus.size() != spec.groups.size()) {
    memory.lastStatus.assign(spec.groups.size(), pb::PARKING_STATUS_UNSPECIFIED);
    memory.statusChangedAt.assign(spec.groups.size(), std::nullopt);
  }
  for (std::size_t g = 0; g < spec.groups.size(); ++g) {
    const ReadingGroup& group = spec.groups[g];
    bool any = false;
    for (auto idx : group.points) {
      if (idx < sample.values.size() && sample.values[idx].state != RawValue::State::Skip) any = true;
    }
    if (!any) continue;

    const Target target = next();
    pb::Reading& r = *target.reading;
    r.set_sensor_id(spec.id);
    toTimestamp(sample.observedAt, r.mutable_observed_at());
    *r.mutable_source() = spec.source;
    if (sample.lora) {
      auto* l = r.mutable_source()->mutable_lorawan();
      l->set_f_cnt(sample.lora->fCnt);
      l->set_f_port(sample.lora->fPort);
      l->set_rssi(sample.lora->rssi);
      l->set_snr(sample.lora->snr);
      l->set_frequency(sample.lora->frequency);
      l->set_data_rate(sample.lora->dataRate);
      l->set_gateway_eui(sample.lora->gatewayEui);
      l->set_receptions(sample.lora->receptions);
    } else if (r.source().has_modbus() && !group.points.empty() && group.points[0] < spec.points.size()) {
      r.mutable_source()->mutable_modbus()->set_address(spec.points[group.points[0]].address);
    }
    pb::Quality quality = pb::GOOD;

    switch (spec.kind) {
      case pb::AIR_QUALITY: {
        auto* o = r.mutable_air_quality_observed();
        o->set_id(group.entityId);
        toTimestamp(sample.observedAt, o->mutable_date_observed());
        if (spec.location) *o->mutable_location() = *spec.location;
        for (auto idx : group.points) {
          const PointSpec& p = spec.points[idx];
          const RawValue& raw = sample.values[idx];
          if (raw.state == RawValue::State::Skip) continue;
          const Value v = canonicalValue(p, raw);
          if (auto* m = mutableMeasurement(*o, p.field)) setMeasurement(m, p, v);
          quality = worse(quality, v.quality);
        }
        break;
      }
      case pb::TRAFFIC: {
        auto* o = r.mutable_traffic_flow_observed();
        o->set_id(group.entityId);
        o->set_lane_id(group.lane);
        o->set_lane_direction(group.laneDirection);
        toTimestamp(sample.periodStart, o->mutable_date_observed_from());
        toTimestamp(sample.observedAt, o->mutable_date_observed_to());
        if (spec.location) *o->mutable_location() = *spec.location;
        for (auto idx : group.points) {
          const PointSpec& p = spec.points[idx];
          const RawValue& raw = sample.values[idx];
          if (raw.state == RawValue::State::Skip) continue;
          const Value v = canonicalValue(p, raw);
          if (fieldInfo(p.field).type == FieldType::Flag) {
            o->set_congested(v.quality != pb::BAD && v.v != 0.0);
          } else if (auto* m = mutableMeasurement(*o, p.field)) {
            setMeasurement(m, p, v);
          }
          quality = worse(quality, v.quality);
        }
        break;
      }
      case pb::PARKING: {
        auto* o = r.mutable_parking_spot();
        o->set_id(group.entityId);
        o->set_bay(group.bay);
        o->set_ref_parking_site(spec.refParkingSite);
        if (!spec.category.empty()) o->add_category(spec.category);
        if (spec.location) *o->mutable_location() = *spec.location;
        for (auto idx : group.points) {
          const PointSpec& p = spec.points[idx];
          const RawValue& raw = sample.values[idx];
          if (raw.state == RawValue::State::Skip) continue;
          const Value v = canonicalValue(p, raw);
          if (fieldInfo(p.field).type == FieldType::ParkingStatus) {
            const pb::ParkingStatus status = toStatus(p, raw, v.v);
            o->set_status(status);
            if (status != memory.lastStatus[g]) {
              memory.lastStatus[g] = status;
              memory.statusChangedAt[g] = sample.observedAt;
            }
            if (memory.statusChangedAt[g]) toTimestamp(*memory.statusChangedAt[g], o->mutable_status_changed_at());
            quality = worse(quality, status == pb::UNKNOWN ? pb::BAD : v.quality);
          } else if (auto* m = mutableMeasurement(*o, p.field)) {
            setMeasurement(m, p, v);
            quality = worse(quality, v.quality);
          }
        }
        break;
      }
      default: {
        GenericWire& o = *target.generic;
        o.start();
        for (auto idx : group.points) {
          const PointSpec& p = spec.points[idx];
          const RawValue& raw = sample.values[idx];
          if (raw.state == RawValue::State::Skip) continue;
          const Value v = canonicalValue(p, raw);
          o.value(p.name, v.v, p.unitCode, v.quality);
          quality = worse(quality, v.quality);
        }
        for (const auto& [idx, text] : sample.texts) {
          if (idx < spec.points.size()) o.text(spec.points[idx].name, text);
        }
        break;
      }
    }
    r.set_quality(quality);
  }
}

void buildGroups(SensorSpec& spec) {
  spec.groups.clear();
  auto entity = [&](std::string_view type, std::string_view suffix) {
    std::string id = "urn:ngsi-ld:";
    id.append(type).append(":").append(spec.id);
    if (!suffix.empty()) id.append(":").append(suffix);
    return id;
  };
  switch (spec.kind) {
    case pb::TRAFFIC: {
      for (std::uint16_t i = 0; i < spec.points.size(); ++i) {
        const PointSpec& p = spec.points[i];
        auto it = std::find_if(spec.groups.begin(), spec.groups.end(),
                               [&](const ReadingGroup& gr) { return gr.lane == p.lane; });
        if (it == spec.groups.end()) {
          ReadingGroup gr;
          gr.lane = p.lane;
          gr.entityId = entity("TrafficFlowObserved", "lane" + std::to_string(p.lane));
          spec.groups.push_back(std::move(gr));
          it = spec.groups.end() - 1;
        }
        if (p.laneDirection != pb::LANE_DIRECTION_UNSPECIFIED) it->laneDirection = p.laneDirection;
        it->points.push_back(i);
      }
      break;
    }
    case pb::PARKING: {
      for (std::uint16_t i = 0; i < spec.points.size(); ++i) {
        const PointSpec& p = spec.points[i];
        auto it = std::find_if(spec.groups.begin(), spec.groups.end(),
                               [&](const ReadingGroup& gr) { return gr.bay == p.bay; });
        if (it == spec.groups.end()) {
          ReadingGroup gr;
          gr.bay = p.bay;
          gr.entityId = entity("ParkingSpot", p.bay);
          spec.groups.push_back(std::move(gr));
          it = spec.groups.end() - 1;
        }
        it->points.push_back(i);
      }
      break;
    }
    default: {
      ReadingGroup gr;
      gr.entityId = entity(spec.kind == pb::AIR_QUALITY ? "AirQualityObserved" : "Device", "");
      for (std::uint16_t i = 0; i < spec.points.size(); ++i) gr.points.push_back(i);
      spec.groups.push_back(std::move(gr));
      break;
    }
  }
}

}  // namespace citygate::core

namespace citygate::core {

int decimalsOf(double x) {
  x = std::fabs(x);
  if (!std::isfinite(x)) return 0;
  double p = 1;
  for (int d = 0; d < 12; ++d, p *= 10) {
    const double scaled = x * p;
    if (std::fabs(scaled - std::round(scaled)) <= 1e-6) return d;  // float error stays far below this
  }
  return 12;
}

double PointSpec::computeDecimalScale() const {
  const int d = std::max(
      {decimalsOf(scale * conversion.factor), decimalsOf(offset * conversion.factor), decimalsOf(conversion.offset)});
  static constexpr double kPow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12};
  return kPow10[d];
}

}  // namespace citygate::core
