// Read planner: which Modbus requests read a device's points in as few transactions as possible.
//
// Per table, points sorted by address are merged into one request while the hole between them is
// at most maxGap registers (bits for coils and discrete inputs) and the request stays within the
// protocol limit (125 registers, 2000 bits, or the profile's lower cap). Greedy left-to-right is
// optimal here: any plan must open a request at the lowest unread point, and extending that
// request as far as the limits allow never forces an extra request later.
//
// Points marked `isolated` (after a device refused a merged read with exception 02) are read on
// their own and never merged with a neighbour.
#pragma once

#include <cstdint>
#include <vector>

#include "citygate/v1/config.pb.h"

namespace citygate::modbus {

namespace pb = citygate::v1;

struct PlanPoint {
  pb::RegisterTable table = pb::HOLDING_REGISTER;
  std::uint32_t address = 0;
  std::uint32_t count = 1;  // registers, or bits for coils / discrete inputs
  bool isolated = false;
};

struct ReadRequest {
  pb::RegisterTable table = pb::HOLDING_REGISTER;
  std::uint16_t address = 0;
  std::uint16_t count = 0;
  std::vector<std::uint16_t> points;  // indices into the planned point list
};

struct PlanLimits {
  std::uint32_t maxGap = 8;
  std::uint32_t maxRegisters = 125;
  std::uint32_t maxBits = 2000;
};

constexpr std::uint32_t kMaxReadRegisters = 125;
constexpr std::uint32_t kMaxReadBits = 2000;

bool isBitTable(pb::RegisterTable t);

std::vector<ReadRequest> planReads(const std::vector<PlanPoint>& points, const PlanLimits& limits);

}  // namespace citygate::modbus
