#include "control/handlers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>

#include "control/config_text.hpp"
#include "core/time.hpp"
#include "inputs/lora/source.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "platform/logging.hpp"

namespace citygate::control {

namespace pb = citygate::v1;
using Kind = ApplyOutcome::Kind;

namespace {

constexpr const char* kLoggers[] = {"main", "modbus", "lora", "spool", "mqtt", "control"};
// A read that never comes back (its bus was stopped by a configuration change) is answered after
// its own timeout plus this much time in the bus queue.
constexpr std::chrono::seconds kQueueAllowance{15};

std::string describeBus(const pb::ModbusBus& bus) {
  if (bus.has_tcp()) return "tcp " + bus.tcp().host() + ":" + std::to_string(bus.tcp().port());
  if (bus.has_rtu_over_tcp()) {
    return "rtu-over-tcp " + bus.rtu_over_tcp().host() + ":" + std::to_string(bus.rtu_over_tcp().port());
  }
  const auto& r = bus.rtu();
  const char parity = r.parity() == pb::SerialRtu::NONE ? 'N' : r.parity() == pb::SerialRtu::ODD ? 'O' : 'E';
  return "rtu " + r.device() + " " + std::to_string(r.baud()) + " " + std::to_string(r.data_bits()) + parity +
         std::to_string(r.stop_bits());
}

std::string readError(const modbus::ReadError& e, std::uint32_t unit, const std::string& bus,
                      std::chrono::milliseconds timeout) {
  std::string what;
  switch (e.kind) {
    case modbus::ErrorKind::Timeout:
      what = "no answer within " + std::to_string(timeout.count()) + " ms";
      break;
    case modbus::ErrorKind::Exception:
      what = "exception " + e.message;
      break;
    case modbus::ErrorKind::BadFrame:
      what = "bad answer: " + e.message;
      break;
    case modbus::ErrorKind::Connection:
      what = "link failed: " + e.message;
      break;
    case modbus::ErrorKind::None:
      what = "ok";
      break;
  }
  return "unit " + std::to_string(unit) + " on bus '" + bus + "': " + what;
}

const pb::DeviceHealth* findHealth(const pb::GatewayHealth& h, const std::string& id) {
  for (const auto& d : h.devices()) {
    if (d.sensor_id() == id) return &d;
  }
  return nullptr;
}

}  // namespace

struct Handlers::AdhocRead {
  Reply reply;
  pb::ModbusReadRequest request;
  std::chrono::milliseconds timeout{500};
  std::string transport;
  boost::asio::steady_timer guard;
  bool finished = false;
  // Set when nobody waits any more (the client went, or the guard gave up): the bus worker skips
  // the read if it has not started it.
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);

  explicit AdhocRead(boost::asio::any_io_executor ex) : guard(ex) {}
};

struct Handlers::Scan {
  Reply reply;
  std::shared_ptr<modbus::BusSource> bus;
  pb::ModbusScanRequest request;
  std::uint32_t unit = 0;
  std::uint32_t done = 0;
  std::uint32_t total = 0;
  std::chrono::milliseconds timeout{200};
  std::vector<std::uint32_t> found;
  boost::asio::steady_timer guard;
  std::uint64_t step = 0;  // the read in flight; a late answer to an older one is ignored
  bool abandoned = false;
  std::uint32_t refusals = 0;  // consecutive "queue full" answers from the bus
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);

  explicit Scan(boost::asio::any_io_executor ex) : guard(ex) {}
};

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
  const auto& cfg = gateway_->loadedConfig();
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
  for (const auto& bus : cfg.config.modbus_bus()) {
    for (const auto& dev : bus.device()) {
      pb::DeviceInfo d;
      d.set_id(dev.id());
      d.set_kind("modbus");
      d.set_profile(dev.profile());
      d.set_bus(bus.name());
      d.set_unit_id(dev.unit_id());
      d.set_poll_interval_ms(dev.poll_interval_ms());
      d.set_transport(describeBus(bus));
      if (const auto* prof = cfg.profiles.find(dev.profile())) d.set_observation(prof->profile.kind());
      fill(d);
      out.push_back(std::move(d));
    }
  }
  if (cfg.config.has_lora()) {
    for (const auto& dev : cfg.config.lora().device()) {
      pb::DeviceInfo d;
      d.set_id(dev.id());
      d.set_kind("lorawan");
      d.set_profile(dev.codec());
      d.set_dev_addr(dev.dev_addr());
      d.set_transport("lorawan " + cfg.config.lora().packet_forwarder().bind() + ":" +
                      std::to_string(cfg.config.lora().packet_forwarder().port()) + "/udp");
      fill(d);
      out.push_back(std::move(d));
    }
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
    reply.error(pb::ControlError::NOT_FOUND, "no device '" + id + "' in the running configuration");
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
  for (const char* l : kLoggers) r.mutable_log_level()->add_loggers(l);
  reply.send(std::move(r));
}

