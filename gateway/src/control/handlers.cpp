#include "control/handlers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <climits>
#include <cstdlib>

#include "config/config_file.hpp"
#include "config/files.hpp"
#include "control/config_text.hpp"
#include "core/suggest.hpp"
#include "core/time.hpp"
#include "platform/logging.hpp"

namespace citygate::control {

namespace pb = citygate::v1;
using Kind = ApplyOutcome::Kind;

namespace {

constexpr const char* kLoggers[] = {"main", "modbus", "lora", "spool", "mqtt", "control"};

// Latest values older than this many poll intervals are stale (a poll may fail once or twice
// before the device is DOWN).
constexpr std::int64_t kStaleIntervals = 2;

// The latest values no longer say how things are: the device is DOWN, or they are old.
bool staleValues(const pb::DeviceInfo& d, WallTime now) {
  if (!d.has_last_reading()) return false;
  if (d.health().state() == pb::DOWN) return true;
  if (d.poll_interval_ms() == 0) return false;  // heard, not polled (LoRaWAN): no expected pace
  return now - fromTimestamp(d.last_reading().observed_at()) >
         std::chrono::milliseconds(d.poll_interval_ms()) * kStaleIntervals;
}

// The --config file against the running text, read now (readSmallFile: regular files only,
// without blocking, at most 1 MiB).
void fillConfigFile(const ControlTarget& gateway, pb::ConfigFileStatus& out) {
  out.set_path(gateway.configFile());
  const auto check = config::compareConfigFile(gateway.configFile(), gateway.loadedConfig().text);
  switch (check.state) {
    case config::FileState::Same:
      out.set_state(pb::ConfigFileStatus::SAME);
      break;
    case config::FileState::Differs:
      out.set_state(pb::ConfigFileStatus::DIFFERS);
      break;
    case config::FileState::Missing:
      out.set_state(pb::ConfigFileStatus::MISSING);
      break;
    case config::FileState::Unreadable:
      out.set_state(pb::ConfigFileStatus::UNREADABLE);
      break;
  }
  out.set_error(check.error);
}

// Whether `path` (absolute: citygatectl resolves it) names the daemon's own configuration file.
// Only the daemon's own path is asked of the file system (its real path, through links).
bool isConfigFile(const ControlTarget& gateway, const std::string& path) {
  const std::string& file = gateway.configFile();
  if (path == file || config::absolutePath(path) == file) return true;
  char real[PATH_MAX];
  return ::realpath(file.c_str(), real) != nullptr && path == real;
}

const pb::DeviceHealth* findHealth(const pb::GatewayHealth& h, const std::string& id) {
  for (const auto& d : h.devices()) {
    if (d.sensor_id() == id) return &d;
  }
  return nullptr;
}

}  // namespace

Handlers::Handlers(boost::asio::any_io_executor executor, std::shared_ptr<ControlTarget> gateway,
                   std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)), gateway_(std::move(gateway)), log_(std::move(log)) {}

void Handlers::install() {
  std::weak_ptr<Handlers> weak = weak_from_this();
  gateway_->setReadingTap([weak](const pb::Reading& r, std::string_view bytes) {
    if (auto self = weak.lock()) self->onReading(r, bytes);
  });
}

void Handlers::handle(const pb::ControlRequest& request, Reply reply) {
  if (gateway_->stopping()) {
    reply.error(pb::ControlError::UNAVAILABLE, "citygated is stopping");
    return;
  }
  switch (request.command_case()) {
    case pb::ControlRequest::kStatus:
      return status(std::move(reply));
    case pb::ControlRequest::kDevices:
      return devices(request.devices().device_id(), std::move(reply));
    case pb::ControlRequest::kTail:
      return tail(request.tail().device_id(), std::move(reply));
    case pb::ControlRequest::kConfigShow:
      return configShow(std::move(reply));
    case pb::ControlRequest::kConfigApply:
    case pb::ControlRequest::kConfigDiff:
      return configChange(request, std::move(reply));
    case pb::ControlRequest::kModbusRead:
      return modbusRead(request.modbus_read(), std::move(reply));
    case pb::ControlRequest::kModbusScan:
      return modbusScan(request.modbus_scan(), std::move(reply));
    case pb::ControlRequest::kLoraDevices:
      return loraDevices(std::move(reply));
    case pb::ControlRequest::kLoraHeard:
      return loraHeard(std::move(reply));
    case pb::ControlRequest::kLoraDevStatus:
      return loraDevStatus(request.lora_dev_status().device(), std::move(reply));
    case pb::ControlRequest::kSpool:
      return spool(std::move(reply));
    case pb::ControlRequest::kLogLevel:
      return logLevel(request.log_level(), std::move(reply));
    case pb::ControlRequest::kDeviceRetry:
      return deviceRetry(request.device_retry().device_id(), std::move(reply));
    case pb::ControlRequest::kMqttReconnect:
      return mqttReconnect(std::move(reply));
    case pb::ControlRequest::kModbusWrite:
      return modbusWrite(request.modbus_write(), std::move(reply));
    case pb::ControlRequest::COMMAND_NOT_SET:
      break;
  }
  reply.error(pb::ControlError::BAD_REQUEST, "no command");
}

