// citygatectl: the daemon's commands (status, devices, tail, config, lora, spool, log-level).
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include "app/validate.hpp"
#include "cli/cli.hpp"
#include "cli/terminal.hpp"
#include "config/files.hpp"

namespace citygate::cli {

namespace {

using Clock = std::chrono::system_clock;
constexpr std::chrono::seconds kReplyTimeout{15};
constexpr std::chrono::seconds kApplyTimeout{120};

void printJson(const google::protobuf::Message& m) {
  std::printf("%s\n", toJson(m, true).c_str());
}

std::string where(const pb::DeviceInfo& d) {
  if (d.kind() == "modbus") return d.bus() + " #" + std::to_string(d.unit_id());
  return d.dev_addr();
}

std::string paintedState(const Style& s, const pb::DeviceHealth& h) {
  return s.paint(stateName(h.state()), stateColour(h.state()));
}

std::uint64_t rejectedTotal(const pb::DeviceHealth& h) {
  std::uint64_t n = 0;
  for (const auto& [k, v] : h.frames_rejected()) n += v;
  return n;
}

// A configuration to send to the daemon: read as the daemon reads one (a regular file of at most
// kMaxConfigBytes: a FIFO or /dev/zero is refused, not waited on), and held to the daemon's text
// rule (UTF-8) here, so that a Latin-1 byte gets the same FILE:LINE:COL diagnostic as `config
// validate` gives instead of a "malformed request" from the socket.
int readConfigText(const Ctx& ctx, const std::string& path, std::string& out) {
  config::SmallFile f = config::readSmallFile(path, config::kMaxConfigBytes);
  if (!f.ok()) {
    return fail(ctx, f.fault == config::FileFault::Missing ? kExitNotFound : kExitFailed,
                "cannot read " + path + ": " + f.error);
  }
  config::Diagnostics diags;
  if (!config::checkUtf8(path, f.bytes, diags)) {
    for (const auto& d : diags.items()) std::fprintf(stderr, "%s\n", d.str().c_str());
    return kExitConfig;
  }
  out = std::move(f.bytes);
  return 0;
}

// FILE as the daemon should see it: its real path (links followed), or absolute by its text when
// it does not resolve. The daemon compares it with its own --config file.
std::string resolvedPath(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) != nullptr) return real;
  return config::absolutePath(path);
}

// "SIGHUP and a restart load FILE, which differs from the running configuration"
std::string configFileNote(const pb::ConfigFileStatus& f) {
  switch (f.state()) {
    case pb::ConfigFileStatus::SAME:
      return "same as running";
    case pb::ConfigFileStatus::DIFFERS:
      return "differs from running";
    case pb::ConfigFileStatus::MISSING:
      return "missing";
    case pb::ConfigFileStatus::UNREADABLE:
      return "unreadable: " + f.error();
    default:
      return "not reported";
  }
}

std::string interval(std::uint32_t ms) {
  if (ms == 0) return "-";
  if (ms < 1000 || ms % 1000 != 0) return std::to_string(ms) + " ms";
  return duration(std::chrono::seconds(ms / 1000));
}

std::string joined(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out.empty() ? "-" : out;
}

// "bus a, bus b, lora"
std::string sources(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + (i == "lora" ? std::string("LoRa") : "bus " + i);
  return out.empty() ? "-" : out;
}

}  // namespace

// ---- status -------------------------------------------------------------------------------------

namespace {

// The --config file's line(s) under `Config`: only when it is not simply the file running.
std::string configFileLines(const Style& o, const std::string& running, const pb::ConfigFileStatus& f) {
  if (f.path().empty() || (f.state() == pb::ConfigFileStatus::SAME && f.path() == running)) return {};
  const bool same = f.state() == pb::ConfigFileStatus::SAME;
  std::string out = o.paint("File    ", Colour::Bold) + "  " + f.path() + " · " +
                    o.paint(configFileNote(f), same ? Colour::None : Colour::Yellow) + "\n";
  if (f.state() == pb::ConfigFileStatus::DIFFERS) {
    out += "          a SIGHUP or restart loads the file, not the running config\n";
  }
  return out;
}

}  // namespace

