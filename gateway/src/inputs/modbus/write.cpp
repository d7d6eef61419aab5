#include "inputs/modbus/write.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "inputs/modbus/decode.hpp"

namespace citygate::modbus {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

Encoded refuse(pb::WriteRefusal reason, std::string detail) {
  Encoded e;
  e.refusal = Refusal{reason, std::move(detail)};
  return e;
}

// The integer nearest to `raw`, if it is inside [lo, hi].
template <typename T>
std::optional<T> integral(double raw) {
  if (!std::isfinite(raw)) return std::nullopt;
  const double r = std::nearbyint(raw);
  // Bounds as doubles: INT64/UINT64 max are not exactly representable, so compare with < 2^63/2^64.
  const double lo = static_cast<double>(std::numeric_limits<T>::min());
  const double hiExclusive = std::ldexp(1.0, std::numeric_limits<T>::digits);
  if (r < lo || r >= hiExclusive) return std::nullopt;
  return static_cast<T>(r);
}

}  // namespace

Encoded encodeValue(const PointRead& read, const core::PointSpec& point, double canonical) {
  if (!std::isfinite(canonical)) return refuse(pb::NOT_REPRESENTABLE, "the value is not a finite number");
  if (read.type == pb::STRING) return refuse(pb::UNSUPPORTED, "STRING points cannot be written");
  if (read.bitInRegister) {
    return refuse(pb::UNSUPPORTED, "writing one bit inside a register is not supported");
  }
  if (read.type == pb::BOOL) {
    if (canonical != 0.0 && canonical != 1.0) return refuse(pb::NOT_REPRESENTABLE, "a BOOL point takes 0 or 1");
    return Encoded{{static_cast<std::uint16_t>(canonical)}, std::nullopt};
  }
  // canonical = (raw * scale + offset) * factor + convOffset, undone.
  const double scale = point.scale == 0 ? 1.0 : point.scale;
  const double factor = point.conversion.factor == 0 ? 1.0 : point.conversion.factor;
  const double raw = ((canonical - point.conversion.offset) / factor - point.offset) / scale;
  const std::string typeName = pb::DataType_Name(read.type);
  auto notRepresentable = [&] {
    return refuse(pb::NOT_REPRESENTABLE, number(canonical) + " is " + number(raw) +
                                             " in the device's register, which " + typeName + " cannot hold");
  };
  Encoded e;
  e.registers.resize(registerCount(read.type));
  std::uint16_t* out = e.registers.data();
  switch (read.type) {
    case pb::INT16: {
      auto v = integral<std::int16_t>(raw);
      if (!v) return notRepresentable();
      out[0] = static_cast<std::uint16_t>(*v);
      if (read.order == pb::BADC || read.order == pb::DCBA)
        out[0] = static_cast<std::uint16_t>((out[0] << 8) | (out[0] >> 8));
      break;
    }
    case pb::UINT16: {
      auto v = integral<std::uint16_t>(raw);
      if (!v) return notRepresentable();
      out[0] = *v;
      if (read.order == pb::BADC || read.order == pb::DCBA)
        out[0] = static_cast<std::uint16_t>((out[0] << 8) | (out[0] >> 8));
      break;
    }
    case pb::INT32: {
      auto v = integral<std::int32_t>(raw);
      if (!v) return notRepresentable();
      encode32(static_cast<std::uint32_t>(*v), read.order, out);
      break;
    }
    case pb::UINT32: {
      auto v = integral<std::uint32_t>(raw);
      if (!v) return notRepresentable();
      encode32(*v, read.order, out);
      break;
    }
    case pb::FLOAT32: {
      if (std::fabs(raw) > static_cast<double>(std::numeric_limits<float>::max())) return notRepresentable();
      encode32(std::bit_cast<std::uint32_t>(static_cast<float>(raw)), read.order, out);
      break;
    }
    case pb::INT64: {
      auto v = integral<std::int64_t>(raw);
      if (!v) return notRepresentable();
      encode64(static_cast<std::uint64_t>(*v), read.order, out);
      break;
    }
    case pb::UINT64: {
      auto v = integral<std::uint64_t>(raw);
      if (!v) return notRepresentable();
      encode64(*v, read.order, out);
      break;
    }
    case pb::FLOAT64:
      encode64(std::bit_cast<std::uint64_t>(raw), read.order, out);
      break;
    default:
      return refuse(pb::UNSUPPORTED, typeName + " points cannot be written");
  }
  return e;
}