// ---- tail and the latest values -------------------------------------------------------------------

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
  const auto& c = gateway_->loadedConfig().config;
  for (const auto& bus : c.modbus_bus()) {
    for (const auto& d : bus.device()) known_.insert(d.id());
  }
  if (c.has_lora()) {
    for (const auto& d : c.lora().device()) known_.insert(d.id());
  }
  std::erase_if(latest_, [&](const auto& kv) { return !known_.contains(kv.first); });
}

void Handlers::tail(const std::string& id, Reply reply) {
  if (!id.empty() && !knownDevice(id)) {
    reply.error(pb::ControlError::NOT_FOUND, "no device '" + id + "' in the running configuration");
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

// ---- Modbus ---------------------------------------------------------------------------------------

std::shared_ptr<modbus::BusSource> Handlers::findBus(const std::string& name, Reply& reply) {
  if (auto bus = gateway_->bus(name)) return bus;
  std::string known;
  for (const auto& b : gateway_->buses()) known += (known.empty() ? "" : ", ") + b->spec().name;
  reply.error(pb::ControlError::NOT_FOUND, "no Modbus bus '" + name + "' in the running configuration" +
                                               (known.empty() ? "" : " (buses: " + known + ")"));
  return nullptr;
}

void Handlers::modbusRead(const pb::ModbusReadRequest& request, Reply reply) {
  auto bus = findBus(request.bus(), reply);
  if (!bus) return;
  const auto& cfg = bus->spec().config;
  const bool serial = !cfg.has_tcp();
  if (serial && (request.unit_id() < 1 || request.unit_id() > 247)) {
    reply.error(pb::ControlError::BAD_REQUEST, "unit id " + std::to_string(request.unit_id()) +
                                                   " is outside 1..247 on serial bus '" + request.bus() + "'");
    return;
  }
  auto read = std::make_shared<AdhocRead>(executor_);
  read->reply = reply;
  read->request = request;
  if (read->request.table() == pb::REGISTER_TABLE_UNSPECIFIED) read->request.set_table(pb::HOLDING_REGISTER);
  read->timeout =
      std::chrono::milliseconds(request.timeout_ms() != 0 ? request.timeout_ms() : cfg.response_timeout_ms());
  read->transport = describeBus(cfg);
  const bool queued =
      bus->adhocRead(static_cast<std::uint8_t>(request.unit_id()), read->request.table(),
                     static_cast<std::uint16_t>(request.address()), static_cast<std::uint16_t>(request.count()),
                     read->timeout, std::bind_front(&Handlers::onReadDone, shared_from_this(), read), read->cancelled);
  if (!queued) {
    reply.error(pb::ControlError::BUSY, "bus '" + request.bus() + "' has a full queue; try again in a moment");
    return;
  }
  // The client that goes away takes its read with it: not started, it is skipped; started, it
  // ends at its timeout and its answer is dropped.
  read->reply.onClose([read] {
    read->cancelled->store(true);
    read->finished = true;
    read->guard.cancel();
  });
  read->guard.expires_after(read->timeout + kQueueAllowance);
  read->guard.async_wait(std::bind_front(&Handlers::onReadTimeout, shared_from_this(), read));
}

void Handlers::onReadDone(const std::shared_ptr<AdhocRead>& read, modbus::JobResult&& result) {
  if (read->finished) return;
  read->finished = true;
  read->guard.cancel();
  const auto& q = read->request;
  if (result.errors.empty() || !result.errors.front().ok()) {
    const modbus::ReadError e =
        result.errors.empty() ? modbus::ReadError{modbus::ErrorKind::Timeout, 0, "not tried"} : result.errors.front();
    read->reply.error(pb::ControlError::DEVICE_ERROR, readError(e, q.unit_id(), q.bus(), read->timeout));
    return;
  }
  pb::ControlResponse r;
  auto* m = r.mutable_modbus_read();
  m->set_bus(q.bus());
  m->set_unit_id(q.unit_id());
  m->set_table(q.table());
  m->set_address(q.address());
  m->set_transport(read->transport);
  m->set_rtt_us(static_cast<std::uint32_t>(result.rtt.count()));
  for (std::uint32_t i = 0; i < q.count() && i < result.data.size(); ++i) m->add_registers(result.data[i]);
  read->reply.send(std::move(r));
}

void Handlers::onReadTimeout(const std::shared_ptr<AdhocRead>& read, const boost::system::error_code& ec) {
  if (ec || read->finished) return;
  read->finished = true;
  read->cancelled->store(true);
  read->reply.error(pb::ControlError::DEVICE_ERROR,
                    "bus '" + read->request.bus() + "' did not run the read (it was stopped or is overloaded)");
}

void Handlers::modbusScan(const pb::ModbusScanRequest& request, Reply reply) {
  auto bus = findBus(request.bus(), reply);
  if (!bus) return;
  auto scan = std::make_shared<Scan>(executor_);
  scan->reply = std::move(reply);
  scan->bus = std::move(bus);
  scan->request = request;
  const bool serial = !scan->bus->spec().config.has_tcp();
  std::uint32_t from = request.from();
  std::uint32_t to = request.to();
  if (from == 0 && to == 0) {
    from = 1;
    to = 247;
  }
  if (serial) {
    from = std::max<std::uint32_t>(from, 1);
    to = std::min<std::uint32_t>(to, 247);
  }
  if (to < from) {
    scan->reply.error(pb::ControlError::BAD_REQUEST, "empty unit id range");
    return;
  }
  scan->unit = from;
  scan->total = to - from + 1;
  scan->timeout = std::chrono::milliseconds(request.timeout_ms() != 0 ? request.timeout_ms() : 200);
  if (scan->request.table() == pb::REGISTER_TABLE_UNSPECIFIED) scan->request.set_table(pb::HOLDING_REGISTER);
  log_->info("modbus scan of bus '{}' units {}..{} (uid {} pid {})", request.bus(), from, to, scan->reply.peer().uid,
             scan->reply.peer().pid);
  scan->reply.onClose([scan] {  // Ctrl-C: the unit being asked is skipped if not started yet
    scan->abandoned = true;
    scan->cancelled->store(true);
    scan->guard.cancel();
  });
  scanNext(scan);
}

void Handlers::scanNext(const std::shared_ptr<Scan>& scan) {
  if (!scan->reply.alive()) return;  // the technician pressed Ctrl-C: stop asking
  const std::uint64_t step = ++scan->step;
  const bool queued = scan->bus->adhocRead(
      static_cast<std::uint8_t>(scan->unit), scan->request.table(), static_cast<std::uint16_t>(scan->request.address()),
      1, scan->timeout, std::bind_front(&Handlers::onScanDone, shared_from_this(), scan, step), scan->cancelled);
  if (!queued) {
    // The bus queue is full of polls: try this unit again shortly (a stopped bus refuses for good).
    if (++scan->refusals > 200) {
      scan->abandoned = true;
      scan->reply.error(pb::ControlError::BUSY, "bus '" + scan->request.bus() + "' keeps refusing reads; scan stopped");
      return;
    }
    scan->guard.expires_after(std::chrono::milliseconds(50));
    scan->guard.async_wait(std::bind_front(&Handlers::onScanRetry, shared_from_this(), scan));
    return;
  }
  scan->guard.expires_after(scan->timeout + kQueueAllowance);
  scan->guard.async_wait(std::bind_front(&Handlers::onScanTimeout, shared_from_this(), scan, step));
}

void Handlers::onScanRetry(const std::shared_ptr<Scan>& scan, const boost::system::error_code& ec) {
  if (!ec && !scan->abandoned) scanNext(scan);
}

void Handlers::onScanDone(const std::shared_ptr<Scan>& scan, std::uint64_t step, modbus::JobResult&& result) {
  if (scan->abandoned || step != scan->step) return;
  scan->guard.cancel();
  scan->refusals = 0;
  const modbus::ReadError e =
      result.errors.empty() ? modbus::ReadError{modbus::ErrorKind::Timeout, 0, "timeout"} : result.errors.front();
  // An exception is an answer: the unit is there, it just has no such register.
  const bool answered = e.ok() || e.kind == modbus::ErrorKind::Exception;
  std::string detail = e.ok()                                   ? "ok"
                       : e.kind == modbus::ErrorKind::Exception ? "exception " + e.message
                                                                : modbus::errorKindName(e.kind);
  scanStep(scan, answered, std::move(detail), static_cast<std::uint32_t>(result.rtt.count()));
}

void Handlers::onScanTimeout(const std::shared_ptr<Scan>& scan, std::uint64_t step,
                             const boost::system::error_code& ec) {
  if (ec || scan->abandoned || step != scan->step) return;
  scan->abandoned = true;
  scan->cancelled->store(true);
  scan->reply.error(pb::ControlError::DEVICE_ERROR,
                    "bus '" + scan->request.bus() + "' stopped running the scan (a configuration change?)");
}

void Handlers::scanStep(const std::shared_ptr<Scan>& scan, bool answered, std::string detail, std::uint32_t rttUs) {
  ++scan->done;
  if (answered) scan->found.push_back(scan->unit);
  pb::ControlResponse r;
  auto* p = r.mutable_modbus_scan();
  p->set_unit_id(scan->unit);
  p->set_answered(answered);
  p->set_detail(std::move(detail));
  p->set_done(scan->done);
  p->set_total(scan->total);
  p->set_rtt_us(rttUs);
  const bool last = scan->done >= scan->total;
  if (last) {
    for (auto u : scan->found) p->add_found(u);
  }
  if (!scan->reply.send(std::move(r), !last) || last) return;
  ++scan->unit;
  scanNext(scan);
}

}  // namespace citygate::control