int cmdStatus(const Ctx& ctx, const Args& a) {
  pb::ControlRequest req;
  req.mutable_status();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  const auto& s = resp.status();
  // Plain `status` exits 0 whatever it shows (scripts parse it); `--check` by doctor's FAIL rule.
  const int exitCode = a.has("check") ? statusCheckExit(s) : 0;
  if (ctx.json) {
    printJson(s);
    return exitCode;
  }
  const auto now = Clock::now();
  const auto& h = s.health();
  const Style& o = ctx.out;
  auto label = [&](const char* l) { return o.paint(l, Colour::Bold); };
  std::string out;
  out += label("Gateway ") + "  " + s.gateway().gateway_id() + "   citygated " + s.gateway().version() + ", up " +
         duration(std::chrono::seconds(h.process().uptime_s())) + " (boot " + s.gateway().boot_id().substr(0, 8) +
         ")\n";
  out += label("Config  ") + "  " + s.config_path() + " · generation " + std::to_string(s.config_generation()) +
         " · loaded " + relativeTime(s.config_loaded_at(), now) + "\n";
  out += configFileLines(o, s.config_path(), s.config_file());
  out += label("MQTT    ") + "  " + mqttLines(o, s, now);
  out += busLines(o, h, now);
  const auto& sp = h.spool();
  out += label("Spool   ") + "  " + bytes(sp.bytes()) + " of " + bytes(sp.max_bytes()) + " · " +
         std::to_string(sp.readings()) + " readings waiting · next seq " + std::to_string(sp.next_seq()) + " · " +
         (sp.dropped() ? o.paint(std::to_string(sp.dropped()) + " dropped", Colour::Red) : std::string("0 dropped")) +
         (sp.blocked() ? " · " + o.paint("sources blocked", Colour::Yellow) : "") +
         (sp.state() == pb::SPOOL_UNAVAILABLE ? " · " + o.paint("UNAVAILABLE: " + sp.last_error(), Colour::Red)
          : sp.state() == pb::SPOOL_FAILING   ? " · " + o.paint("FAILING: " + sp.last_error(), Colour::Red)
                                              : std::string()) +
         "\n";
  out += label("Process ") + "  RSS " + bytes(h.process().rss_bytes()) + " · CPU " +
         micros(h.process().cpu_user_us() + h.process().cpu_system_us()) + "\n";
  if (h.has_lora()) {
    std::uint64_t rejected = 0;
    for (const auto& [k, v] : h.lora().rejected()) rejected += v;
    out += label("LoRa    ") + "  " + std::to_string(h.lora().concentrators_size()) + " concentrator(s) · " +
           std::to_string(h.lora().frames_accepted()) + " frames accepted · " + std::to_string(rejected) +
           " rejected\n";
  }
  out += "\n";
  Table t({"DEVICE", "KIND", "WHERE", "STATE", "LAST OK", "OK", "FAILED", "TIMEOUTS", "RTT", "LAST ERROR"});
  t.dropWhenNarrow({"TIMEOUTS", "FAILED", "OK", "RTT", "KIND", "WHERE", "LAST OK"});
  for (const auto& d : s.devices()) {
    const auto& dh = d.health();
    const bool lora = d.kind() == "lorawan";
    t.add({d.id(), d.kind(), where(d), stateCell(o, dh), relativeTime(dh.last_ok_at(), now),
           std::to_string(lora ? dh.frames_accepted() : dh.polls_ok()),
           std::to_string(lora ? rejectedTotal(dh) : dh.polls_failed()), lora ? "-" : std::to_string(dh.timeouts()),
           lora || dh.rtt_us() == 0 ? "-" : micros(dh.rtt_us()), errorCell(dh)});
  }
  if (t.empty()) {
    out += "no devices configured\n";
  } else {
    out += t.render(o);
  }
  std::fputs(out.c_str(), stdout);
  return exitCode;
}

// ---- devices ----------------------------------------------------------------------------------------

int cmdDevices(const Ctx& ctx, const Args&) {
  pb::ControlRequest req;
  req.mutable_devices();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (ctx.json) {
    printJson(resp.devices());
    return 0;
  }
  const auto now = Clock::now();
  Table t({"DEVICE", "KIND", "PROFILE", "WHERE", "EVERY", "STATE", "LAST READING", "LATEST VALUES"});
  t.dropWhenNarrow({"EVERY", "KIND", "PROFILE", "WHERE", "LAST READING"}).cutLast(ctx.stdoutTty);
  std::vector<std::string> parts;  // every part of a multi-part device, under its row
  for (const auto& d : resp.devices().devices()) {
    const std::string values = valuesCell(d);
    t.add({d.id(), d.kind(), d.profile(), where(d), interval(d.poll_interval_ms()), paintedState(ctx.out, d.health()),
           d.has_last_reading() ? relativeTime(d.last_reading().observed_at(), now) : "none yet", values});
    parts.push_back(partLines(ctx.out, d));
  }
  std::fputs(t.empty() ? "no devices configured\n" : withParts(t.render(ctx.out), parts).c_str(), stdout);
  return 0;
}

