#include "inputs/modbus/planner.hpp"

#include <algorithm>
#include <numeric>

namespace citygate::modbus {

bool isBitTable(pb::RegisterTable t) {
  return t == pb::COIL || t == pb::DISCRETE_INPUT;
}

std::vector<ReadRequest> planReads(const std::vector<PlanPoint>& points, const PlanLimits& limits) {
  std::vector<std::uint16_t> order(points.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::uint16_t a, std::uint16_t b) {
    const PlanPoint& pa = points[a];
    const PlanPoint& pb = points[b];
    if (pa.table != pb.table) return pa.table < pb.table;
    if (pa.address != pb.address) return pa.address < pb.address;
    return pa.count > pb.count;
  });

  std::vector<ReadRequest> out;
  ReadRequest* open = nullptr;
  std::uint32_t openEnd = 0;  // one past the last address covered by `open`
  bool openIsolated = false;
  for (std::uint16_t idx : order) {
    const PlanPoint& p = points[idx];
    const std::uint32_t cap =
        isBitTable(p.table) ? std::min(limits.maxBits, kMaxReadBits) : std::min(limits.maxRegisters, kMaxReadRegisters);
    const std::uint32_t end = p.address + p.count;
    bool merge = open != nullptr && open->table == p.table && !p.isolated && !openIsolated;
    if (merge) {
      const std::uint32_t gap = p.address > openEnd ? p.address - openEnd : 0;
      const std::uint32_t newEnd = std::max(openEnd, end);
      merge = gap <= limits.maxGap && newEnd - open->address <= cap;
    }
    // A point fully inside an isolated request of the same registers (a bit of the same register)
    // shares it.
    if (!merge && open != nullptr && open->table == p.table && p.address >= open->address && end <= openEnd) {
      merge = true;
    }
    if (merge) {
      openEnd = std::max(openEnd, end);
      open->count = static_cast<std::uint16_t>(openEnd - open->address);
      open->points.push_back(idx);
      continue;
    }
    out.push_back(
        ReadRequest{p.table, static_cast<std::uint16_t>(p.address), static_cast<std::uint16_t>(p.count), {idx}});
    open = &out.back();
    openEnd = end;
    openIsolated = p.isolated;
  }
  return out;
}

}  // namespace citygate::modbus
