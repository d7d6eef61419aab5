// citygatectl: what changed when, and "try again now": the times of state changes in `status`
// and `device ID`, the bus lines, every part of a multi-part device in `devices`, and the commands
// `device ID --retry` and `mqtt reconnect`.
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>

#include "cli/cli.hpp"

namespace citygate::cli {

namespace {

using Clock = std::chrono::system_clock;
constexpr std::chrono::seconds kReplyTimeout{15};
// After `--retry` or `mqtt reconnect`: how long citygatectl watches for the outcome (a probe is
// one request and its timeout; a connect is bounded by the MQTT connect timeout, 10 s).
constexpr std::chrono::seconds kRetryWatch{6};
constexpr std::chrono::seconds kReconnectWatch{12};
constexpr std::chrono::milliseconds kWatchStep{100};
constexpr std::size_t kPartWidth = 76;  // a part's line after its 4-space indent

// One device by id, or an exit code.
int fetchDevice(const Ctx& ctx, const std::string& id, pb::DeviceInfo& out) {
  pb::ControlRequest req;
  req.mutable_devices()->set_device_id(id);
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  if (resp.devices().devices_size() != 1) return fail(ctx, kExitNotFound, "no device '" + id + "'");
  out = resp.devices().devices(0);
  return 0;
}

int fetchStatus(const Ctx& ctx, pb::StatusResponse& out) {
  pb::ControlRequest req;
  req.mutable_status();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  out = resp.status();
  return 0;
}

}  // namespace

// ---- times and lines for status, device, devices ---------------------------------------------

std::string stateLine(const Style& o, const pb::DeviceHealth& h, Clock::time_point now) {
  std::string s = o.paint(stateName(h.state()), stateColour(h.state()));
  if (isSet(h.state_since())) s += " since " + stateSince(h.state_since(), now);
  return s;
}

std::string stateCell(const Style& o, const pb::DeviceHealth& h) {
  std::string s = o.paint(stateName(h.state()), stateColour(h.state()));
  // The time of a state that needs attention, as the platform's alarm shows it.
  if (h.state() != pb::OK && isSet(h.state_since())) s += " " + localClock(h.state_since(), Clock::now());
  return s;
}

std::string errorCell(const pb::DeviceHealth& h) {
  // A recovered device's error is history (`device ID` shows it with its time), not its state.
  if (h.last_error().empty() || h.state() == pb::OK) return "-";
  return h.last_error();
}

std::string lastErrorLine(const Style& o, const pb::DeviceHealth& h, Clock::time_point now) {
  if (h.last_error().empty()) return "-";
  std::string when = isSet(h.last_error_at()) ? pointInTime(h.last_error_at(), now) : std::string();
  if (h.state() == pb::OK) {
    return o.paint("recovered · was: " + h.last_error() + (when.empty() ? "" : ", " + when), Colour::Dim);
  }
  return h.last_error() + (when.empty() ? "" : " · " + when);
}

std::string mqttLines(const Style& o, const pb::StatusResponse& s, Clock::time_point now) {
  const auto& m = s.health().mqtt();
  const std::string pad(10, ' ');
  std::string out;
  if (m.connected()) {
    out += o.paint("connected", Colour::Green) + " to " + (m.broker().empty() ? s.mqtt_uri() : m.broker());
    if (isSet(m.connected_since())) out += " since " + stateSince(m.connected_since(), now);
  } else {
    out += o.paint("disconnected", Colour::Red) + " from " + s.mqtt_uri();
    if (isSet(m.disconnected_since())) out += " since " + stateSince(m.disconnected_since(), now);
    out += "\n" + pad;
    if (m.link_state() == "connecting") {
      out += "connecting now";
    } else if (isSet(m.next_attempt_at())) {
      out += "next attempt " + pointInTime(m.next_attempt_at(), now);
    } else {
      out += "no attempt pending";
    }
    out += " · now: mqtt reconnect";
    if (!m.last_error().empty()) out += "\n" + pad + o.paint(m.last_error(), Colour::Red);
  }
  out += "\n" + pad + std::to_string(m.published()) + " published, " + std::to_string(m.acked()) + " acked, " +
         std::to_string(m.reconnects()) + " reconnects";
  out += "\n" + pad + "last publish " + (isSet(m.last_publish_at()) ? pointInTime(m.last_publish_at(), now) : "never") +
         " · last ack " + (isSet(m.last_ack_at()) ? pointInTime(m.last_ack_at(), now) : "never");
  return out + "\n";
}

std::string busLines(const Style& o, const pb::GatewayHealth& h, Clock::time_point now) {
  std::string out;
  for (const auto& b : h.buses()) {
    std::string line = o.paint("Bus     ", Colour::Bold) + "  " + b.name() + " (" + b.transport() + ") ";
    if (b.state() == pb::BUS_DOWN) {
      line += o.paint("DOWN", Colour::Red) + " since " + stateSince(b.since(), now) + "\n          " +
              o.paint(b.last_error(), Colour::Red);
    } else if (b.state() == pb::BUS_UP) {
      line += o.paint("up", Colour::Green);
    } else {
      line += "not tried yet";
    }
    out += line + "\n";
  }
  return out;
}

std::string valuesCell(const pb::DeviceInfo& d) {
  if (d.latest_size() == 0 && !d.has_last_reading()) return "-";
  std::string v = d.latest_size() > 1 ? std::to_string(d.latest_size()) + " parts:"
                                      : observationSummary(d.latest_size() == 1 ? d.latest(0) : d.last_reading());
  return d.stale() ? "(stale) " + v : v;
}

std::string partLines(const Style& o, const pb::DeviceInfo& d) {
  if (d.latest_size() < 2) return {};
  std::string out;
  for (const auto& r : d.latest()) {
    const std::string line = truncate(observationSummary(r), kPartWidth);
    out += "    " + (d.stale() ? o.paint(line, Colour::Dim) : line) + "\n";
  }
  return out;
}

std::string withParts(const std::string& table, const std::vector<std::string>& parts) {
  std::istringstream in(table);
  std::string line;
  std::string out;
  std::size_t row = 0;  // 0: the header
  while (std::getline(in, line)) {
    out += line + "\n";
    if (row > 0 && row - 1 < parts.size()) out += parts[row - 1];
    ++row;
  }
  return out;
}

// ---- device ID --retry -------------------------------------------------------------------------

int cmdDeviceRetry(const Ctx& ctx, const std::string& id) {
  pb::DeviceInfo before;
  if (int rc = fetchDevice(ctx, id, before); rc != 0) return rc;
  pb::ControlRequest req;
  req.mutable_device_retry()->set_device_id(id);
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  const auto& r = resp.device_retry();
  if (r.outcome() == pb::DeviceRetryResponse::NOT_IN_BACKOFF) {
    if (ctx.json) {
      std::printf("{\"retry\": %s, \"device\": null}\n", toJson(r, false).c_str());
    } else {
      std::printf("%s is %s, not in a backoff: it is polled every %u ms anyway\n", id.c_str(),
                  stateName(r.state()).c_str(), r.poll_interval_ms());
    }
    return 0;
  }
  if (!ctx.json) {
    std::printf("%s: backoff ended; trying it now%s\n", id.c_str(),
                r.outcome() == pb::DeviceRetryResponse::ALREADY_PROBING ? " (a try was already under way)" : "");
    std::fflush(stdout);
  }
  // Watch the outcome: the probe is one request with the device's timeout; a failed one counts.
  const auto deadline = std::chrono::steady_clock::now() + kRetryWatch;
  pb::DeviceInfo d;
  for (;;) {
    if (int rc = fetchDevice(ctx, id, d); rc != 0) return rc;
    const bool answered = d.health().state() != pb::DOWN;
    const bool failed = d.health().polls_failed() > before.health().polls_failed();
    if (answered || failed || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kWatchStep);  // polling the daemon for the result, with a deadline
  }
  const auto now = Clock::now();
  const bool ok = d.health().state() != pb::DOWN;
  if (ctx.json) {  // what was asked, and the device as it is now
    std::printf("{\"retry\": %s, \"device\": %s}\n", toJson(r, false).c_str(), toJson(d, false).c_str());
  } else if (ok) {
    std::printf("%s: %s\n", id.c_str(), stateLine(ctx.out, d.health(), now).c_str());
  } else {
    std::printf("%s: still %s · %s\n", id.c_str(), ctx.out.paint("DOWN", Colour::Red).c_str(),
                d.health().last_error().c_str());
    if (isSet(d.health().next_attempt_at())) {
      std::printf("next try %s\n", pointInTime(d.health().next_attempt_at(), now).c_str());
    }
  }
  return ok ? 0 : kExitFailed;
}

// ---- mqtt reconnect ----------------------------------------------------------------------------

int cmdMqttReconnect(const Ctx& ctx, const Args&) {
  pb::ControlRequest req;
  req.mutable_mqtt_reconnect();
  pb::ControlResponse resp;
  if (int rc = roundTrip(ctx, req, resp, kReplyTimeout); rc != 0) return rc;
  const auto& r = resp.mqtt_reconnect();
  if (!ctx.json) {
    const char* what = r.outcome() == pb::MqttReconnectResponse::RECONNECTING ? "closing the link, then connecting"
                       : r.outcome() == pb::MqttReconnectResponse::CONNECTING ? "connecting now"
                                                                              : "a connect is already under way";
    const std::string& was = r.link_state_before();
    std::printf("MQTT was %s: %s\n", was == "backoff" ? "waiting to reconnect" : was.c_str(), what);
    std::fflush(stdout);
  }
  const auto deadline = std::chrono::steady_clock::now() + kReconnectWatch;
  pb::StatusResponse s;
  // A link that was up goes down first: wait for the reconnect to show (reconnects grows) or, when
  // it was down, for connected.
  const bool wasUp = r.outcome() == pb::MqttReconnectResponse::RECONNECTING;
  std::uint64_t reconnects = 0;
  bool first = true;
  for (;;) {
    if (int rc = fetchStatus(ctx, s); rc != 0) return rc;
    const auto& m = s.health().mqtt();
    if (first) reconnects = m.reconnects() - (wasUp && m.connected() ? 1 : 0);
    first = false;
    const bool done = m.connected() && (!wasUp || m.reconnects() > reconnects);
    if (done || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kWatchStep);  // polling the daemon for the result, with a deadline
  }
  const auto& m = s.health().mqtt();
  if (ctx.json) {
    std::printf("%s\n", toJson(m, true).c_str());
  } else {
    std::fputs((ctx.out.paint("MQTT    ", Colour::Bold) + "  " + mqttLines(ctx.out, s, Clock::now())).c_str(), stdout);
  }
  return m.connected() ? 0 : kExitFailed;
}

}  // namespace citygate::cli