int cmdDevice(const Ctx& ctx, const Args& a) {
  if (a.positional.size() != 2) return usageError(ctx, "device", "device wants one ID");
  if (a.has("retry")) return cmdDeviceRetry(ctx, a.positional[1]);
  pb::ControlRequest req;
  req.mutable_devices()->set_device_id(a.positional[1]);
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (resp.devices().devices_size() != 1) return fail(ctx, kExitNotFound, "no device '" + a.positional[1] + "'");
  const auto& d = resp.devices().devices(0);
  if (ctx.json) {
    printJson(d);
    return 0;
  }
  const auto now = Clock::now();
  const auto& h = d.health();
  const Style& o = ctx.out;
  auto label = [&](const char* l) { return o.paint(l, Colour::Bold); };
  std::string out;
  out += label("Device     ") + "  " + d.id() + " (" + d.kind() + ", " +
         (d.kind() == "modbus" ? "profile " : "codec ") + d.profile() + ")\n";
  if (d.kind() == "modbus") {
    out += label("Where      ") + "  bus " + d.bus() + " (" + d.transport() + "), unit " + std::to_string(d.unit_id()) +
           ", every " + interval(d.poll_interval_ms()) + "\n";
    out +=
        label("State      ") + "  " + stateLine(o, h, now) + " · RTT " + (h.rtt_us() ? micros(h.rtt_us()) : "-") + "\n";
    out += label("Last good  ") + "  " + pointInTime(h.last_ok_at(), now) + "\n";
    out += label("Polls      ") + "  " + std::to_string(h.polls_ok()) + " ok, " + std::to_string(h.polls_failed()) +
           " failed, " + std::to_string(h.polls_skipped()) + " skipped · " + std::to_string(h.requests()) +
           " requests, " + std::to_string(h.timeouts()) + " timeouts, " + std::to_string(h.exceptions()) +
           " exceptions, " + std::to_string(h.bad_frames()) + " bad frames, " + std::to_string(h.answers_discarded()) +
           " discarded answers\n";
    if (h.state() == pb::DOWN && h.has_next_attempt_at()) {
      out += label("Next try   ") + "  " + pointInTime(h.next_attempt_at(), now) + " · or now: --retry\n";
    }
  } else {
    out += label("Where      ") + "  DevAddr " + d.dev_addr() + " via " + d.transport() + "\n";
    // No frame accepted since the start: no signal to show (not "RSSI 0 dBm"), only a stored counter.
    const std::string signal = h.frames_accepted() > 0
                                   ? " · RSSI " + number(h.last_rssi()) + " dBm · SNR " + number(h.last_snr()) + " dB"
                                   : "";
    out += label("State      ") + "  " + paintedState(o, h) + " · last frame " + relativeTime(h.last_ok_at(), now) +
           " · FCnt " + std::to_string(h.last_f_cnt()) + signal + "\n";
    std::string reasons;
    for (const auto& [k, v] : h.frames_rejected())
      reasons += (reasons.empty() ? "" : ", ") + k + " " + std::to_string(v);
    out += label("Frames     ") + "  " + std::to_string(h.frames_accepted()) + " accepted, " +
           std::to_string(rejectedTotal(h)) + " rejected" + (reasons.empty() ? "" : " (" + reasons + ")") + "\n";
    out += loraDeviceHints(o, h, now);
  }
  out += label("Last error ") + "  " + lastErrorLine(o, h, now) + "\n";
  if (d.latest_size() == 0) {
    out += label("Latest     ") + "  no reading since citygated started (or since the last configuration change)\n";
  } else {
    const auto& r = d.latest(d.latest_size() - 1);
    out += label("Latest     ") + "  observed " + relativeTime(r.observed_at(), now) + " (" +
           clockTime(r.observed_at()) + "), seq " + std::to_string(d.latest(0).seq()) +
           (d.latest_size() > 1 ? ".." + std::to_string(r.seq()) : "") + "\n";
    if (d.stale()) {
      out += label("           ") + "  " +
             o.paint(h.state() == pb::DOWN ? "stale: the device is DOWN; these are its last values"
                                           : "stale: no newer reading for two poll intervals",
                     Colour::Yellow) +
             "\n";
    }
    out += "\n";
    Table t({"FIELD", "VALUE", "UNIT", "QUALITY"});
    for (const auto& reading : d.latest()) {
      for (auto& row : observationRows(reading)) {
        const auto q = row[3];
        if (d.stale()) {
          row[3] = o.paint(q + ", stale", Colour::Yellow);  // its quality when read, not now
        } else {
          row[3] = o.paint(q, q == "GOOD" ? Colour::Green : q == "BAD" ? Colour::Red : Colour::Yellow);
        }
        t.add(std::move(row));
      }
    }
    out += t.render(o);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

// ---- tail -------------------------------------------------------------------------------------------

int cmdTail(const Ctx& ctx, const Args& a) {
  std::optional<std::uint32_t> limit;
  if (a.has("count")) {
    limit = parseUint(a.value("count"), 1000000000);
    if (!limit || *limit == 0) return usageError(ctx, "tail", "--count wants a positive number");
  }
  // `tail ID` and `tail --device ID` alike (not both).
  if (a.positional.size() > 1 && a.has("device"))
    return usageError(ctx, "tail", "give the device once: ID or --device ID");
  const std::string device = a.positional.size() > 1 ? a.positional[1] : a.value("device");
  Client client(ctx.socket);
  pb::ControlRequest req;
  req.mutable_tail()->set_device_id(device);
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, client, req, resp, kReplyTimeout); rc != 0) return rc;
  if (ctx.stderrTty && !ctx.json) {
    const std::string what = device.empty() ? "all devices" : "device " + device;
    std::fprintf(stderr, "%s\n",
                 ctx.err.paint("waiting for readings from " + what + " (Ctrl-C to stop)", Colour::Dim).c_str());
  }
  std::uint32_t seen = 0;
  for (;;) {
    ClientError err;
    if (!client.receive(resp, std::chrono::milliseconds(0), err)) {
      if (err.exitCode == kExitInterrupted) return 0;  // Ctrl-C: the end the technician asked for
      return fail(ctx, err.exitCode, err.message);
    }
    if (resp.has_error() && resp.error().code() != pb::ControlError::CODE_UNSPECIFIED) return reportError(ctx, resp);
    if (!resp.has_tail() || !resp.tail().has_reading()) continue;
    const auto& r = resp.tail().reading();
    if (ctx.json) {
      std::printf("%s\n", toJson(r, false).c_str());
    } else {
      const Colour qc = r.quality() == pb::GOOD ? Colour::Green : r.quality() == pb::BAD ? Colour::Red : Colour::Yellow;
      std::printf("%s  %s  %s  %s  %s\n", clockTime(r.observed_at()).c_str(),
                  ctx.out.paint("#" + std::to_string(r.seq()), Colour::Dim).c_str(),
                  ctx.out.paint(r.sensor_id(), Colour::Cyan).c_str(),
                  ctx.out.paint(qualityName(r.quality()), qc).c_str(), observationSummary(r).c_str());
    }
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) return 0;  // the reader went away (`tail | head`): done
    if (limit && ++seen >= *limit) return 0;
  }
}

