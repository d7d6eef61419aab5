// citygatectl doctor: the check rules (pure) and the command.
#include "cli/doctor.hpp"

#include "cli/terminal.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>

#include "cli/cli.hpp"

namespace citygate::cli {

namespace {

using Clock = std::chrono::system_clock;

Clock::time_point toTime(const google::protobuf::Timestamp& t) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(t.seconds()) +
                                                                       std::chrono::nanoseconds(t.nanos())));
}

std::chrono::seconds age(const google::protobuf::Timestamp& t, Clock::time_point now) {
  const auto d = std::chrono::duration_cast<std::chrono::seconds>(now - toTime(t));
  return d.count() < 0 ? std::chrono::seconds(0) : d;
}

Check make(std::string name, CheckStatus status, std::string detail, std::string next = {}) {
  return Check{std::move(name), status, std::move(detail), std::move(next)};
}

Check configCheck(const pb::StatusResponse& s, Clock::time_point now) {
  const std::string detail = s.config_path() + ", generation " + std::to_string(s.config_generation()) + ", loaded " +
                             timeAgo(s.config_loaded_at(), now);
  // The --config file against the running text, as the daemon read it just now.
  const auto& f = s.config_file();
  const std::string file = f.path().empty() ? s.config_path() : f.path();
  switch (f.state()) {
    case pb::ConfigFileStatus::DIFFERS:
      return make("config", CheckStatus::Warn, "running config differs from " + file,
                  "a restart or SIGHUP loads the file: keep the running one with citygatectl config show "
                  "> new.textproto; citygatectl config apply --save new.textproto");
    case pb::ConfigFileStatus::MISSING:
      return make("config", CheckStatus::Fail, file + " is gone: a restart would fail",
                  "citygatectl config show > new.textproto; citygatectl config apply --save new.textproto");
    case pb::ConfigFileStatus::UNREADABLE:
      return make("config", CheckStatus::Warn, file + " cannot be read: " + f.error(),
                  "check its owner and mode (citygated reads it at a restart)");
    default:
      return make("config", CheckStatus::Ok, detail);
  }
}

Check clockCheck(const pb::GatewayHealth& h, Clock::time_point now) {
  const auto& c = h.clock();
  const std::string since = isSet(c.since()) ? " since " + timeAgo(c.since(), now) : "";
  constexpr const char* kNtp =
      "check time sync: timedatectl timesync-status or chronyc tracking; can the "
      "gateway reach its NTP server?";
  switch (c.state()) {
    case pb::CLOCK_SYNCHRONISED:
      return make(
          "clock", CheckStatus::Ok,
          "synchronised" + (c.max_error_us() > 0 ? " (max error " + micros(c.max_error_us()) + ")" : std::string()));
    case pb::CLOCK_UNSYNCHRONISED:
      return make("clock", CheckStatus::Warn, "not synchronised" + since + "; readings are marked", kNtp);
    case pb::CLOCK_SYNC_UNKNOWN:
      return make("clock", CheckStatus::Warn, "cannot tell (" + c.error() + "); readings are marked",
                  "the service must allow adjtimex (no ProtectClock=yes); see citygated.service");
    default:
      return make("clock", CheckStatus::Warn, "not reported by this citygated (older than citygatectl)",
                  "check time sync: timedatectl timesync-status or chronyc tracking");
  }
}

Check diskCheck(const pb::SpoolHealth& sp) {
  if (sp.disk_total_bytes() == 0) return make("spool disk", CheckStatus::Ok, "not reported (a memory spool)");
  const std::uint64_t avail = sp.disk_free_bytes();
  const std::uint64_t mayGrow = sp.max_bytes() > sp.bytes() ? sp.max_bytes() - sp.bytes() : 0;
  const std::string detail =
      bytes(avail) + " free of " + bytes(sp.disk_total_bytes()) + "; spool may grow " + bytes(mayGrow);
  constexpr const char* kNext = "free space on the spool's file system, or lower spool.max_bytes";
  if (avail == 0 || avail < sp.disk_total_bytes() / 100) return make("spool disk", CheckStatus::Fail, detail, kNext);
  if (avail < mayGrow) return make("spool disk", CheckStatus::Warn, detail, kNext);
  return make("spool disk", CheckStatus::Ok, detail);
}

