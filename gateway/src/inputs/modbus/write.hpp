// Writes to Modbus devices: the reverse of decoding (a value in a point's canonical unit ->
// registers or a coil), and the policy that decides whether a write may happen at all.
//
// A write is carried out only when commands are enabled, the device is allowed by the config
// (commands.allow), its profile marks the point writable, the value is inside the writable range
// and representable in the point's type, and the device is within its rate limit. Each refusal
// has its reason (pb::WriteRefusal) and a sentence. Pure, except the rate limiter, which keeps the
// times of each device's recent writes on the injected clock. Executor only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "citygate/v1/commands.pb.h"
#include "citygate/v1/config.pb.h"
#include "core/clock.hpp"
#include "core/sensor.hpp"
#include "inputs/modbus/spec.hpp"

namespace citygate::modbus {

struct Refusal {
  pb::WriteRefusal reason = pb::WRITE_REFUSAL_UNSPECIFIED;
  std::string detail;
};

// The registers (or one 0/1 element for a coil) that make `canonical` in the point: the unit
// conversion, offset and scale undone, rounded to the nearest integer for integer types, encoded
// in the point's word order. A refusal (NOT_REPRESENTABLE, UNSUPPORTED) when it cannot be.
struct Encoded {
  std::vector<std::uint16_t> registers;
  std::optional<Refusal> refusal;
};
Encoded encodeValue(const PointRead& read, const core::PointSpec& point, double canonical);

// The canonical value the registers hold (the normaliser's scaling; BOOL: 0 or 1, inverted as the
// point says). nullopt for STRING or too few registers.
std::optional<double> decodeValue(const PointRead& read, const core::PointSpec& point,
                                  std::span<const std::uint16_t> regs);

// Defaults of CommandsConfig.
inline constexpr std::uint32_t kDefaultRateWrites = 6;
inline constexpr std::uint32_t kDefaultRatePerS = 60;
inline constexpr std::uint32_t kDefaultWriteQueue = 4;
inline constexpr std::uint32_t kMaxWriteQueue = 64;

// Per-device rate limit: at most `writes` in any window of `per` (a sliding window of the times
// of the last `writes` writes). Bounded: one small deque per device the config allows.
class RateLimiter {
 public:
  RateLimiter(std::uint32_t writes, std::chrono::seconds per) : writes_(writes), per_(per) {}
  // True and counted when the device may write now; false (nothing counted) otherwise, with
  // `retryIn` set to when it may.
  bool take(const std::string& device, SteadyTime now, std::chrono::milliseconds* retryIn = nullptr);

 private:
  std::uint32_t writes_;
  std::chrono::seconds per_;
  std::map<std::string, std::deque<SteadyTime>> recent_;
};

// The checks of the config and the profile (everything but the rate limit and the bus). `device`
// null: UNKNOWN_DEVICE. `pointIndex` nullopt: UNKNOWN_POINT.
std::optional<Refusal> checkWrite(const pb::CommandsConfig& commands, const DeviceSpec* device,
                                  std::optional<std::size_t> pointIndex, double canonical);

// The point of a device at (table, address), if any (the first register of a multi-register one).
std::optional<std::size_t> findPoint(const DeviceSpec& device, pb::RegisterTable table, std::uint32_t address);
// The point of a device by field name (traffic: with its lane; parking: with its bay).
std::optional<std::size_t> findPoint(const DeviceSpec& device, const std::string& field, std::uint32_t lane,
                                     const std::string& bay);

// Config checks of GatewayConfig.commands (allow names Modbus devices and writable points of their
// profiles; rate limit and queue bounds), as FILE:LINE:COL diagnostics.
void validateCommands(const config::LoadedConfig& cfg, const std::vector<BusSpec>& buses, config::Diagnostics& diags);

}  // namespace citygate::modbus