// ---- config ----------------------------------------------------------------------------------------

int cmdConfigValidate(const Ctx& ctx, const Args& a) {
  if (a.positional.size() != 3) return usageError(ctx, "config validate", "config validate wants one FILE");
  const std::string& path = a.positional[2];
  config::Diagnostics diags;
  auto cfg = app::validateFile(path, diags);
  std::size_t buses = 0;
  std::size_t devices = 0;
  std::size_t lora = 0;
  bool hasLora = false;
  for (const auto& s : cfg ? cfg->sources : sources::SpecList{}) {
    if (s->kind == "modbus") {
      ++buses;
      devices += s->devices.size();
    } else if (s->kind == "lora") {
      hasLora = true;
      lora += s->devices.size();
    }
  }
  // Its serial ports, as `config diff` and `config apply` check them (the same diagnostic).
  config::Diagnostics ports;
  if (cfg && !a.has("no-port-check")) app::checkPorts(nullptr, *cfg, nullptr, config::ReadPolicy::any(), ports);
  if (ctx.json) {
    std::string out = "{\"file\":" + jsonString(path) + ",\"valid\":" + (cfg ? "true" : "false") + ",\"diagnostics\":[";
    for (std::size_t i = 0; i < diags.items().size(); ++i) out += (i ? "," : "") + jsonString(diags.items()[i].str());
    out += "],\"ports\":[";
    for (std::size_t i = 0; i < ports.items().size(); ++i) out += (i ? "," : "") + jsonString(ports.items()[i].str());
    out += "],\"buses\":" + std::to_string(buses) + ",\"modbus_devices\":" + std::to_string(devices) +
           ",\"lora_devices\":" + std::to_string(lora) + "}";
    std::printf("%s\n", out.c_str());
  } else {
    for (const auto& d : diags.items()) std::fprintf(stderr, "%s\n", d.str().c_str());
    for (const auto& d : ports.items()) std::fprintf(stderr, "%s\n", d.str().c_str());
  }
  if (!cfg) {
    if (!ctx.json) std::fprintf(stderr, "%s: %zu error(s)\n", path.c_str(), diags.size());
    return kExitConfig;
  }
  if (!ports.empty()) {
    if (!ctx.json) {
      std::fprintf(stderr,
                   "%s: valid, but config diff and config apply refuse a port\n"
                   "that does not open (at start-up its bus retries);\n"
                   "--no-port-check checks the file alone\n",
                   path.c_str());
    }
    return kExitFailed;
  }
  if (!ctx.json) {
    std::printf("%s: %s (%zu bus(es), %zu Modbus device(s), %s)\n", path.c_str(),
                ctx.out.paint("OK", Colour::Green).c_str(), buses, devices,
                hasLora ? ("LoRa: " + std::to_string(lora) + " device(s)").c_str() : "no LoRa");
  }
  return 0;
}