Check spoolCheck(const pb::SpoolHealth& sp) {
  if (sp.state() == pb::SPOOL_FAILING || sp.state() == pb::SPOOL_UNAVAILABLE) {
    return make("spool", CheckStatus::Fail,
                std::string(sp.state() == pb::SPOOL_FAILING ? "FAILING" : "UNAVAILABLE") + ": " + sp.last_error() +
                    "; " + std::to_string(sp.held()) + " readings held in memory",
                "check the spool directory: mounted, writable, space; citygatectl spool");
  }
  const std::uint64_t lost = sp.dropped() + sp.not_stored();
  const std::string depth =
      std::to_string(sp.readings()) + " readings waiting (" + bytes(sp.bytes()) + " of " + bytes(sp.max_bytes()) + ")";
  if (sp.blocked()) {
    return make("spool", CheckStatus::Warn, "full: sources paused; " + depth,
                "readings wait for the broker: check the mqtt line; or raise spool.max_bytes");
  }
  if (lost > 0) {
    return make("spool", CheckStatus::Warn, std::to_string(lost) + " readings lost since start; " + depth,
                "the spool was full (broker away long?): check mqtt; citygatectl spool");
  }
  return make("spool", CheckStatus::Ok, depth);
}

Check mqttCheck(const pb::StatusResponse& s, Clock::time_point now) {
  const auto& m = s.health().mqtt();
  if (!m.connected()) {
    return make("mqtt", CheckStatus::Fail,
                "disconnected from " + s.mqtt_uri() + (m.last_error().empty() ? "" : ": " + m.last_error()),
                "check the network and the broker; citygatectl mqtt reconnect after a fix");
  }
  const std::uint64_t waiting = m.published() > m.acked() ? m.published() - m.acked() : 0;
  const std::string ack = "last ack " + timeAgo(m.last_ack_at(), now);
  // Unacknowledged readings and no acknowledgement for a while (or never, on a link up that long).
  const bool overdue =
      waiting > 0 &&
      (isSet(m.last_ack_at()) ? age(m.last_ack_at(), now) > kMqttAckOverdueAfter
                              : isSet(m.connected_since()) && age(m.connected_since(), now) > kMqttAckOverdueAfter);
  if (overdue) {
    return make("mqtt", CheckStatus::Warn, "connected, " + std::to_string(waiting) + " readings unacknowledged; " + ack,
                "the broker does not acknowledge: check its log, quotas and ACLs for this client");
  }
  return make("mqtt", CheckStatus::Ok,
              "connected since " + timeAgo(m.connected_since(), now) + (isSet(m.last_ack_at()) ? "; " + ack : ""));
}

std::string stateWord(pb::DeviceState s) {
  return s == pb::DOWN ? "DOWN" : s == pb::DEGRADED ? "DEGRADED" : s == pb::OK ? "OK" : "unknown";
}

// One line per Modbus bus: FAIL when every device on it is DOWN (the bus itself, its cable, power or
// the TCP peer, rather than one device), WARN when some are not OK.
std::vector<Check> busChecks(const pb::StatusResponse& s) {
  struct Bus {
    std::string transport;
    std::size_t devices = 0;
    std::size_t down = 0;
    std::size_t notOk = 0;
  };
  std::map<std::string, Bus> buses;
  for (const auto& d : s.devices()) {
    if (d.kind() != "modbus") continue;
    Bus& b = buses[d.bus()];
    if (b.transport.empty()) b.transport = d.transport();
    ++b.devices;
    if (d.health().state() == pb::DOWN) ++b.down;
    if (d.health().state() != pb::OK) ++b.notOk;
  }
  std::vector<Check> out;
  for (const auto& [name, b] : buses) {
    const std::string where = b.transport.empty() ? std::string() : " (" + b.transport + ")";
    const std::string n = std::to_string(b.devices) + " device" + (b.devices == 1 ? "" : "s");
    if (b.down == b.devices) {
      const std::string all = b.devices == 1 ? "its one device" : "all " + n;
      out.push_back(make("bus " + name, CheckStatus::Fail, all + " DOWN" + where,
                         "check the bus: cable, power, the serial port or the TCP peer"));
    } else if (b.notOk > 0) {
      out.push_back(make("bus " + name, CheckStatus::Warn, std::to_string(b.notOk) + " of " + n + " not OK" + where,
                         "see the device lines below"));
    } else {
      out.push_back(make("bus " + name, CheckStatus::Ok, n + " OK" + where));
    }
  }
  return out;
}