std::optional<double> decodeValue(const PointRead& read, const core::PointSpec& point,
                                  std::span<const std::uint16_t> regs) {
  if (regs.empty()) return std::nullopt;
  if (read.type == pb::BOOL) {
    return read.bitInRegister ? (registerBit(regs[0], read.bit) ? 1.0 : 0.0) : (regs[0] != 0 ? 1.0 : 0.0);
  }
  auto raw = decodeNumber(read.type, read.order, regs);
  if (!raw) return std::nullopt;
  return point.canonical(*raw);
}

bool RateLimiter::take(const std::string& device, SteadyTime now, std::chrono::milliseconds* retryIn) {
  auto& q = recent_[device];
  while (!q.empty() && now - q.front() >= per_) q.pop_front();
  if (q.size() >= writes_) {
    if (retryIn) {
      *retryIn = std::chrono::ceil<std::chrono::milliseconds>(q.front() + per_ - now);
    }
    return false;
  }
  q.push_back(now);
  return true;
}

std::optional<std::size_t> findPoint(const DeviceSpec& device, pb::RegisterTable table, std::uint32_t address) {
  for (std::size_t i = 0; i < device.reads.size(); ++i) {
    if (device.reads[i].table == table && device.reads[i].address == address) return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> findPoint(const DeviceSpec& device, const std::string& field, std::uint32_t lane,
                                     const std::string& bay) {
  const auto& points = device.sensor->points;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (points[i].name == field && points[i].lane == lane && points[i].bay == bay) return i;
  }
  return std::nullopt;
}

std::optional<Refusal> checkWrite(const pb::CommandsConfig& commands, const DeviceSpec* device,
                                  std::optional<std::size_t> pointIndex, double canonical) {
  if (!commands.enabled()) {
    return Refusal{pb::COMMANDS_DISABLED, "writes are off: the configuration has no commands { enabled: true }"};
  }
  if (device == nullptr) return Refusal{pb::UNKNOWN_DEVICE, "no such Modbus device in the running configuration"};
  const std::string& id = device->sensor->id;
  const pb::CommandAllow* allow = nullptr;
  for (const auto& a : commands.allow()) {
    if (a.device() == id) allow = &a;
  }
  if (allow == nullptr) {
    return Refusal{pb::DEVICE_NOT_ALLOWED, "device '" + id + "' is not in commands.allow"};
  }
  if (!pointIndex) return Refusal{pb::UNKNOWN_POINT, "profile '" + device->profile + "' has no such point"};
  const PointRead& rd = device->reads[*pointIndex];
  const core::PointSpec& ps = device->sensor->points[*pointIndex];
  if (rd.table != pb::COIL && rd.table != pb::HOLDING_REGISTER) {
    return Refusal{pb::READ_ONLY_TABLE,
                   "point '" + ps.name + "' is in " + pb::RegisterTable_Name(rd.table) + ", which cannot be written"};
  }
  if (!rd.writable) {
    return Refusal{pb::POINT_NOT_WRITABLE,
                   "profile '" + device->profile + "' does not mark point '" + ps.name + "' writable"};
  }
  if (allow->point_size() != 0 &&
      std::find(allow->point().begin(), allow->point().end(), ps.name) == allow->point().end()) {
    return Refusal{pb::DEVICE_NOT_ALLOWED, "point '" + ps.name + "' of device '" + id + "' is not in commands.allow"};
  }
  if (!std::isfinite(canonical)) return Refusal{pb::NOT_REPRESENTABLE, "the value is not a finite number"};
  if (canonical < rd.writeMin || canonical > rd.writeMax) {
    return Refusal{pb::OUT_OF_RANGE, number(canonical) + " is outside the writable range " + number(rd.writeMin) +
                                         ".." + number(rd.writeMax) + " of point '" + ps.name + "'"};
  }
  return std::nullopt;
}

void validateCommands(const config::LoadedConfig& cfg, const std::vector<BusSpec>& buses, config::Diagnostics& diags) {
  const pb::GatewayConfig& c = cfg.config;
  if (!c.has_commands()) return;
  const auto at = cfg.parsed.root.child("commands");
  const auto& cmd = c.commands();
  if (cmd.has_rate_limit()) {
    const auto rl = at.child("rate_limit");
    if (cmd.rate_limit().writes() == 0 || cmd.rate_limit().writes() > 1000) {
      rl.field("writes").error(diags, "rate_limit.writes must be 1..1000");
    }
    if (cmd.rate_limit().per_s() == 0 || cmd.rate_limit().per_s() > 86400) {
      rl.field("per_s").error(diags, "rate_limit.per_s must be 1..86400");
    }
  }
  if (cmd.queue_capacity() > kMaxWriteQueue) {
    at.field("queue_capacity").error(diags, "queue_capacity must be 1.." + std::to_string(kMaxWriteQueue));
  }
  if (cmd.platform() && !cmd.enabled()) {
    at.field("platform").error(diags, "platform: true needs enabled: true (platform commands are writes too)");
  }
  if (cmd.dedupe_window() != 0 && (cmd.dedupe_window() < 16 || cmd.dedupe_window() > 65536)) {
    at.field("dedupe_window").error(diags, "dedupe_window must be 16..65536 (request ids remembered)");
  }
  if (cmd.max_expiry_s() > 86400) {
    at.field("max_expiry_s").error(diags, "max_expiry_s must be 1..86400: a command must not wait days to run");
  }
  std::set<std::string> downlinkSeen;
  for (int i = 0; i < cmd.allow_downlink_size(); ++i) {
    const auto& id = cmd.allow_downlink(i);
    const auto dat = at.field("allow_downlink", i);
    if (!downlinkSeen.insert(id).second) {
      dat.error(diags, "device '" + id + "' is in allow_downlink twice");
      continue;
    }
    bool found = false;
    for (const auto& d : c.lora().device()) found = found || d.id() == id;
    if (!found) {
      dat.error(diags, "commands.allow_downlink names '" + id + "', which is no LoRa device of this configuration");
    } else if (!c.lora().downlink().enabled()) {
      dat.error(diags,
                "commands.allow_downlink needs lora { downlink { enabled: true } }: no downlink is sent without it");
    }
  }
  std::set<std::string> seen;
  for (int i = 0; i < cmd.allow_size(); ++i) {
    const auto& a = cmd.allow(i);
    const auto aat = at.child("allow", i);
    const DeviceSpec* dev = nullptr;
    for (const auto& b : buses) {
      for (const auto& d : b.devices) {
        if (d.sensor->id == a.device()) dev = &d;
      }
    }
    if (!seen.insert(a.device()).second) {
      aat.field("device").error(diags, "device '" + a.device() + "' is allowed twice");
      continue;
    }
    if (dev == nullptr) {
      aat.field("device").error(
          diags, "commands.allow names '" + a.device() + "', which is no Modbus device of this configuration");
      continue;
    }
    for (int k = 0; k < a.point_size(); ++k) {
      bool found = false;
      bool writable = false;
      for (std::size_t p = 0; p < dev->reads.size(); ++p) {
        if (dev->sensor->points[p].name != a.point(k)) continue;
        found = true;
        writable = writable || dev->reads[p].writable;
      }
      if (!found) {
        aat.field("point", k)
            .error(diags,
                   "profile '" + dev->profile + "' of device '" + a.device() + "' has no point '" + a.point(k) + "'");
      } else if (!writable) {
        aat.field("point", k)
            .error(diags, "point '" + a.point(k) + "' of profile '" + dev->profile +
                              "' is not writable (the profile has no writable { min max } for it)");
      }
    }
  }
}

}  // namespace citygate::modbus