int cmdConfigShow(const Ctx& ctx, const Args& a) {
  if (a.positional.size() != 2) return usageError(ctx, "config show", "config show takes no operands");
  pb::ControlRequest req;
  req.mutable_config_show();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (ctx.json) {
    printJson(resp.config_show());
    return 0;
  }
  const auto& s = resp.config_show();
  if (s.config_file().state() != pb::ConfigFileStatus::SAME && !s.config_file().path().empty()) {
    // On stderr: stdout stays a text that `config apply` takes back.
    std::fprintf(stderr, "%s %s: %s (a SIGHUP or restart loads the file)\n",
                 ctx.err.paint("note:", Colour::Yellow).c_str(), s.config_file().path().c_str(),
                 configFileNote(s.config_file()).c_str());
  }
  if (ctx.stdoutTty) {
    std::printf("%s\n", ctx.out
                            .paint("# " + s.path() + " · generation " + std::to_string(s.generation()) + " · loaded " +
                                       relativeTime(s.loaded_at(), Clock::now()) + " · secrets redacted",
                                   Colour::Dim)
                            .c_str());
  }
  // The file as it is, never wrapped: it is meant to be saved and applied back.
  writeUnwrapped(s.text());
  if (!s.text().empty() && s.text().back() != '\n') writeUnwrapped("\n");
  return 0;
}

int cmdConfigDiff(const Ctx& ctx, const Args& a) {
  if (a.positional.size() != 3) return usageError(ctx, "config diff", "config diff wants one FILE");
  const std::string path = resolvedPath(a.positional[2]);
  std::string text;
  if (int rc = readConfigText(ctx, path, text); rc != 0) return rc;
  pb::ControlRequest req;
  req.mutable_config_diff()->set_path(path);
  req.mutable_config_diff()->set_text(text);
  pb::ControlResponse resp;
  const int rc = roundTrip(ctx, req, resp, kApplyTimeout);
  // RESTART_REQUIRED / APPLY_FAILED still carry the diff and the plan.
  if (!resp.has_config_diff()) return rc;
  const auto& d = resp.config_diff();
  if (ctx.json) {
    if (rc == 0) printJson(d);
    return rc;
  }
  if (d.diff().empty()) {
    std::printf("no differences: %s is the running configuration\n", path.c_str());
  } else {
    std::istringstream in(d.diff());
    std::string line;
    while (std::getline(in, line)) {
      Colour c = Colour::None;
      if (line.rfind("+++", 0) == 0 || line.rfind("---", 0) == 0) {
        c = Colour::Bold;
      } else if (!line.empty() && line[0] == '+') {
        c = Colour::Green;
      } else if (!line.empty() && line[0] == '-') {
        c = Colour::Red;
      } else if (line.rfind("@@", 0) == 0) {
        c = Colour::Cyan;
      }
      std::printf("%s\n", ctx.out.paint(line, c).c_str());
    }
  }
  const auto& p = d.plan();
  std::printf("\n%s\n", ctx.out.paint("config apply would:", Colour::Bold).c_str());
  std::printf("  start    %s\n  restart  %s\n  stop     %s\n  keep     %s\n  change   %s\n", sources(p.added()).c_str(),
              sources(p.changed()).c_str(), sources(p.removed()).c_str(), sources(p.unchanged()).c_str(),
              joined(p.live()).c_str());
  for (const auto& r : p.refused()) std::printf("  %s %s\n", ctx.out.paint("refuse", Colour::Red).c_str(), r.c_str());
  return rc;
}

