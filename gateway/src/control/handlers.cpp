#include "control/handlers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "control/config_text.hpp"
#include "core/suggest.hpp"
#include "core/time.hpp"
#include "platform/logging.hpp"

namespace citygate::control {

namespace pb = citygate::v1;
using Kind = ApplyOutcome::Kind;

namespace {

constexpr const char* kLoggers[] = {"main", "modbus", "lora", "spool", "mqtt", "control"};

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
    case pb::ControlRequest::kSpool:
      return spool(std::move(reply));
    case pb::ControlRequest::kLogLevel:
      return logLevel(request.log_level(), std::move(reply));
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
  for (auto& d : listed) {
    fill(d);
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
  s->set_mqtt_uri(c.mqtt().uri());
  for (auto& d : deviceInfos(false, s->health())) *s->add_devices() = std::move(d);
  reply.send(std::move(r));
}

void Handlers::devices(const std::string& id, Reply reply) {
  pb::ControlResponse r;
  auto* out = r.mutable_devices();
  for (auto& d : deviceInfos(!id.empty(), gateway_->health())) {
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
    if (d.kind() == "lorawan") *out->add_devices() = std::move(d);
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
  reply.send(std::move(r));
}

void Handlers::configChange(const pb::ControlRequest& request, Reply reply) {
  const bool dryRun = request.has_config_diff();
  const std::string path = dryRun ? request.config_diff().path() : request.config_apply().path();
  std::string text = dryRun ? request.config_diff().text() : request.config_apply().text();
  const std::string label = path.empty() ? "<control socket>" : path;
  // The running text as it is now; the diff is computed when the check comes back.
  std::string runningText = redactSecrets(gateway_->loadedConfig().text);
  std::string runningPath = gateway_->loadedConfig().path;
  if (!dryRun) {
    log_->info("config apply of {} requested by uid {} pid {}", label, reply.peer().uid, reply.peer().pid);
  }
  gateway_->applyConfig(
      label, std::move(text), dryRun,
      [self = shared_from_this(), reply, dryRun, runningText = std::move(runningText),
       runningPath = std::move(runningPath), label](ApplyOutcome o) mutable {
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
        } else if (!dryRun && o.kind == Kind::Refused) {
          for (const auto& s : o.plan.refused) r.mutable_error()->add_diagnostics(s);
        }
        if (!dryRun && o.kind != Kind::Applied) self->log_->warn("config apply of {}: {}", label, o.message);
        reply.send(std::move(r));
      });
}

}  // namespace citygate::control