// Devices that are not OK, one line each (OK ones are counted on their bus's line).
std::vector<Check> deviceChecks(const pb::StatusResponse& s, Clock::time_point now) {
  std::vector<Check> out;
  for (const auto& d : s.devices()) {
    const auto& h = d.health();
    if (h.state() == pb::OK) continue;
    const std::string name = "device " + d.id();
    const std::string error = h.last_error().empty() ? "" : ": " + h.last_error();
    if (d.kind() == "lorawan") {
      // A node sends when it wants (every few minutes to hours): not heard yet is no failure.
      if (h.frames_accepted() == 0) {
        out.push_back(make(name, CheckStatus::Warn, "no frame accepted since start" + error,
                           "check the node's power and keys: citygatectl lora devices"));
      } else {
        out.push_back(make(name, CheckStatus::Warn,
                           stateWord(h.state()) + ", last frame " + timeAgo(h.last_ok_at(), now) + error,
                           "citygatectl lora devices (mic_failed: wrong keys)"));
      }
      continue;
    }
    const std::string detail = stateWord(h.state()) + ", last OK " + timeAgo(h.last_ok_at(), now) + error;
    if (h.state() == pb::DOWN) {
      out.push_back(make(name, CheckStatus::Fail, detail,
                         "check wiring / power; citygatectl device " + d.id() + " --retry after repair"));
    } else {
      out.push_back(
          make(name, CheckStatus::Warn, detail, "check wiring and the unit id; citygatectl device " + d.id()));
    }
  }
  return out;
}

std::optional<Check> loraCheck(const pb::GatewayHealth& h, Clock::time_point now) {
  if (!h.has_lora()) return std::nullopt;
  const auto& l = h.lora();
  constexpr const char* kNext = "check the packet forwarder: running, server_address and ports to this gateway";
  const pb::ConcentratorHealth* newest = nullptr;
  for (const auto& c : l.concentrators()) {
    if (newest == nullptr || toTime(c.last_seen()) > toTime(newest->last_seen())) newest = &c;
  }
  if (newest == nullptr) {
    const auto up = std::chrono::seconds(h.process().uptime_s());
    if (up <= kConcentratorSilentAfter) {
      return make("lora", CheckStatus::Warn, "no concentrator heard yet (up " + duration(up) + ")", kNext);
    }
    return make("lora", CheckStatus::Fail, "no concentrator heard since start", kNext);
  }
  const std::string n =
      std::to_string(l.concentrators_size()) + " concentrator" + (l.concentrators_size() == 1 ? "" : "s");
  const std::string detail =
      n + ", last heard " + timeAgo(newest->last_seen(), now) + " (" + newest->gateway_eui() + ")";
  if (age(newest->last_seen(), now) > kConcentratorSilentAfter) return make("lora", CheckStatus::Fail, detail, kNext);
  return make("lora", CheckStatus::Ok, detail);
}

// Only when writes are on: what was written, and whether the audit trail keeps every record.
std::optional<Check> commandsCheck(const pb::GatewayHealth& h) {
  if (!h.has_commands() || !h.commands().enabled()) return std::nullopt;
  const auto& c = h.commands();
  std::string detail = std::string("writes on") + (c.platform() ? " (cabinet and platform)" : " (cabinet only)") +
                       ": " + std::to_string(c.done()) + " done, " +
                       std::to_string(c.refused() + c.duplicates() + c.expired() + c.malformed()) + " refused, " +
                       std::to_string(c.failed()) + " failed; audit " + std::to_string(c.audit_pending()) + " pending";
  if (!c.audit_durable()) {
    return make("commands", CheckStatus::Warn, detail + ", kept in memory only",
                "the audit spool (state_dir/audit) cannot be used: check its permissions and the disk");
  }
  if (c.audit_lost() > 0) {
    return make("commands", CheckStatus::Warn, detail + ", " + std::to_string(c.audit_lost()) + " lost",
                "audit records were dropped (the audit spool was full or failing): see `journalctl -u citygated`, "
                "logger audit");
  }
  return make("commands", CheckStatus::Ok, detail);
}

Check uptimeCheck(const pb::StatusResponse& s, Clock::time_point now) {
  const auto up = std::chrono::seconds(s.health().process().uptime_s());
  const auto& started = s.gateway().started_at();
  return make("uptime", CheckStatus::Ok,
              "up " + duration(up) + (isSet(started) ? " (since " + localClock(started, now) + ")" : "") +
                  ", citygated " + s.gateway().version());
}

