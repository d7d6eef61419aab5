#include <doctest/doctest.h>

#include "inputs/modbus/planner.hpp"

using namespace citygate::modbus;
namespace pb = citygate::v1;

TEST_CASE("contiguous points merge into one request") {
  std::vector<PlanPoint> pts{{pb::HOLDING_REGISTER, 0, 1}, {pb::HOLDING_REGISTER, 1, 2}, {pb::HOLDING_REGISTER, 3, 1}};
  auto plan = planReads(pts, PlanLimits{0, 125, 2000});
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].address == 0);
  CHECK(plan[0].count == 4);
  CHECK(plan[0].points.size() == 3);
}

TEST_CASE("gaps are filled up to maxGap, and no further") {
  std::vector<PlanPoint> pts{{pb::HOLDING_REGISTER, 0, 1}, {pb::HOLDING_REGISTER, 5, 1}, {pb::HOLDING_REGISTER, 20, 2}};
  CHECK(planReads(pts, PlanLimits{4, 125, 2000}).size() == 2);  // hole 0..5 is 4 registers: merged
  CHECK(planReads(pts, PlanLimits{3, 125, 2000}).size() == 3);
  CHECK(planReads(pts, PlanLimits{14, 125, 2000}).size() == 1);  // hole 6..19 is 14
}

TEST_CASE("tables never merge, and requests respect 125 registers / 2000 bits") {
  std::vector<PlanPoint> pts{{pb::HOLDING_REGISTER, 0, 1}, {pb::INPUT_REGISTER, 1, 1}};
  CHECK(planReads(pts, PlanLimits{10, 125, 2000}).size() == 2);

  std::vector<PlanPoint> wide{{pb::HOLDING_REGISTER, 0, 2}, {pb::HOLDING_REGISTER, 123, 2}};
  auto plan = planReads(wide, PlanLimits{200, 125, 2000});
  CHECK(plan.size() == 1);
  CHECK(plan[0].count == 125);
  wide.push_back({pb::HOLDING_REGISTER, 124, 2});  // would end at 126
  CHECK(planReads(wide, PlanLimits{200, 125, 2000}).size() == 2);

  std::vector<PlanPoint> coils{{pb::COIL, 0, 1}, {pb::COIL, 1999, 1}, {pb::COIL, 2000, 1}};
  auto cp = planReads(coils, PlanLimits{5000, 125, 2000});
  REQUIRE(cp.size() == 2);
  CHECK(cp[0].count == 2000);
}

TEST_CASE("isolated points are read on their own") {
  std::vector<PlanPoint> pts{
      {pb::HOLDING_REGISTER, 0, 1, true}, {pb::HOLDING_REGISTER, 1, 1, true}, {pb::HOLDING_REGISTER, 2, 1}};
  auto plan = planReads(pts, PlanLimits{8, 125, 2000});
  CHECK(plan.size() == 3);
}

TEST_CASE("bits of the same register share one read") {
  std::vector<PlanPoint> pts{{pb::HOLDING_REGISTER, 7, 1}, {pb::HOLDING_REGISTER, 7, 1}};
  CHECK(planReads(pts, PlanLimits{0, 125, 2000}).size() == 1);
}

TEST_CASE("greedy plan equals the optimum found by dynamic programming") {
  // 40 scattered points; brute-force optimum over sorted points: dp[i] = min requests for the
  // first i points, where a request covers points j..i-1 if every hole <= gap and span <= 125.
  std::vector<PlanPoint> pts;
  std::uint32_t seed = 12345;
  for (int i = 0; i < 40; ++i) {
    seed = seed * 1103515245 + 12345;
    pts.push_back({pb::HOLDING_REGISTER, (seed >> 8) % 600, 1 + ((seed >> 4) % 2)});
  }
  for (std::uint32_t gap : {0u, 2u, 5u, 10u, 40u}) {
    auto sorted = pts;
    std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.address < b.address; });
    std::vector<int> dp(sorted.size() + 1, 1 << 20);
    dp[0] = 0;
    for (std::size_t i = 1; i <= sorted.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        bool ok = true;
        std::uint32_t end = sorted[j].address + sorted[j].count;
        for (std::size_t k = j + 1; k < i && ok; ++k) {
          if (sorted[k].address > end && sorted[k].address - end > gap) ok = false;
          end = std::max(end, sorted[k].address + sorted[k].count);
        }
        if (ok && end - sorted[j].address <= 125) dp[i] = std::min(dp[i], dp[j] + 1);
      }
    }
    CHECK(static_cast<int>(planReads(pts, PlanLimits{gap, 125, 2000}).size()) == dp[sorted.size()]);
  }
}
