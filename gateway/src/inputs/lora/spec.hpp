// Compiled LoRa configuration: the packet-forwarder endpoint, the dedup and frame-counter
// settings, and every device with its session keys, codec and SensorSpec. compile() is also the
// LoRa validator (like modbus::compileBuses): bad hex, wrong key lengths, unknown codecs,
// unreadable or group/world-readable key files, LPP channel-map problems and devices that share
// both DevAddr and keys are FILE:LINE:COL diagnostics. Key material never appears in a
// diagnostic. Reads key files, nothing else; no sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "core/sensor.hpp"
#include "inputs/lora/codecs/codec.hpp"
#include "inputs/lora/crypto.hpp"

namespace citygate::lora {

struct DeviceSpec {
  std::shared_ptr<const core::SensorSpec> sensor;
  std::shared_ptr<const Codec> codec;
  std::uint32_t devAddr = 0;
  std::string devAddrHex;  // upper case, as printed
  std::string devEui;      // upper case, or empty
  Key nwkSKey;
  Key appSKey;
  bool relaxFcnt = false;
  // OTAA: no session until the device joins (devAddr 0, session keys zero); the join sets them.
  bool otaa = false;
  std::uint64_t devEuiValue = 0;         // OTAA: the DevEUI it joins with
  std::optional<std::uint64_t> joinEui;  // OTAA: the JoinEUI it must send; none: any
  Key appKey;
};

// lora.join: what a join-accept gives a device.
struct JoinSpec {
  std::uint32_t netId = 0;
  std::uint32_t devAddrFirst = 0;
  std::uint32_t devAddrLast = 0;
  std::uint8_t rxDelay = 1;  // s
  std::uint8_t rx1DrOffset = 0;
  std::uint8_t rx2DataRate = 0;
  std::vector<std::uint32_t> cflist;  // 100 Hz units; empty: none
};

struct LoraSpec {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 1700;
  std::chrono::milliseconds dedupWindow{200};
  std::uint32_t maxFcntGap = 16384;
  std::string statePath;   // state_dir/lora-fcnt.state; empty: counters are not persisted
  std::string runtimeDir;  // the RAM copy's directory (tmpfs); empty: no RAM copy
  // Only the retry period of a failed write of the storage copy (nothing is written periodically).
  std::chrono::milliseconds persistInterval{5000};
  std::uint32_t resumeMargin = 16;
  bool downlink = false;  // lora.downlink.enabled
  int txPower = 14;       // dBm
  std::size_t queueDepth = 8;
  std::string fcntDownPath;      // state_dir/lora-fcntdown.state (downlinks only)
  std::optional<JoinSpec> join;  // lora.join
  std::string otaaPath;          // state_dir/lora-otaa.state (when a device is OTAA)
  std::vector<DeviceSpec> devices;
};

// nullopt when the config has no lora block. With errors (in `diags`), the devices that
// compiled are returned; the caller decides from `diags`.
std::optional<LoraSpec> compile(const config::LoadedConfig& cfg, config::Diagnostics& diags);

// "26011F42" -> 0x26011F42; nullopt unless exactly 8 hex digits.
std::optional<std::uint32_t> parseDevAddr(std::string_view hex);

}  // namespace citygate::lora
