#include "nodes/traffic/traffic_node.hpp"

namespace citygate::fw::traffic {

uint8_t defaultLaneMask() {
  uint8_t mask = 0;
  for (const regmap::Point& p : regmap::kPoints) mask = static_cast<uint8_t>(mask | (1u << (p.lane - 1)));
  return mask;
}

const char* validate(const Config& c) {
  if (c.unitId < 1 || c.unitId > 247) return "unit id must be 1..247";
  if (c.baud < 1200 || c.baud > 1000000) return "baud must be 1200..1000000";
  if (c.periodS < 1 || c.periodS > 3600) return "period must be 1..3600 s";
  if (c.laneMask == 0) return "no lane";
  if ((c.laneMask & ~defaultLaneMask()) != 0) return "a lane the register map does not have";
  return nullptr;
}

const char* configFromSettings(const TrafficSettings& s, Config& out) {
  Config c;
  if (s.unitId != 0) {
    if (s.unitId > 247) return "unit id must be 1..247";
    c.unitId = static_cast<uint8_t>(s.unitId);
  }
  if (s.baud != 0) c.baud = s.baud;
  if (s.periodS != 0) c.periodS = s.periodS;
  if (s.laneCount > kMaxLanes) return "more than 8 lanes";
  if (s.laneCount > 0) {
    c.laneMask = 0;
    for (uint8_t i = 0; i < s.laneCount; ++i) {
      if (s.laneIds[i] < 1 || s.laneIds[i] > kMaxLanes) return "a lane id outside 1..8";
      c.laneMask = static_cast<uint8_t>(c.laneMask | (1u << (s.laneIds[i] - 1)));
    }
  } else {
    c.laneMask = defaultLaneMask();
  }
  if (const char* e = validate(c)) return e;
  out = c;
  return nullptr;
}

Node::Node(const Config& config, hal::Clock& clock, hal::Uart& rtu, hal::LaneDetectors& detectors)
    : config_(config),
      clock_(clock),
      detectors_(detectors),
      registers_{},
      slave_(rtu, clock, config.unitId, registers_, kRegisterCount) {}

void Node::start() {
  aggregator_.start(clock_.nowMs(), config_.periodS * 1000u, config_.laneMask);
  renderRegisters(nullptr, config_.laneMask, registers_);
}

uint32_t Node::step() {
  bool changed = false;
  hal::Passage p{};
  while (detectors_.next(p)) {
    const uint32_t before = aggregator_.completedCount();
    if (aggregator_.add(p) == Aggregator::Refusal::None) ++passages_;
    changed = changed || aggregator_.completedCount() != before;
  }
  const uint32_t now = clock_.nowMs();
  if (aggregator_.advance(now)) changed = true;
  if (changed) renderRegisters(aggregator_.completed(), config_.laneMask, registers_);
  const uint32_t slaveWait = slave_.poll();
  const uint32_t boundary = aggregator_.msUntilBoundary(clock_.nowMs());
  uint32_t wait = boundary == 0 ? 1 : boundary;
  if (slaveWait != 0 && slaveWait < wait) wait = slaveWait;
  return wait;
}

NodeCounters Node::counters() const {
  return {passages_, aggregator_.refusedLate(), aggregator_.refusedBadLane(), aggregator_.completedCount()};
}

}  // namespace citygate::fw::traffic
