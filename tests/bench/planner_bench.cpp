// Read-planner figures: Modbus requests per poll cycle as planned, against one request per point,
// for the shipped profiles and for scattered maps of 40 points at several gap settings. Prints a
// table; asserts nothing (a benchmark reports, it does not judge).
//
//   build/default/bin/bench_planner
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "config/profiles.hpp"
#include "inputs/modbus/planner.hpp"
#include "inputs/modbus/spec.hpp"

using namespace citygate;
namespace pb = citygate::v1;

namespace {

struct Row {
  std::string what;
  std::size_t points;
  std::size_t planned;
  double planUs;
};

Row measure(const std::string& what, const std::vector<modbus::PlanPoint>& pts, modbus::PlanLimits limits) {
  const auto start = std::chrono::steady_clock::now();
  std::size_t n = 0;
  const int reps = 2000;
  for (int i = 0; i < reps; ++i) n = modbus::planReads(pts, limits).size();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / reps;
  return Row{what, pts.size(), n, us};
}

}  // namespace

int main() {
  std::vector<Row> rows;
  config::ProfileLibrary lib;
  config::Diagnostics diags;
  lib.load("", diags);
  for (const auto& name : lib.names()) {
    std::vector<core::PointSpec> specs;
    std::vector<modbus::PointRead> reads;
    if (!modbus::compileProfile(*lib.find(name), specs, reads, diags)) continue;
    std::vector<modbus::PlanPoint> pts;
    for (const auto& r : reads) pts.push_back({r.table, r.address, r.count, false});
    modbus::PlanLimits limits;
    limits.maxGap = lib.find(name)->profile.max_gap_registers() ? lib.find(name)->profile.max_gap_registers() : 8;
    rows.push_back(measure(name + " (gap " + std::to_string(limits.maxGap) + ")", pts, limits));
  }
  // 40 scattered single registers over 700 addresses (the same generator as the integration test).
  std::vector<std::uint32_t> addrs;
  std::uint32_t seed = 4242;
  while (addrs.size() < 40) {
    seed = (seed * 1103515245u + 12345u) & 0x7FFFFFFFu;
    const std::uint32_t a = seed % 700;
    if (std::all_of(addrs.begin(), addrs.end(), [&](std::uint32_t b) { return (a > b ? a - b : b - a) >= 2; })) {
      addrs.push_back(a);
    }
  }
  std::vector<modbus::PlanPoint> scattered;
  for (auto a : addrs) scattered.push_back({pb::HOLDING_REGISTER, a, 1, false});
  for (std::uint32_t gap : {0u, 2u, 6u, 10u, 20u, 50u}) {
    rows.push_back(measure("40 scattered points (gap " + std::to_string(gap) + ")", scattered, {gap, 125, 2000}));
  }
  std::printf("%-48s %7s %9s %9s %10s\n", "profile", "points", "planned", "per-point", "plan (us)");
  for (const auto& r : rows) {
    std::printf("%-48s %7zu %9zu %9zu %10.2f\n", r.what.c_str(), r.points, r.planned, r.points, r.planUs);
  }
  return 0;
}