// ---- status, devices, lora devices, spool ---------------------------------------------------------

std::vector<pb::DeviceInfo> Handlers::deviceInfos(bool withLatest, const pb::GatewayHealth& health) {
  refreshKnown();
  std::vector<pb::DeviceInfo> out;
  auto fill = [&](pb::DeviceInfo& d) {
    if (const auto* h = findHealth(health, d.id())) *d.mutable_health() = *h;
    if (auto it = latest_.find(d.id()); it != latest_.end() && it->second.count > 0) {
      const Latest& l = it->second;
      d.mutable_last_reading()->ParseFromString(l.readings[l.count - 1]);
      if (withLatest) {
        for (std::size_t i = 0; i < l.count; ++i) d.add_latest()->ParseFromString(l.readings[i]);
      }
    }
  };
  std::vector<pb::DeviceInfo> listed;
  for (const auto& source : gateway_->sources()) source->listDevices(listed);
  const WallTime now = health.has_at() ? fromTimestamp(health.at()) : WallClock::now();  // the daemon's clock
  for (auto& d : listed) {
    fill(d);
    d.set_stale(staleValues(d, now));
    out.push_back(std::move(d));
  }
  return out;
}

void Handlers::status(Reply reply) {
  pb::ControlResponse r;
  auto* s = r.mutable_status();
  *s->mutable_health() = gateway_->health();
  const auto& c = gateway_->loadedConfig().config;
  auto* g = s->mutable_gateway();
  g->set_gateway_id(c.gateway_id());
  g->set_state(s->health().mqtt().connected() ? pb::ONLINE : pb::OFFLINE);
  g->set_boot_id(gateway_->bootId());
  g->set_version(gateway_->version());
  toTimestamp(gateway_->startedAt(), g->mutable_started_at());
  s->set_config_path(gateway_->loadedConfig().path);
  toTimestamp(gateway_->configLoadedAt(), s->mutable_config_loaded_at());
  s->set_config_generation(gateway_->configGeneration());
  fillConfigFile(*gateway_, *s->mutable_config_file());
  std::string uris;
  for (const auto& u : c.mqtt().uri()) uris += (uris.empty() ? "" : " ") + u;
  s->set_mqtt_uri(uris);
  for (auto& d : deviceInfos(false, s->health())) *s->add_devices() = std::move(d);
  reply.send(std::move(r));
}

void Handlers::devices(const std::string& id, Reply reply) {
  pb::ControlResponse r;
  auto* out = r.mutable_devices();
  // Every part of a multi-part device (each lane, each bay) for the list too.
  for (auto& d : deviceInfos(true, gateway_->health())) {
    if (id.empty() || d.id() == id) *out->add_devices() = std::move(d);
  }
  if (!id.empty() && out->devices_size() == 0) {
    reply.error(pb::ControlError::NOT_FOUND, unknownDevice(id));
    return;
  }
  reply.send(std::move(r));
}

