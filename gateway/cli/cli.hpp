// citygatectl internals shared by the command files: parsed arguments, the output context, and
// the request/response round trip with its error reporting.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/client.hpp"
#include "cli/format.hpp"

namespace citygate::cli {

inline constexpr const char* kDefaultSocket = "/run/citygate/control.sock";

struct Args {
  std::vector<std::string> positional;        // command words and operands
  std::map<std::string, std::string> values;  // --name VALUE
  std::set<std::string> flags;                // --name
  bool help = false;

  bool has(const std::string& name) const { return values.contains(name) || flags.contains(name); }
  std::string value(const std::string& name, const std::string& fallback = {}) const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
};

struct Ctx {
  std::string socket = kDefaultSocket;
  bool json = false;
  Style out;  // stdout
  Style err;  // stderr
  bool stdoutTty = false;
  bool stderrTty = false;
};

// "citygatectl: message" on stderr, returns `code`.
int fail(const Ctx& ctx, int code, const std::string& message);
// Usage error for `command` (with a pointer to its --help), returns 2.
int usageError(const Ctx& ctx, const std::string& command, const std::string& message);

// Connects, sends `request`, reads the first response. On a daemon error reply, prints it (and
// its diagnostics; with --json the whole response on stdout) and returns its exit code; on a
// transport error prints it and returns its code. 0 with `response` filled otherwise.
int roundTrip(const Ctx& ctx, Client& client, const pb::ControlRequest& request, pb::ControlResponse& response,
              std::chrono::milliseconds timeout);
// The same on a connection of its own, for commands that read one reply.
int roundTrip(const Ctx& ctx, const pb::ControlRequest& request, pb::ControlResponse& response,
              std::chrono::milliseconds timeout);
// Prints a daemon's error reply; returns its exit code.
int reportError(const Ctx& ctx, const pb::ControlResponse& response);

// `device ID` of a LoRa device that has delivered nothing: one explained hint per rejection reason
// (lora.cpp), lines of at most 80 columns; empty when there is nothing to explain.
std::string loraDeviceHints(const Style& o, const pb::DeviceHealth& h, std::chrono::system_clock::time_point now);
// `lora heard` for people (lora.cpp): the table, or what an empty one means.
std::string loraHeardText(const pb::LoraHeardResponse& l, std::chrono::system_clock::time_point now, const Style& o);

// Parsers for operands; nullopt when malformed.
std::optional<std::uint32_t> parseUint(const std::string& s, std::uint32_t max);
std::optional<pb::RegisterTable> parseTable(const std::string& s);
std::string tableName(pb::RegisterTable t);

// Commands (each returns the exit code).
int cmdStatus(const Ctx& ctx, const Args& a);
int cmdDevices(const Ctx& ctx, const Args& a);
int cmdDevice(const Ctx& ctx, const Args& a);
int cmdTail(const Ctx& ctx, const Args& a);
int cmdConfigValidate(const Ctx& ctx, const Args& a);
int cmdConfigShow(const Ctx& ctx, const Args& a);
int cmdConfigDiff(const Ctx& ctx, const Args& a);
int cmdConfigApply(const Ctx& ctx, const Args& a);
int cmdModbusRead(const Ctx& ctx, const Args& a);
int cmdModbusProbe(const Ctx& ctx, const Args& a);
int cmdModbusScan(const Ctx& ctx, const Args& a);
int cmdModbusWrite(const Ctx& ctx, const Args& a);
int cmdLoraDevices(const Ctx& ctx, const Args& a);
int cmdLoraHeard(const Ctx& ctx, const Args& a);
int cmdLoraDevStatus(const Ctx& ctx, const Args& a);
int cmdSpool(const Ctx& ctx, const Args& a);
int cmdProfiles(const Ctx& ctx, const Args& a);
int cmdProfileShow(const Ctx& ctx, const Args& a);
int cmdLogLevel(const Ctx& ctx, const Args& a);
int cmdMqttReconnect(const Ctx& ctx, const Args& a);
int cmdNodeShow(const Ctx& ctx, const Args& a);             // cli/node.cpp
int cmdNodeProvision(const Ctx& ctx, const Args& a);        // cli/node.cpp
int cmdDeviceRetry(const Ctx& ctx, const std::string& id);  // `device ID --retry`

// Times of state changes, bus lines and the parts of multi-part devices (health.cpp).
// "DOWN since 22:33:39, 4 min"
std::string stateLine(const Style& o, const pb::DeviceHealth& h, std::chrono::system_clock::time_point now);
// For a table: "OK", "DOWN 22:33:39"
std::string stateCell(const Style& o, const pb::DeviceHealth& h);
// The current error, "-" when there is none (a recovered device's error is history).
std::string errorCell(const pb::DeviceHealth& h);
// The current error with its time, or a recovered device's last one marked as past.
std::string lastErrorLine(const Style& o, const pb::DeviceHealth& h, std::chrono::system_clock::time_point now);
// status: the MQTT link after its label (several lines, each ending in a newline), and one line per
// Modbus bus.
std::string mqttLines(const Style& o, const pb::StatusResponse& s, std::chrono::system_clock::time_point now);
std::string busLines(const Style& o, const pb::GatewayHealth& h, std::chrono::system_clock::time_point now);
// devices: the LATEST VALUES cell ("3 parts:" for a multi-part device; "(stale) ..." when stale),
// the indented lines of every part, and a rendered table with each row's part lines after it.
std::string valuesCell(const pb::DeviceInfo& d);
std::string partLines(const Style& o, const pb::DeviceInfo& d);
std::string withParts(const std::string& table, const std::vector<std::string>& parts);
int cmdDoctor(const Ctx& ctx, const Args& a);  // cli/doctor.cpp
// `status --check`: 1 when `doctor` would show a FAIL, else 0 (cli/doctor.cpp).
int statusCheckExit(const pb::StatusResponse& s);

// Help.
struct CommandInfo {
  const char* name;                  // "modbus probe"
  const char* usage;                 // operands and options
  const char* summary;               // one line
  const char* details;               // paragraphs
  std::vector<std::string> options;  // accepted --options (besides the global ones)
  int (*run)(const Ctx&, const Args&);
  std::size_t minOperands = 0;  // after the command's own words
  std::size_t maxOperands = 0;
};
const std::vector<CommandInfo>& commands();
const CommandInfo* findCommand(const std::string& name);
std::string generalHelp();
std::string commandHelp(const CommandInfo& c);

}  // namespace citygate::cli
