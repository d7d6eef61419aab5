// The traffic node's settings from its provisioning record (core/provisioning.hpp: the record's
// rules are checked when it is written and again when it is loaded): TrafficNodeSettings as the
// plain TrafficSettings that configFromSettings() turns into the node's Config. Both mains use it.
#pragma once

#include "core/provisioning.hpp"
#include "nodes/traffic/traffic_node.hpp"

namespace citygate::fw::traffic {

inline TrafficSettings settingsFrom(const NodeProvisioning& record) {
  TrafficSettings s{};
  if (!record.has_traffic) return s;
  const citygate_v1_TrafficNodeSettings& t = record.traffic;
  s.unitId = t.unit_id;
  s.baud = t.baud;
  s.periodS = t.period_s;
  for (pb_size_t i = 0; i < t.lane_count && s.laneCount < kMaxLanes; ++i) s.laneIds[s.laneCount++] = t.lane[i].lane_id;
  return s;
}

}  // namespace citygate::fw::traffic
