// genericSensor: the sensor the pipeline tests feed, a GENERIC device with one point "v" (or
// `points` points p0, p1, ...), its read groups built.
#pragma once

#include <string>

#include "core/sensor.hpp"

namespace citygate::testing {

inline core::SensorSpec genericSensor(std::string id, int points = 1) {
  core::SensorSpec s;
  s.id = std::move(id);
  s.kind = citygate::v1::GENERIC;
  for (int i = 0; i < points; ++i) {
    core::PointSpec p;
    p.name = points == 1 ? std::string("v") : "p" + std::to_string(i);
    p.field = core::FieldRef{citygate::v1::GENERIC, -1};
    s.points.push_back(p);
  }
  core::buildGroups(s);
  return s;
}

}  // namespace citygate::testing