void Handlers::loraDevices(Reply reply) {
  pb::ControlResponse r;
  auto* out = r.mutable_lora_devices();
  const auto health = gateway_->health();
  for (auto& d : deviceInfos(false, health)) {
    if (d.kind() != "lorawan") continue;
    // An OTAA device has no DevAddr in the config: the session's, once it joined.
    if (d.dev_addr().empty()) d.set_dev_addr(d.health().dev_addr());
    *out->add_devices() = std::move(d);
  }
  const auto& c = gateway_->loadedConfig().config;
  if (c.has_lora()) {
    *out->mutable_lora() = health.lora();
    out->set_bind(c.lora().packet_forwarder().bind() + ":" + std::to_string(c.lora().packet_forwarder().port()));
  }
  reply.send(std::move(r));
}

void Handlers::spool(Reply reply) {
  pb::ControlResponse r;
  auto* s = r.mutable_spool();
  *s->mutable_spool() = gateway_->health().spool();
  const auto& c = gateway_->loadedConfig().config;
  s->set_dir(c.spool().dir());
  s->set_memory(c.spool().memory());
  reply.send(std::move(r));
}

void Handlers::logLevel(const pb::LogLevelRequest& request, Reply reply) {
  auto& logging = gateway_->logging();
  if (!request.level().empty()) {
    // Logged while the more verbose of the two levels is in force.
    const auto before = log_->level();
    const auto after = platform::Logging::parseLevel(request.level()).value_or(before);
    auto announce = [&] {
      log_->info("log level {}{} (set by uid {} pid {})", request.level(),
                 request.logger().empty() ? "" : " for " + request.logger(), reply.peer().uid, reply.peer().pid);
    };
    const bool knownLogger = request.logger().empty() || std::find(std::begin(kLoggers), std::end(kLoggers),
                                                                   request.logger()) != std::end(kLoggers);
    if (knownLogger && after > before) announce();
    if (!knownLogger || !logging.setLevel(request.level(), request.logger())) {
      std::string known;
      for (const char* l : kLoggers) known += (known.empty() ? "" : ", ") + std::string(l);
      reply.error(pb::ControlError::NOT_FOUND, "no logger '" + request.logger() + "' (known: " + known + ")");
      return;
    }
    if (after <= before) announce();
  }
  pb::ControlResponse r;
  r.mutable_log_level()->set_level(request.logger().empty() || request.level().empty() ? logging.level()
                                                                                       : request.level());
  for (const char* l : kLoggers) {
    r.mutable_log_level()->add_loggers(l);
    (*r.mutable_log_level()->mutable_levels())[l] = logging.level(l);
  }
  reply.send(std::move(r));
}

void Handlers::mqttReconnect(Reply reply) {
  auto outcome = gateway_->reconnectMqtt();
  if (!outcome) {
    reply.error(pb::ControlError::UNAVAILABLE, "the MQTT session is not running (starting or stopping)");
    return;
  }
  log_->info("mqtt reconnect (asked by uid {} pid {}): link was {}", reply.peer().uid, reply.peer().pid,
             outcome->link_state_before());
  pb::ControlResponse r;
  *r.mutable_mqtt_reconnect() = std::move(*outcome);
  reply.send(std::move(r));
}

// ---- tail and the latest values -------------------------------------------------------------------

std::string Handlers::unknownDevice(const std::string& id) {
  refreshKnown();
  return "no device '" + id + "' in the running configuration" + core::didYouMean(id, known_);
}

bool Handlers::knownDevice(const std::string& id) {
  refreshKnown();
  return known_.contains(id);
}

void Handlers::refreshKnown() {
  // Rebuilt once per configuration; the latest values of devices that are gone are forgotten, so
  // the map stays bounded by the configuration.
  if (knownGeneration_ == gateway_->configGeneration()) return;
  knownGeneration_ = gateway_->configGeneration();
  known_.clear();
  std::vector<pb::DeviceInfo> listed;
  for (const auto& source : gateway_->sources()) source->listDevices(listed);
  for (const auto& d : listed) known_.insert(d.id());
  std::erase_if(latest_, [&](const auto& kv) { return !known_.contains(kv.first); });
}

void Handlers::tail(const std::string& id, Reply reply) {
  if (!id.empty() && !knownDevice(id)) {
    reply.error(pb::ControlError::NOT_FOUND, unknownDevice(id));
    return;
  }
  std::erase_if(tailers_, [](const Tailer& t) { return !t.reply.alive(); });
  pb::ControlResponse r;
  r.mutable_tail();  // an empty event: subscribed
  if (!reply.send(std::move(r), true, true)) return;
  tailers_.push_back(Tailer{std::move(reply), id});
}

