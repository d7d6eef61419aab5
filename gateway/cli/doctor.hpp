// `citygatectl doctor`: what a technician checks first, each check OK / WARN / FAIL with the next
// step. The rules are here, once, as a pure function of one status response (doctorChecks), so
// that they are unit-tested without a daemon (tests/unit/control/doctor_test.cpp) and `status
// --check` exits by the same rule: 1 when any check is FAIL, 0 otherwise (WARN does not fail).
//
// Checks, in order: config (file vs running), clock, spool disk, spool, mqtt, one per Modbus bus,
// one per device that is not OK, lora (concentrators heard recently), uptime.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "citygate/v1/control.pb.h"
#include "cli/format.hpp"

namespace citygate::cli {

enum class CheckStatus : std::uint8_t { Ok, Warn, Fail };

struct Check {
  std::string name;  // "clock", "bus cabinet-rs485", "device air-1"
  CheckStatus status = CheckStatus::Ok;
  std::string detail;    // what was found
  std::string nextStep;  // what to do; empty when OK
};

// A concentrator is "seen recently" within this (the packet forwarder's PULL_DATA keepalive is
// 10 s by default, its stat PUSH_DATA 30 s).
inline constexpr std::chrono::seconds kConcentratorSilentAfter{60};
// Connected, readings unacknowledged, and no acknowledgement for this long: WARN.
inline constexpr std::chrono::seconds kMqttAckOverdueAfter{60};

std::vector<Check> doctorChecks(const pb::StatusResponse& s, std::chrono::system_clock::time_point now);
bool anyFail(const std::vector<Check>& checks);
const char* checkStatusName(CheckStatus s);  // "OK", "WARN", "FAIL"

// The checks as lines within `width` columns: "FAIL  device air-1   DOWN, last OK 22:33:39..."
// with the next step indented below, and a summary line.
std::string renderChecks(const std::vector<Check>& checks, const Style& style, std::size_t width = 80);
// [{"name":..,"status":"OK","detail":..,"next_step":..}, ...]
std::string checksJson(const std::vector<Check>& checks);

}  // namespace citygate::cli
