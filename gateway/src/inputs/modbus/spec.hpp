// Compiled Modbus configuration: every bus with its devices, each device with its points and
// read plan inputs, built from the config and the profile library. compileBuses() is also the
// Modbus validator: profile checks, overlapping points, types that do not fit their registers,
// unit-id collisions and poll plans the bus cannot serve are FILE:LINE:COL diagnostics.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "core/sensor.hpp"
#include "inputs/modbus/planner.hpp"

namespace citygate::modbus {

struct PointRead {
  pb::RegisterTable table = pb::HOLDING_REGISTER;
  std::uint32_t address = 0;
  std::uint32_t count = 1;  // registers, or 1 bit
  pb::DataType type = pb::UINT16;
  pb::WordOrder order = pb::ABCD;
  std::uint32_t bit = 0;
  bool bitInRegister = false;
  bool allOnesNotAvailable = false;  // ProfilePoint.all_ones_not_available
  // ProfilePoint.writable: commands may write it, within [writeMin, writeMax] (canonical unit).
  bool writable = false;
  double writeMin = 0.0;
  double writeMax = 0.0;
};

struct DeviceSpec {
  std::shared_ptr<const core::SensorSpec> sensor;
  std::string profile;
  std::uint8_t unitId = 1;
  std::chrono::milliseconds interval{60000};
  std::chrono::milliseconds timeout{500};
  std::vector<PointRead> reads;  // aligned with sensor->points
  PlanLimits limits;
  bool reportByException = false;
};

struct BusSpec {
  enum class Kind : std::uint8_t { Tcp, Rtu, RtuOverTcp };
  std::string name;
  Kind kind = Kind::Tcp;
  pb::ModbusBus config;  // defaults applied; devices are in `devices`
  std::vector<DeviceSpec> devices;
  double utilisation = 0.0;  // RTU: estimated share of bus time the poll plan needs
};

// Every bus has its own worker thread, and the service runs with TasksMax=256 (the packaged unit):
// more buses than this are a configuration error, with room left for the daemon's other threads
// (main, spool sync, MQTT client, config checks). A TCP device that is its own bus counts as one.
inline constexpr int kMaxBuses = 128;

// Wire time of one RTU read transaction (request + response + 2 x t3.5) at a baud rate.
std::chrono::microseconds rtuTransactionTime(std::uint32_t baud, std::uint32_t bitsPerChar, bool bitTable,
                                             std::uint32_t count);

std::vector<BusSpec> compileBuses(const config::LoadedConfig& cfg, config::Diagnostics& diags);

// Checks one profile for Modbus use (fields, units, types, addresses, overlaps); compiled points
// and reads are appended when valid.
bool compileProfile(const config::ProfileEntry& entry, std::vector<core::PointSpec>& points,
                    std::vector<PointRead>& reads, config::Diagnostics& diags);

}  // namespace citygate::modbus
