// The traffic counter: lane detectors -> aggregation -> the input-register image -> the Modbus
// RTU slave. The port builds a Config (from the provisioning record, TrafficNodeSettings in
// proto/citygate/v1/node.proto, or from its command line on the host), the hardware objects, and
// calls step() from its main loop, idling for what step() returns.
#pragma once

#include <stdint.h>

#include "core/hal.hpp"
#include "nodes/traffic/aggregator.hpp"
#include "nodes/traffic/modbus_rtu.hpp"
#include "nodes/traffic/registers.hpp"

namespace citygate::fw::traffic {

struct Config {
  uint8_t unitId = 1;       // 1..247
  uint32_t baud = 19200;    // the RS-485 line (8E1); the UART is set up by the port
  uint32_t periodS = 60;    // aggregation period, 1..3600
  uint8_t laneMask = 0x0F;  // lanes with a detector: bit n-1 = lane n (default: the map's lanes)
};

// nullptr when usable, else what is wrong (for the port's error message).
const char* validate(const Config& config);
uint8_t defaultLaneMask();  // every lane of the register map

// citygate.v1.TrafficNodeSettings (proto/citygate/v1/node.proto) as plain fields: the port copies
// the decoded provisioning record (nanopb) here. 0 means "not set": the default. No lane listed:
// every lane of the map. Returns validate()'s answer for the result.
struct TrafficSettings {
  uint32_t unitId;
  uint32_t baud;
  uint32_t periodS;
  uint32_t laneIds[kMaxLanes];  // LaneGeometry.lane_id of each listed lane
  uint8_t laneCount;
};
const char* configFromSettings(const TrafficSettings& settings, Config& out);

struct NodeCounters {
  uint32_t passages;
  uint32_t passagesLate;
  uint32_t passagesBadLane;
  uint32_t periods;
};

class Node {
 public:
  Node(const Config& config, hal::Clock& clock, hal::Uart& rtu, hal::LaneDetectors& detectors);

  // Call once, then step() forever; step() returns how long the port may idle (ms).
  void start();
  uint32_t step();

  const uint16_t* registers() const { return registers_; }
  const SlaveCounters& slaveCounters() const { return slave_.counters(); }
  NodeCounters counters() const;
  const Aggregator& aggregator() const { return aggregator_; }

 private:
  Config config_;
  hal::Clock& clock_;
  hal::LaneDetectors& detectors_;
  Aggregator aggregator_;
  uint16_t registers_[kRegisterCount];
  RtuSlave slave_;
  uint32_t passages_ = 0;
};

}  // namespace citygate::fw::traffic