int cmdConfigApply(const Ctx& ctx, const Args& a) {
  if (a.positional.size() != 3) return usageError(ctx, "config apply", "config apply wants one FILE");
  if (a.has("save") && a.has("runtime-only")) {
    return usageError(ctx, "config apply", "--save and --runtime-only exclude each other");
  }
  const std::string path = resolvedPath(a.positional[2]);
  std::string text;
  if (int rc = readConfigText(ctx, path, text); rc != 0) return rc;
  pb::ControlRequest req;
  req.mutable_config_apply()->set_path(path);
  req.mutable_config_apply()->set_text(text);
  if (a.has("save")) req.mutable_config_apply()->set_persist(pb::ConfigApplyRequest::SAVE);
  if (a.has("runtime-only")) req.mutable_config_apply()->set_persist(pb::ConfigApplyRequest::RUNTIME_ONLY);
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kApplyTimeout); rc != 0) return rc;
  const auto& r = resp.config_apply();
  if (ctx.json) {
    printJson(r);
    return r.save_error().empty() ? 0 : kExitFailed;
  }
  std::printf("%s configuration %llu from %s\n", ctx.out.paint("applied", Colour::Green).c_str(),
              static_cast<unsigned long long>(r.generation()), path.c_str());
  std::printf("  started    %s\n  restarted  %s\n  stopped    %s\n  untouched  %s\n  changed    %s\n",
              sources(r.added()).c_str(), sources(r.changed()).c_str(), sources(r.removed()).c_str(),
              sources(r.unchanged()).c_str(), joined(r.live()).c_str());
  std::printf("readings continue at seq %llu; spool and MQTT session kept\n",
              static_cast<unsigned long long>(r.next_seq()));
  if (r.secrets_kept() > 0) {
    std::printf("%u <redacted> secret(s): the running values kept\n", static_cast<unsigned>(r.secrets_kept()));
  }
  if (!r.save_error().empty()) {
    return fail(ctx, kExitFailed,
                "applied, but NOT saved: " + r.save_error() + "; a SIGHUP or restart loads " + r.config_file());
  }
  if (r.saved()) {
    std::printf("saved to %s\n", r.config_file().c_str());
    if (!r.backup().empty()) std::printf("previous file kept as %s\n", r.backup().c_str());
  } else {
    std::printf("%s (--runtime-only): a SIGHUP or restart brings back\n  %s\n",
                ctx.out.paint("not saved", Colour::Yellow).c_str(), r.config_file().c_str());
  }
  return 0;
}

// ---- lora, spool, log level ----------------------------------------------------------------------