Colour colourOf(CheckStatus s) {
  return s == CheckStatus::Ok ? Colour::Green : s == CheckStatus::Warn ? Colour::Yellow : Colour::Red;
}

}  // namespace

const char* checkStatusName(CheckStatus s) {
  switch (s) {
    case CheckStatus::Ok:
      return "OK";
    case CheckStatus::Warn:
      return "WARN";
    case CheckStatus::Fail:
      break;
  }
  return "FAIL";
}

std::vector<Check> doctorChecks(const pb::StatusResponse& s, Clock::time_point now) {
  std::vector<Check> out;
  const auto& h = s.health();
  out.push_back(configCheck(s, now));
  out.push_back(clockCheck(h, now));
  out.push_back(diskCheck(h.spool()));
  out.push_back(spoolCheck(h.spool()));
  out.push_back(mqttCheck(s, now));
  for (auto& c : busChecks(s)) out.push_back(std::move(c));
  for (auto& c : deviceChecks(s, now)) out.push_back(std::move(c));
  if (auto c = loraCheck(h, now)) out.push_back(std::move(*c));
  if (auto c = commandsCheck(h)) out.push_back(std::move(*c));
  out.push_back(uptimeCheck(s, now));
  return out;
}

bool anyFail(const std::vector<Check>& checks) {
  return std::any_of(checks.begin(), checks.end(), [](const Check& c) { return c.status == CheckStatus::Fail; });
}

std::string renderChecks(const std::vector<Check>& checks, const Style& style, std::size_t width) {
  // "FAIL  " + name column + detail; the next step below, after "-> ".
  std::size_t nameWidth = 0;
  for (const auto& c : checks) nameWidth = std::max(nameWidth, displayWidth(c.name));
  nameWidth = std::min<std::size_t>({nameWidth, 20, std::max<std::size_t>(width / 4, 8)});
  const std::size_t indent = 6 + nameWidth + 2;
  const std::size_t room = width > indent + 16 ? width - indent : 16;
  std::string out;
  std::size_t counts[3] = {0, 0, 0};
  for (const auto& c : checks) {
    ++counts[static_cast<int>(c.status)];
    std::string name = c.name;
    if (displayWidth(name) > nameWidth) name = name.substr(0, nameWidth);  // names are ASCII ids
    const std::string status = checkStatusName(c.status);
    const auto lines = wrapLine(c.detail, room, 0);
    out += style.paint(status, colourOf(c.status)) + std::string(6 - status.size(), ' ') + name +
           std::string(nameWidth - displayWidth(name) + 2, ' ') + lines[0] + "\n";
    for (std::size_t i = 1; i < lines.size(); ++i) out += std::string(indent, ' ') + lines[i] + "\n";
    if (!c.nextStep.empty()) {
      const auto steps = wrapLine(c.nextStep, room - 3, 0);
      for (std::size_t i = 0; i < steps.size(); ++i) {
        out += std::string(indent, ' ') + (i == 0 ? "-> " : "   ") + steps[i] + "\n";
      }
    }
  }
  out += "\n";
  if (counts[1] == 0 && counts[2] == 0) {
    out += style.paint("all " + std::to_string(counts[0]) + " checks OK", Colour::Green) + "\n";
  } else {
    // "1 FAIL, 2 WARN, 5 OK": the counts that are not zero.
    std::string summary;
    for (int i = 2; i >= 0; --i) {
      if (counts[i] == 0) continue;
      summary += (summary.empty() ? "" : ", ") + std::to_string(counts[i]) + " " +
                 checkStatusName(static_cast<CheckStatus>(i));
    }
    out += summary + (counts[2] > 0 ? " (exit status 1)" : "") + "\n";
  }
  return out;
}

std::string checksJson(const std::vector<Check>& checks) {
  std::string out = "[";
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& c = checks[i];
    out += std::string(i == 0 ? "\n" : ",\n") + "  {\"name\": " + jsonString(c.name) +
           ", \"status\": " + jsonString(checkStatusName(c.status)) + ", \"detail\": " + jsonString(c.detail) +
           ", \"next_step\": " + jsonString(c.nextStep) + "}";
  }
  out += checks.empty() ? "]\n" : "\n]\n";
  return out;
}

int statusCheckExit(const pb::StatusResponse& s) {
  return anyFail(doctorChecks(s, Clock::now())) ? kExitFailed : kExitOk;
}

}  // namespace citygate::cli