void Handlers::onReading(const pb::Reading& reading, std::string_view bytes) {
  if (knownDevice(reading.sensor_id())) {
    Latest& l = latest_[reading.sensor_id()];
    const auto& at = reading.observed_at();
    if (l.seconds != at.seconds() || l.nanos != at.nanos()) {  // a new observation
      l.seconds = at.seconds();
      l.nanos = at.nanos();
      l.count = 0;
    }
    if (l.count == kMaxLatestPerDevice) {  // the oldest goes (a swap of strings, no copy)
      std::rotate(l.readings.begin(), l.readings.begin() + 1, l.readings.end());
      --l.count;
    }
    if (l.readings.size() == l.count) l.readings.emplace_back();
    l.readings[l.count++].assign(bytes);
  }
  if (tailers_.empty()) return;
  pb::ControlResponse event;
  // From the bytes: the message form lacks a generic observation (see Pipeline::Tap).
  event.mutable_tail()->mutable_reading()->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  std::erase_if(tailers_, [&](Tailer& t) {
    if (!t.device.empty() && t.device != reading.sensor_id()) return !t.reply.alive();
    return !t.reply.send(event, true, true);
  });
}

// ---- configuration ------------------------------------------------------------------------------

void Handlers::configShow(Reply reply) {
  const auto& cfg = gateway_->loadedConfig();
  pb::ControlResponse r;
  auto* s = r.mutable_config_show();
  s->set_text(redactSecrets(cfg.text));
  s->set_path(cfg.path);
  toTimestamp(gateway_->configLoadedAt(), s->mutable_loaded_at());
  s->set_generation(gateway_->configGeneration());
  fillConfigFile(*gateway_, *s->mutable_config_file());
  reply.send(std::move(r));
}

void Handlers::configChange(const pb::ControlRequest& request, Reply reply) {
  const bool dryRun = request.has_config_diff();
  const std::string path = dryRun ? request.config_diff().path() : request.config_apply().path();
  std::string text = dryRun ? request.config_diff().text() : request.config_apply().text();
  const std::string label = path.empty() ? "<control socket>" : path;
  // `config show` output applied back: "<redacted>" keeps the running secret at that place.
  SecretMerge merged = keepRedactedSecrets(label, text, gateway_->loadedConfig().text);
  if (!merged.errors.empty()) {
    pb::ControlResponse r;
    r.mutable_error()->set_code(pb::ControlError::INVALID_CONFIG);
    r.mutable_error()->set_message(label + ": " + std::to_string(merged.errors.size()) +
                                   " \"<redacted>\" value(s) with no running secret to keep; the running "
                                   "configuration is kept");
    for (auto& e : merged.errors) r.mutable_error()->add_diagnostics(std::move(e));
    reply.send(std::move(r));
    return;
  }
  text = std::move(merged.text);
  ConfigRequest req{dryRun ? ConfigRequest::Mode::Diff : ConfigRequest::Mode::Apply, label, merged.kept};
  if (!dryRun) {
    // Saved to the --config file with --save, or when the file applied is that file (edited in
    // place; with secrets kept, the file on disk gets them instead of "<redacted>"). Any other
    // file without --save or --runtime-only is checked like `config diff` and then refused, so the
    // technician sees its errors first and the choice last.
    const auto persist = request.config_apply().persist();
    const bool own = isConfigFile(*gateway_, path);
    if (persist == pb::ConfigApplyRequest::PERSIST_UNSPECIFIED && !own) {
      req.mode = ConfigRequest::Mode::Choose;
    } else if (persist == pb::ConfigApplyRequest::SAVE || persist == pb::ConfigApplyRequest::PERSIST_UNSPECIFIED) {
      req.mode = ConfigRequest::Mode::Save;
    }
  }
  // The running text as it is now; the diff is computed when the check comes back.
  std::string runningText = redactSecrets(gateway_->loadedConfig().text);
  std::string runningPath = gateway_->loadedConfig().path;
  if (req.mode == ConfigRequest::Mode::Apply || req.mode == ConfigRequest::Mode::Save) {
    log_->info("config apply of {} ({}) requested by uid {} pid {}", label,
               req.mode == ConfigRequest::Mode::Save ? "saved" : "runtime only", reply.peer().uid, reply.peer().pid);
  }
  auto onDone = [self = shared_from_this(), reply, req, runningText = std::move(runningText),
                 runningPath = std::move(runningPath)](ApplyOutcome o) mutable {
    self->onConfigChecked(req, runningText, runningPath, std::move(o), std::move(reply));
  };
  switch (req.mode) {
    case ConfigRequest::Mode::Save:
      return gateway_->applyAndSave(label, std::move(text), std::move(onDone));
    case ConfigRequest::Mode::Apply:
      return gateway_->applyConfig(label, std::move(text), false, std::move(onDone));
    case ConfigRequest::Mode::Diff:
    case ConfigRequest::Mode::Choose:
      return gateway_->applyConfig(label, std::move(text), true, std::move(onDone));
  }
}