int cmdLoraDevices(const Ctx& ctx, const Args&) {
  pb::ControlRequest req;
  req.mutable_lora_devices();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  const auto& l = resp.lora_devices();
  if (ctx.json) {
    printJson(l);
    return 0;
  }
  if (l.bind().empty()) {
    std::printf("LoRa is not configured (no lora { } block in the running configuration)\n");
    return 0;
  }
  const auto now = Clock::now();
  std::string out = ctx.out.paint("Packet forwarder", Colour::Bold) + "  " + l.bind() + "/udp · " +
                    std::to_string(l.lora().datagrams()) + " datagrams · " +
                    std::to_string(l.lora().frames_accepted()) + " frames accepted · " +
                    std::to_string(l.lora().duplicates()) + " duplicates\n";
  for (const auto& c : l.lora().concentrators()) {
    out += ctx.out.paint("Concentrator    ", Colour::Bold) + "  " + c.gateway_eui() + " · last seen " +
           relativeTime(c.last_seen(), now) + " · " + std::to_string(c.rxpk()) + " packets\n";
  }
  std::string reasons;
  for (const auto& [k, v] : l.lora().rejected()) reasons += (reasons.empty() ? "" : ", ") + k + " " + std::to_string(v);
  if (!reasons.empty()) out += ctx.out.paint("Rejected        ", Colour::Bold) + "  " + reasons + "\n";
  if (l.lora().has_downlink()) {
    const auto& d = l.lora().downlink();
    std::uint64_t dropped = 0;
    std::string why;
    for (const auto& [k, v] : d.dropped()) {
      dropped += v;
      why += (why.empty() ? "" : ", ") + k + " " + std::to_string(v);
    }
    out += ctx.out.paint("Downlinks       ", Colour::Bold) + "  " + std::to_string(d.pull_resp_sent()) + " sent (RX1 " +
           std::to_string(d.rx1()) + ", RX2 " + std::to_string(d.rx2()) + ", " + std::to_string(d.retried_rx2()) +
           " retried in RX2) · " + std::to_string(d.acks()) + " ACKs · " + std::to_string(dropped) + " dropped" +
           (why.empty() ? "" : " (" + why + ")") + "\n";
  }
  if (l.lora().heard_dev_addrs() > 0) {
    out += ctx.out.paint("Not configured  ", Colour::Bold) + "  " + std::to_string(l.lora().heard_dev_addrs()) +
           " DevAddr(s) heard: citygatectl lora heard\n";
  }
  out += "\n";
  Table t({"DEVICE", "DEVADDR", "CODEC", "STATE", "LAST FRAME", "FCNT", "RSSI", "SNR", "ACCEPTED", "REJECTED"});
  t.dropWhenNarrow({"CODEC", "SNR", "FCNT", "ACCEPTED", "LAST FRAME"});
  for (const auto& d : l.devices()) {
    const auto& h = d.health();
    std::string rej = std::to_string(rejectedTotal(h));
    std::string why;
    for (const auto& [k, v] : h.frames_rejected()) why += (why.empty() ? "" : ", ") + k + " " + std::to_string(v);
    if (!why.empty()) rej += " (" + why + ")";
    const bool heard = h.frames_accepted() > 0;
    t.add({d.id(), d.dev_addr(), d.profile(), paintedState(ctx.out, h), relativeTime(h.last_ok_at(), now),
           heard ? std::to_string(h.last_f_cnt()) : "-", heard ? number(h.last_rssi()) + " dBm" : "-",
           heard ? number(h.last_snr()) + " dB" : "-", std::to_string(h.frames_accepted()), rej});
  }
  out += t.empty() ? "no LoRa devices configured\n" : t.render(ctx.out);
  std::fputs(out.c_str(), stdout);
  return 0;
}

int cmdLoraHeard(const Ctx& ctx, const Args&) {
  pb::ControlRequest req;
  req.mutable_lora_heard();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (ctx.json) {
    printJson(resp.lora_heard());
    return 0;
  }
  std::fputs(loraHeardText(resp.lora_heard(), Clock::now(), ctx.out).c_str(), stdout);
  return 0;
}

int cmdLoraDevStatus(const Ctx& ctx, const Args& a) {
  if (a.positional.size() != 3) return usageError(ctx, "lora devstatus", "lora devstatus wants one DEVICE");
  pb::ControlRequest req;
  req.mutable_lora_dev_status()->set_device(a.positional[2]);
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (ctx.json) {
    printJson(resp.lora_dev_status());
    return 0;
  }
  std::printf(
      "DevStatusReq queued for %s: it goes out after the device's next uplink.\n"
      "Its answer (battery, margin): citygatectl device %s\n",
      a.positional[2].c_str(), a.positional[2].c_str());
  return 0;
}

