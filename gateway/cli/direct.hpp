// Modbus without the daemon (`modbus read/probe/scan` when citygated does not run, or with
// --tcp/--rtu): the bus settings come from a config file (--config FILE, validated like at start-up)
// or from flags, and the reads go through the gateway's own Transport (libmodbus), blocking.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "citygate/v1/config.pb.h"
#include "cli/cli.hpp"
#include "inputs/modbus/transport.hpp"

namespace citygate::cli {

// The bus named `name` in the config file, or the bus the flags describe. Prints what is wrong and
// sets `exitCode` when it fails.
std::optional<pb::ModbusBus> directBus(const Ctx& ctx, const Args& a, const std::string& name, int& exitCode);

// True when the flags ask for direct access (--tcp, --rtu, --rtu-over-tcp, --direct).
bool wantsDirect(const Args& a);

struct DirectResult {
  modbus::ReadError error;
  std::vector<std::uint16_t> registers;
  std::uint32_t rttUs = 0;
};

class DirectBus {
 public:
  explicit DirectBus(const pb::ModbusBus& bus);
  std::string describe() const { return transport_->describe(); }
  modbus::ReadError open();
  DirectResult read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                    std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<modbus::Transport> transport_;
};

}  // namespace citygate::cli
