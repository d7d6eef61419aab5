#include "commands/service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/time.hpp"
#include "inputs/lora/kind.hpp"
#include "inputs/lora/source.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "inputs/modbus/decode.hpp"
#include "inputs/modbus/kind.hpp"
#include "inputs/modbus/write.hpp"
#include "outputs/mqtt/session.hpp"

namespace citygate::commands {

namespace {

// A write that never comes back (its bus was stopped by a configuration change) is answered after
// twice its timeout (write and read-back) plus this much time in the bus queue.
constexpr std::chrono::seconds kQueueAllowance{15};

std::string describeWrite(const pb::ModbusWriteRequest& q) {
  return "unit " + std::to_string(q.unit_id()) + " " + pb::RegisterTable_Name(q.table()) + " " +
         std::to_string(q.address()) + " on bus '" + q.bus() + "'";
}

std::string platformOrigin(const pb::Command& c) {
  return "platform" + (c.origin().empty() ? std::string() : " (" + c.origin() + ")");
}

pb::WriteOutcome refusal(pb::WriteRefusal reason, std::string detail) {
  pb::WriteOutcome o;
  o.set_refusal(reason);
  o.set_detail(std::move(detail));
  return o;
}

}  // namespace

struct Service::Write {
  pb::ModbusWriteRequest request;  // bus, unit, table, address, value (a platform write: resolved)
  std::string origin;              // who asks, for the log and the audit
  pb::Command command;             // as audited (and answered, for the platform)
  bool platform = false;           // answer on .../cmd/result
  bool checkType = false;          // the request's type and order must match the profile's
  std::shared_ptr<modbus::ModbusSource> bus;
  const modbus::DeviceSpec* device = nullptr;  // valid while `bus` is held
  std::size_t point = 0;
  std::vector<std::uint16_t> registers;
  std::chrono::milliseconds timeout{500};
  std::unique_ptr<core::Timer> guard;
  WriteDone done;
  bool finished = false;
};

Service::Service(boost::asio::any_io_executor executor, Daemon& daemon, core::Clock& clock,
                 std::unique_ptr<AuditTrail> audit, std::shared_ptr<mqtt::Session> session,
                 std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      daemon_(daemon),
      clock_(clock),
      audit_(std::move(audit)),
      session_(std::move(session)),
      log_(std::move(log)) {
  if (session_) resultTopic_ = session_->topic("cmd/result");
}

Service::~Service() = default;

void Service::start() {
  audit_->start();
  configure();
}

void Service::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (subscription_ && session_) session_->unsubscribe(*subscription_);
  subscription_.reset();
  stats_.subscribed = false;
  audit_->stop();
}

void Service::configure() {
  if (stopped_) return;
  const auto& c = daemon_.loadedConfig().config.commands();
  recent_.setCapacity(c.dedupe_window() != 0 ? c.dedupe_window() : kDefaultDedupeWindow);
  const bool want = session_ && c.enabled() && c.platform();
  if (want && !subscription_) {
    std::weak_ptr<Service> weak = weak_from_this();
    subscription_ = session_->subscribe(session_->topic("cmd"), 1, [weak](const mqtt::InboundMessage& m) {
      auto self = weak.lock();
      if (!self) return;
      if (m.retained) {
        // A retained command would be carried out again by every gateway that subscribes later.
        ++self->stats_.received;
        ++self->stats_.malformed;
        self->log_->warn("a retained message on {} was ignored: commands must not be retained", m.topic);
        return;
      }
      self->onCommand(m.payload);
    });
    log_->info("platform commands are on: listening on {}", session_->topic("cmd"));
  } else if (!want && subscription_) {
    session_->unsubscribe(*subscription_);
    subscription_.reset();
    log_->info("platform commands are off");
  }
  stats_.subscribed = subscription_.has_value();
}

// ---- the cabinet: citygatectl modbus write ---------------------------------------------------

void Service::modbusWrite(const pb::ModbusWriteRequest& request, std::string origin, WriteDone done) {
  auto w = std::make_shared<Write>();
  w->request = request;
  if (w->request.table() == pb::REGISTER_TABLE_UNSPECIFIED) w->request.set_table(pb::HOLDING_REGISTER);
  w->origin = std::move(origin);
  w->done = std::move(done);
  w->checkType = true;
  const auto& q = w->request;
  auto& c = w->command;
  c.set_request_id("cli-" + std::to_string(++cliWrites_));
  c.set_origin(w->origin);
  c.mutable_write()->set_table(q.table());
  c.mutable_write()->set_address(q.address());
  c.mutable_write()->set_value(q.value());
  if (!daemon_.loadedConfig().config.commands().enabled()) {
    return finishWrite(
        w, refusal(pb::COMMANDS_DISABLED, "writes are off: the configuration has no commands { enabled: true }"));
  }
  w->bus = std::dynamic_pointer_cast<modbus::ModbusSource>([&]() -> std::shared_ptr<sources::Source> {
    for (const auto& s : daemon_.sources()) {
      if (s->kind() == modbus::kKindName && s->name() == q.bus()) return s;
    }
    return nullptr;
  }());
  if (!w->bus) {
    return finishWrite(w, refusal(pb::UNKNOWN_DEVICE, "no Modbus bus '" + q.bus() + "' in the running configuration"));
  }
  for (const auto& d : w->bus->busSpec().devices) {
    if (d.unitId == q.unit_id()) w->device = &d;
  }
  if (w->device == nullptr) {
    return finishWrite(w, refusal(pb::UNKNOWN_DEVICE, "no device with unit id " + std::to_string(q.unit_id()) +
                                                          " on bus '" + q.bus() + "' in the running configuration"));
  }
  c.set_device(w->device->sensor->id);
  const auto point = modbus::findPoint(*w->device, q.table(), q.address());
  if (!point) {
    return finishWrite(
        w, refusal(pb::UNKNOWN_POINT, "profile '" + w->device->profile + "' has no point at " +
                                          pb::RegisterTable_Name(q.table()) + " " + std::to_string(q.address())));
  }
  w->point = *point;
  c.mutable_write()->set_point(w->device->sensor->points[*point].name);
  startWrite(w);
}

// ---- the checks, the bus, the read-back: both origins ----------------------------------------

void Service::startWrite(const std::shared_ptr<Write>& w) {
  const auto& commands = daemon_.loadedConfig().config.commands();
  const auto& q = w->request;
  const auto& dev = *w->device;
  if (auto no = modbus::checkWrite(commands, &dev, w->point, q.value())) {
    return finishWrite(w, refusal(no->reason, no->detail));
  }
  const auto& rd = dev.reads[w->point];
  const std::string& pointName = dev.sensor->points[w->point].name;
  if (w->checkType && ((q.type() != pb::DATA_TYPE_UNSPECIFIED && q.type() != rd.type) ||
                       (q.order() != pb::WORD_ORDER_UNSPECIFIED && q.order() != rd.order))) {
    return finishWrite(
        w, refusal(pb::TYPE_MISMATCH, "point '" + pointName + "' is " + pb::DataType_Name(rd.type) + " " +
                                          modbus::orderName(rd.order) + " in profile '" + dev.profile + "'"));
  }
  auto enc = modbus::encodeValue(rd, dev.sensor->points[w->point], q.value());
  if (enc.refusal) return finishWrite(w, refusal(enc.refusal->reason, enc.refusal->detail));
  w->registers = enc.registers;
  if (q.dry_run()) {
    pb::WriteOutcome o;
    o.set_requested(q.value());
    o.set_device_id(dev.sensor->id);
    o.set_point(pointName);
    for (auto v : enc.registers) o.add_registers(v);
    o.set_detail("dry run: point '" + pointName + "' of device '" + dev.sensor->id + "' (profile '" + dev.profile +
                 "', " + pb::DataType_Name(rd.type) + " " + modbus::orderName(rd.order) + ", writable " +
                 fmt::format("{}..{}", rd.writeMin, rd.writeMax) + ")");
    w->finished = true;
    if (w->done) w->done(std::move(o));
    return;
  }
  if (auto limited = takeRate(dev.sensor->id, "writes")) return finishWrite(w, refusal(pb::RATE_LIMITED, *limited));
  w->timeout = dev.timeout;
  modbus::WriteRequest wr{rd.table, static_cast<std::uint16_t>(rd.address), enc.registers};
  modbus::ReadRequest back{rd.table, static_cast<std::uint16_t>(rd.address), static_cast<std::uint16_t>(rd.count), {}};
  const std::size_t capacity = commands.queue_capacity() != 0 ? commands.queue_capacity() : modbus::kDefaultWriteQueue;
  std::weak_ptr<Service> weak = weak_from_this();
  auto onDone = [weak, w](modbus::JobResult&& result) {
    if (auto self = weak.lock()) self->onBusDone(w, std::move(result));
  };
  if (!w->bus->bus().adhocWrite(dev.unitId, std::move(wr), std::move(back), w->timeout, capacity, std::move(onDone))) {
    return finishWrite(w, refusal(pb::QUEUE_FULL, "bus '" + q.bus() + "' has " + std::to_string(capacity) +
                                                      " writes waiting (or a full queue); try again in a moment"));
  }
  log_->info("modbus write of {} = {} to {} ({} '{}') queued, by {}", pointName, q.value(), describeWrite(q),
             dev.sensor->id, dev.profile, w->origin);
  w->guard = clock_.makeTimer();
  w->guard->start(w->timeout * 2 + kQueueAllowance, [weak, w] {
    auto self = weak.lock();
    if (!self || w->finished) return;
    self->finishWrite(w, refusal(pb::BUS_STOPPED, "bus '" + w->request.bus() +
                                                      "' did not run the write (it was stopped or is overloaded)"));
  });
  if (w->platform) {
    pb::CommandResult accepted;
    accepted.set_status(pb::CommandResult::ACCEPTED);
    accepted.set_detail("queued on bus '" + q.bus() + "'");
    answer(w->command, std::move(accepted), w->platform, w->origin, q.bus(), q.unit_id());
  }
}

void Service::onBusDone(const std::shared_ptr<Write>& w, modbus::JobResult&& result) {
  if (w->finished) return;
  const auto& q = w->request;
  const auto& dev = *w->device;
  pb::WriteOutcome o;
  o.set_requested(q.value());
  for (auto r : w->registers) o.add_registers(r);
  const modbus::ReadError we =
      result.writeError ? *result.writeError : modbus::ReadError{modbus::ErrorKind::Timeout, 0, "not tried"};
  if (!we.ok()) {
    o.set_detail("the write failed: " + modbus::describeError(we, q.unit_id(), q.bus(), w->timeout));
  } else {
    o.set_written(true);
    if (result.errors.empty() || !result.errors.front().ok()) {
      const modbus::ReadError e =
          result.errors.empty() ? modbus::ReadError{modbus::ErrorKind::Timeout, 0, "not tried"} : result.errors.front();
      o.set_detail("written, but the read-back failed: " + modbus::describeError(e, q.unit_id(), q.bus(), w->timeout));
    } else {
      const auto& rd = dev.reads[w->point];
      const std::span<const std::uint16_t> back(result.data.data(),
                                                std::min<std::size_t>(rd.count, result.data.size()));
      for (auto r : back) o.add_read_back_registers(r);
      if (auto v = modbus::decodeValue(rd, dev.sensor->points[w->point], back)) o.set_read_back(*v);
      const bool holds = std::equal(
          back.begin(), back.end(), w->registers.begin(), w->registers.end(),
          [&rd](std::uint16_t a, std::uint16_t b) { return rd.table == pb::COIL ? ((a != 0) == (b != 0)) : a == b; });
      o.set_holds(holds);
      o.set_detail(holds ? "written and read back: the device holds the value"
                         : "written, but the device reads back another value");
    }
  }
  finishWrite(w, std::move(o));
}

pb::CommandResult::Status Service::statusOf(const pb::WriteOutcome& o) const {
  if (o.refusal() != pb::WRITE_REFUSAL_UNSPECIFIED) return pb::CommandResult::REFUSED;
  return o.written() ? pb::CommandResult::DONE : pb::CommandResult::FAILED;
}

void Service::finishWrite(const std::shared_ptr<Write>& w, pb::WriteOutcome outcome) {
  if (w->finished) return;
  w->finished = true;
  if (w->guard) w->guard->cancel();  // its handler holds `w`
  const auto& q = w->request;
  if (w->device != nullptr) {
    outcome.set_device_id(w->device->sensor->id);
    outcome.set_point(w->device->sensor->points[w->point].name);
  }
  outcome.set_requested(q.value());
  const auto status = statusOf(outcome);
  switch (status) {
    case pb::CommandResult::DONE:
      ++stats_.done;
      break;
    case pb::CommandResult::FAILED:
      ++stats_.failed;
      break;
    default:
      ++stats_.refused;
      break;
  }
  pb::CommandResult result;
  result.set_status(status);
  result.set_refusal(outcome.refusal());
  result.set_detail(outcome.detail());
  *result.mutable_write() = outcome;
  answer(w->command, std::move(result), w->platform, w->origin, q.bus(), q.unit_id());
  if (w->done) w->done(std::move(outcome));
}

// ---- the platform: .../cmd ------------------------------------------------------------------

void Service::onCommand(std::string_view payload) {
  if (stopped_) return;
  ++stats_.received;
  Decoded d = decodeCommand(payload);
  if (!d.ok()) {
    ++stats_.malformed;
    // At most one line per 100 malformed commands: a flood must not flood the log.
    if (stats_.malformed % 100 == 1) {
      log_->warn("a command on {} was refused: {} ({} malformed so far)", session_ ? session_->topic("cmd") : "cmd",
                 d.detail, stats_.malformed);
    }
    if (d.command.request_id().empty()) return;  // nothing to answer to
    pb::CommandResult r;
    r.set_status(pb::CommandResult::REFUSED);
    r.set_refusal(d.refusal);
    r.set_detail(d.detail);
    answer(d.command, std::move(r), true, platformOrigin(d.command));
    return;
  }
  execute(d.command, true);
}

void Service::submit(pb::Command command) {
  if (stopped_) return;
  ++stats_.received;
  execute(command, false);
}

void Service::execute(const pb::Command& command, bool reply) {
  const auto& commands = daemon_.loadedConfig().config.commands();
  if (!recent_.insert(command.request_id())) {
    ++stats_.duplicates;
    pb::CommandResult r;
    r.set_status(pb::CommandResult::REFUSED);
    r.set_refusal(pb::DUPLICATE_REQUEST);
    r.set_detail("request id '" + command.request_id() + "' was received before; it is carried out once");
    answer(command, std::move(r), reply, platformOrigin(command));
    return;
  }
  const std::chrono::seconds maxAhead(commands.max_expiry_s() != 0 ? commands.max_expiry_s() : kDefaultMaxExpiryS);
  if (auto late = checkExpiry(command, clock_.wallNow(), maxAhead)) {
    pb::CommandResult r;
    if (late->refusal == pb::EXPIRED) {
      ++stats_.expired;
      r.set_status(pb::CommandResult::EXPIRED);
    } else {
      ++stats_.malformed;
      r.set_status(pb::CommandResult::REFUSED);
    }
    r.set_refusal(late->refusal);
    r.set_detail(late->detail);
    answer(command, std::move(r), reply, platformOrigin(command));
    return;
  }
  if (!commands.enabled() || !commands.platform()) {
    // Unsubscribed already (configure()); a message still in flight is refused.
    ++stats_.refused;
    pb::CommandResult r;
    r.set_status(pb::CommandResult::REFUSED);
    r.set_refusal(pb::PLATFORM_COMMANDS_DISABLED);
    r.set_detail("platform commands are off (commands { enabled: true platform: true })");
    answer(command, std::move(r), reply, platformOrigin(command));
    return;
  }
  if (command.has_write()) return commandWrite(command, reply);
  if (command.has_refill()) return commandRefill(command);
  commandDownlink(command);
}

std::optional<std::string> Service::takeRate(const std::string& device, const char* what) {
  const auto& rl = daemon_.loadedConfig().config.commands().rate_limit();
  const std::uint32_t writes = rl.writes() != 0 ? rl.writes() : modbus::kDefaultRateWrites;
  const std::uint32_t perS = rl.per_s() != 0 ? rl.per_s() : modbus::kDefaultRatePerS;
  if (!limiter_ || limit_ != std::pair{writes, perS}) {  // the configuration changed: a new limit
    limiter_ = std::make_unique<modbus::RateLimiter>(writes, std::chrono::seconds(perS));
    limit_ = {writes, perS};
  }
  std::chrono::milliseconds retryIn{0};
  if (limiter_->take(device, clock_.steadyNow(), &retryIn)) return std::nullopt;
  return "device '" + device + "' had its " + std::to_string(writes) + " " + what + " in " + std::to_string(perS) +
         " s; the next one in " + std::to_string((retryIn.count() + 999) / 1000) + " s";
}

void Service::commandRefill(const pb::Command& command) {
  std::weak_ptr<Service> weak = weak_from_this();
  daemon_.refill(command.refill(), [weak, command](pb::CommandResult r) {
    auto self = weak.lock();
    if (!self) return;
    if (r.status() == pb::CommandResult::REFUSED) ++self->stats_.refused;
    if (r.status() == pb::CommandResult::DONE) ++self->stats_.done;
    if (r.status() == pb::CommandResult::FAILED) ++self->stats_.failed;
    if (r.status() == pb::CommandResult::ACCEPTED) ++self->stats_.accepted;
    self->answer(command, std::move(r), true, platformOrigin(command));
  });
}

void Service::commandWrite(const pb::Command& command, bool reply) {
  auto w = std::make_shared<Write>();
  w->command = command;
  w->platform = reply;
  w->origin = platformOrigin(command);
  const auto& pw = command.write();
  for (const auto& s : daemon_.sources()) {
    if (s->kind() != modbus::kKindName) continue;
    auto bus = std::dynamic_pointer_cast<modbus::ModbusSource>(s);
    if (!bus) continue;
    for (const auto& d : bus->busSpec().devices) {
      if (d.sensor->id == command.device()) {
        w->bus = bus;
        w->device = &d;
      }
    }
  }
  w->request.set_value(pw.value());
  if (w->device == nullptr) {
    return finishWrite(
        w, refusal(pb::UNKNOWN_DEVICE, "no Modbus device '" + command.device() + "' in the running configuration"));
  }
  const auto& dev = *w->device;
  w->request.set_bus(w->bus->busSpec().name);
  w->request.set_unit_id(dev.unitId);
  const auto point = pw.point().empty() ? modbus::findPoint(dev, pw.table(), pw.address())
                                        : modbus::findPoint(dev, pw.point(), pw.lane(), pw.bay());
  if (!point) {
    std::string where = pw.point().empty()
                            ? pb::RegisterTable_Name(pw.table()) + " " + std::to_string(pw.address())
                            : "'" + pw.point() + "'" + (pw.lane() != 0 ? " lane " + std::to_string(pw.lane()) : "") +
                                  (pw.bay().empty() ? "" : " bay '" + pw.bay() + "'");
    w->request.set_table(pw.point().empty() ? pw.table() : pb::HOLDING_REGISTER);
    w->request.set_address(pw.address());
    w->device = nullptr;  // no point to name in the outcome
    return finishWrite(w, refusal(pb::UNKNOWN_POINT, "profile '" + dev.profile + "' of device '" + dev.sensor->id +
                                                         "' has no point " + where));
  }
  w->point = *point;
  const auto& rd = dev.reads[*point];
  w->request.set_table(rd.table);
  w->request.set_address(rd.address);
  startWrite(w);
}

void Service::commandDownlink(const pb::Command& command) {
  const auto& commands = daemon_.loadedConfig().config.commands();
  const auto& dl = command.downlink();
  pb::CommandResult r;
  r.set_status(pb::CommandResult::REFUSED);
  auto refuse = [&](pb::WriteRefusal reason, std::string detail) {
    ++stats_.refused;
    r.set_refusal(reason);
    r.set_detail(std::move(detail));
    answer(command, std::move(r), true, platformOrigin(command));
  };
  const auto& allowed = commands.allow_downlink();
  if (std::find(allowed.begin(), allowed.end(), command.device()) == allowed.end()) {
    return refuse(pb::DEVICE_NOT_ALLOWED,
                  "device '" + command.device() + "' is not in commands.allow_downlink: no downlinks to it");
  }
  std::shared_ptr<lora::LoraSourceHandle> lora;
  for (const auto& s : daemon_.sources()) {
    if (s->kind() == lora::kKindName) lora = std::dynamic_pointer_cast<lora::LoraSourceHandle>(s);
  }
  if (!lora) return refuse(pb::UNKNOWN_DEVICE, "the running configuration has no LoRa input");
  if (auto limited = takeRate(command.device(), "commands")) return refuse(pb::RATE_LIMITED, *limited);
  const auto& bytes = dl.payload();
  const auto res = lora->source().enqueueDownlink(
      command.device(), static_cast<std::uint8_t>(dl.f_port()),
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), dl.confirmed());
  switch (res) {
    case lora::EnqueueResult::Queued:
      ++stats_.accepted;
      r.set_status(pb::CommandResult::ACCEPTED);
      r.set_detail("queued: sent after the device's next uplink");
      answer(command, std::move(r), true, platformOrigin(command));
      return;
    case lora::EnqueueResult::Disabled:
      return refuse(pb::DOWNLINK_REFUSED, "LoRa downlinks are off (lora { downlink { enabled: true } })");
    case lora::EnqueueResult::UnknownDevice:
      return refuse(pb::UNKNOWN_DEVICE, "no LoRa device '" + command.device() + "' in the running configuration");
    case lora::EnqueueResult::BadPort:
    case lora::EnqueueResult::TooLarge:
      return refuse(pb::NOT_REPRESENTABLE, "the downlink cannot be sent: " + std::string(lora::enqueueResultName(res)));
    case lora::EnqueueResult::QueueFull:
      return refuse(pb::QUEUE_FULL, "the device's downlink queue is full; try again after its next uplink");
  }
  refuse(pb::DOWNLINK_REFUSED, std::string(lora::enqueueResultName(res)));
}

void Service::answer(const pb::Command& command, pb::CommandResult result, bool platform, const std::string& origin,
                     const std::string& bus, std::uint32_t unit) {
  result.set_request_id(command.request_id());
  result.set_device(command.device());
  toTimestamp(clock_.wallNow(), result.mutable_at());
  if (result.status() == pb::CommandResult::ACCEPTED && command.has_write()) ++stats_.accepted;
  pb::AuditRecord a;
  if (session_ && platform) {
    result.set_gateway_id(session_->options().gatewayId);
    std::weak_ptr<Service> weak = weak_from_this();
    session_->publish(resultTopic_, result.SerializeAsString(), 1, false, [weak](const Status& st) {
      auto self = weak.lock();
      if (!self) return;
      if (st) {
        ++self->stats_.resultsPublished;
      } else {
        ++self->stats_.resultsNotPublished;
      }
    });
  }
  a.set_origin(origin);
  *a.mutable_command() = command;
  *a.mutable_result() = std::move(result);
  a.set_bus(bus);
  a.set_unit_id(unit);
  audit_->record(std::move(a));
}

}  // namespace citygate::commands