int cmdSpool(const Ctx& ctx, const Args&) {
  pb::ControlRequest req;
  req.mutable_spool();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  const auto& s = resp.spool();
  if (ctx.json) {
    printJson(s);
    return 0;
  }
  const auto& sp = s.spool();
  auto row = [&](const std::string& l, const std::string& v) {
    std::printf("%s  %s\n", ctx.out.paint(l, Colour::Bold).c_str(), v.c_str());
  };
  row("Spool        ", s.memory() ? "in memory (spool.memory)" : s.dir());
  if (sp.state() == pb::SPOOL_UNAVAILABLE) {
    row("State        ", ctx.out.paint("UNAVAILABLE: " + sp.last_error(), Colour::Red));
  } else if (sp.state() == pb::SPOOL_FAILING) {
    row("State        ", ctx.out.paint("FAILING: " + sp.last_error(), Colour::Red) + " · " + std::to_string(sp.held()) +
                             " reading(s) held in memory");
  } else {
    row("State        ", "ok");
  }
  const double pct = sp.max_bytes() ? 100.0 * static_cast<double>(sp.bytes()) / static_cast<double>(sp.max_bytes()) : 0;
  row("Depth        ", bytes(sp.bytes()) + " of " + bytes(sp.max_bytes()) + " (" + percent(pct) + ")");
  row("Readings     ", std::to_string(sp.readings()) + " waiting for the broker");
  row("Oldest seq   ", sp.readings() ? std::to_string(sp.oldest_seq()) : "-");
  row("Next seq     ", std::to_string(sp.next_seq()));
  row("Dropped      ",
      sp.dropped() ? ctx.out.paint(std::to_string(sp.dropped()) + " (spool was full)", Colour::Red) : "0");
  row("Replayed     ", std::to_string(sp.replayed()));
  if (sp.ack_driven()) {
    row("Durability   ",
        std::string(sp.syncing() ? ctx.out.paint("syncing (broker slow/away)", Colour::Yellow) : "ack-driven") + " · " +
            std::to_string(sp.ram_readings()) + " in RAM · " + std::to_string(sp.moved_to_storage()) +
            " moved to storage");
  } else if (!s.memory()) {
    row("Durability   ", "strict (synced before it is published)");
  }
  row("Written      ", bytes(sp.bytes_written()) + " since start");
  row("Blocked      ", sp.blocked() ? ctx.out.paint("yes: sources paused (BLOCK_SOURCES)", Colour::Yellow) : "no");
  if (sp.corrupt_records()) {
    row("Corrupt      ", std::to_string(sp.corrupt_records()) + " damaged stretch(es) or file(s), " +
                             std::to_string(sp.corrupt_readings()) + " reading(s) lost to damage");
  }
  if (sp.not_stored())
    row("Not stored   ", ctx.out.paint(std::to_string(sp.not_stored()) + " (logged with their seqs)", Colour::Red));
  if (sp.unnumbered()) {
    row("Unnumbered   ",
        ctx.out.paint(std::to_string(sp.unnumbered()) + " (no seq reservation could be saved)", Colour::Red));
  }
  if (sp.write_errors()) row("Write errors ", std::to_string(sp.write_errors()));
  if (sp.rejected()) row("Rejected     ", std::to_string(sp.rejected()) + " reading(s) set aside (rejected.cgs)");
  // One line per output when there is more than one, or when one has dead letters.
  for (const auto& k : sp.sinks()) {
    if (sp.sinks_size() < 2 && !k.rejected_batches()) continue;
    std::string line =
        std::string(k.ready() ? "linked" : "waiting") + " · delivered to seq " + std::to_string(k.delivered_seq());
    if (k.rejected_batches())
      line += " · " + std::to_string(k.rejected_readings()) + " rejected in " + std::to_string(k.rejected_batches()) +
              " batch(es)";
    row("Sink " + k.name() + std::string(k.name().size() < 8 ? 8 - k.name().size() : 0, ' '), line);
  }
  return 0;
}

int cmdLogLevel(const Ctx& ctx, const Args& a) {
  if (a.positional.size() > 2) return usageError(ctx, "log-level", "log-level wants at most one LEVEL");
  pb::ControlRequest req;
  auto* l = req.mutable_log_level();
  if (a.positional.size() == 2) l->set_level(a.positional[1]);
  l->set_logger(a.value("logger"));
  if (!l->level().empty()) {
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "warning", "error", "critical", "off"};
    if (!levels.contains(l->level())) {
      return usageError(ctx, "log-level",
                        "unknown level '" + l->level() + "' (trace, debug, info, warn, error, critical, off)");
    }
  }
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (ctx.json) {
    printJson(resp.log_level());
    return 0;
  }
  if (l->level().empty()) {
    // The gateway-wide level, then each logger's level in force (one set with --logger differs).
    std::printf("log level: %s\n", resp.log_level().level().c_str());
    Table t({"LOGGER", "LEVEL"});
    for (const auto& name : resp.log_level().loggers()) {
      const auto it = resp.log_level().levels().find(name);
      const std::string level = it == resp.log_level().levels().end() ? resp.log_level().level() : it->second;
      t.add({name, level == resp.log_level().level() ? level : ctx.out.paint(level, Colour::Bold)});
    }
    std::fputs(t.render(ctx.out).c_str(), stdout);
  } else {
    std::printf("log level set to %s%s\n", resp.log_level().level().c_str(),
                l->logger().empty() ? " (all loggers)" : (" for " + l->logger()).c_str());
  }
  return 0;
}

}  // namespace citygate::cli