void Handlers::onConfigChecked(const ConfigRequest& req, const std::string& runningText, const std::string& runningPath,
                               ApplyOutcome o, Reply reply) {
  using Mode = ConfigRequest::Mode;
  const bool dryRun = req.mode == Mode::Diff;
  const std::string& label = req.label;
  if (req.mode == Mode::Choose && o.kind == Kind::Planned) {
    const std::string& file = gateway_->configFile();
    reply.error(pb::ControlError::BAD_REQUEST, label + " is not citygated's --config file " + file +
                                                   ", so a SIGHUP or restart would undo it; nothing was changed. "
                                                   "Choose --save (apply, write it to " +
                                                   file + ", keep the old one as .bak) or --runtime-only");
    return;
  }
  pb::ControlResponse r;
  auto fillPlan = [&](auto* out) {
    for (const auto& s : o.plan.added) out->add_added(s);
    for (const auto& s : o.plan.removed) out->add_removed(s);
    for (const auto& s : o.plan.changed) out->add_changed(s);
    for (const auto& s : o.plan.unchanged) out->add_unchanged(s);
    for (const auto& s : o.plan.live) out->add_live(s);
  };
  auto setError = [&](pb::ControlError::Code code) {
    r.mutable_error()->set_code(code);
    r.mutable_error()->set_message(o.message);
    for (const auto& d : o.diagnostics) r.mutable_error()->add_diagnostics(d);
  };
  switch (o.kind) {
    case Kind::Invalid:
      setError(pb::ControlError::INVALID_CONFIG);
      break;
    case Kind::Busy:
      setError(pb::ControlError::BUSY);
      break;
    case Kind::Unavailable:
      setError(pb::ControlError::UNAVAILABLE);
      break;
    case Kind::Refused:
      setError(pb::ControlError::RESTART_REQUIRED);
      break;
    case Kind::Failed:
      setError(pb::ControlError::APPLY_FAILED);
      break;
    case Kind::Planned:
    case Kind::Applied:
      break;
  }
  const bool validated =
      o.kind == Kind::Planned || o.kind == Kind::Applied || o.kind == Kind::Refused || o.kind == Kind::Failed;
  if (dryRun && validated) {
    auto* d = r.mutable_config_diff();
    d->set_diff(unifiedDiff(runningText, redactSecrets(o.text), "running " + runningPath, "proposed " + label));
    fillPlan(d->mutable_plan());
    for (const auto& s : o.plan.refused) d->mutable_plan()->add_refused(s);
  } else if (o.kind == Kind::Applied) {
    auto* a = r.mutable_config_apply();
    fillPlan(a);
    a->set_generation(o.generation);
    a->set_next_seq(o.nextSeq);
    a->set_saved(o.saved);
    a->set_config_file(gateway_->configFile());
    a->set_backup(o.backup);
    a->set_save_error(o.saveError);
    a->set_secrets_kept(static_cast<std::uint32_t>(req.secretsKept));
  } else if (!dryRun && o.kind == Kind::Refused) {
    for (const auto& s : o.plan.refused) r.mutable_error()->add_diagnostics(s);
  }
  // Logged for an apply asked for (a refused choice of --save / --runtime-only changed nothing).
  if ((req.mode == Mode::Apply || req.mode == Mode::Save) && o.kind != Kind::Applied) {
    log_->warn("config apply of {}: {}", label, o.message);
  }
  reply.send(std::move(r));
}

}  // namespace citygate::control
