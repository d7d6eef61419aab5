// The Modbus commands of the control socket (`modbus read`, `probe`, `scan`): the one place of
// control/ that knows a kind of source. The source is found by kind and name among the running
// sources and cast to modbus::ModbusSource for its BusSource.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "control/handlers.hpp"
#include "core/suggest.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "inputs/modbus/decode.hpp"
#include "inputs/modbus/kind.hpp"

namespace citygate::control {

namespace pb = citygate::v1;

namespace {

// A read that never comes back (its bus was stopped by a configuration change) is answered after
// its own timeout plus this much time in the bus queue.
constexpr std::chrono::seconds kQueueAllowance{15};

using modbus::describeBus;

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
  std::shared_ptr<modbus::ModbusSource> bus;
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

std::shared_ptr<modbus::ModbusSource> Handlers::findBus(const std::string& name, Reply& reply) {
  if (auto bus = std::dynamic_pointer_cast<modbus::ModbusSource>(gateway_->findSource(modbus::kKindName, name))) {
    return bus;
  }
  std::string known;
  std::vector<std::string> names;
  for (const auto& s : gateway_->sources()) {
    if (s->kind() != modbus::kKindName) continue;
    known += (known.empty() ? "" : ", ") + s->name();
    names.push_back(s->name());
  }
  reply.error(pb::ControlError::NOT_FOUND, "no Modbus bus '" + name + "' in the running configuration" +
                                               (known.empty() ? "" : " (buses: " + known + ")") +
                                               core::didYouMean(name, names));
  return nullptr;
}

void Handlers::modbusRead(const pb::ModbusReadRequest& request, Reply reply) {
  auto bus = findBus(request.bus(), reply);
  if (!bus) return;
  const auto& cfg = bus->busSpec().config;
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
  const bool queued = bus->bus().adhocRead(
      static_cast<std::uint8_t>(request.unit_id()), read->request.table(),
      static_cast<std::uint16_t>(request.address()), static_cast<std::uint16_t>(request.count()), read->timeout,
      std::bind_front(&Handlers::onReadDone, shared_from_this(), read), read->cancelled);
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
  const bool serial = !scan->bus->busSpec().config.has_tcp();
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
  const bool queued = scan->bus->bus().adhocRead(
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

// `device ID --retry`: the Modbus device's bus ends its backoff. Only Modbus devices are polled;
// a LoRaWAN device sends when it will, so there is nothing to retry.
void Handlers::deviceRetry(const std::string& id, Reply reply) {
  for (const auto& source : gateway_->sources()) {
    if (source->kind() != modbus::kKindName) continue;
    auto bus = std::dynamic_pointer_cast<modbus::ModbusSource>(source);
    if (!bus) continue;
    const auto index = bus->bus().deviceIndex(id);
    if (!index) continue;
    pb::ControlResponse r;
    auto* out = r.mutable_device_retry();
    out->set_device_id(id);
    out->set_state(bus->bus().deviceState(*index));
    out->set_poll_interval_ms(static_cast<std::uint32_t>(bus->busSpec().devices[*index].interval.count()));
    switch (bus->bus().retryNow(*index, "asked by uid " + std::to_string(reply.peer().uid))) {
      case modbus::BusSource::Retry::Probing:
        out->set_outcome(pb::DeviceRetryResponse::PROBING);
        break;
      case modbus::BusSource::Retry::AlreadyProbing:
        out->set_outcome(pb::DeviceRetryResponse::ALREADY_PROBING);
        break;
      case modbus::BusSource::Retry::NotDown:
        out->set_outcome(pb::DeviceRetryResponse::NOT_IN_BACKOFF);
        break;
    }
    reply.send(std::move(r));
    return;
  }
  if (knownDevice(id)) {
    reply.error(pb::ControlError::BAD_REQUEST, "device '" + id +
                                                   "' is not polled (a LoRaWAN device sends when it will): "
                                                   "nothing to retry");
    return;
  }
  reply.error(pb::ControlError::NOT_FOUND, unknownDevice(id));
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

// ---- modbus write -----------------------------------------------------------------------------

struct Handlers::AdhocWrite {
  Reply reply;
  pb::ModbusWriteRequest request;
  std::string who;  // for the log: origin, uid, pid
  std::chrono::milliseconds timeout{500};
  const modbus::DeviceSpec* device = nullptr;  // valid while `bus` is held
  std::shared_ptr<modbus::ModbusSource> bus;
  std::size_t point = 0;
  std::vector<std::uint16_t> registers;
  boost::asio::steady_timer guard;
  bool finished = false;

  explicit AdhocWrite(boost::asio::any_io_executor ex) : guard(ex) {}
};

namespace {

std::string describeWrite(const pb::ModbusWriteRequest& q) {
  return "unit " + std::to_string(q.unit_id()) + " " + pb::RegisterTable_Name(q.table()) + " " +
         std::to_string(q.address()) + " on bus '" + q.bus() + "'";
}

}  // namespace

void Handlers::modbusWrite(const pb::ModbusWriteRequest& request, Reply reply) {
  auto write = std::make_shared<AdhocWrite>(executor_);
  write->reply = std::move(reply);
  write->request = request;
  if (write->request.table() == pb::REGISTER_TABLE_UNSPECIFIED) write->request.set_table(pb::HOLDING_REGISTER);
  const auto& q = write->request;
  write->who = (q.origin().empty() ? std::string("cli") : q.origin()) + " uid " +
               std::to_string(write->reply.peer().uid) + " pid " + std::to_string(write->reply.peer().pid);
  pb::WriteOutcome refused;
  refused.set_requested(q.value());
  auto refuse = [&](pb::WriteRefusal reason, std::string detail) {
    refused.set_refusal(reason);
    refused.set_detail(std::move(detail));
    finishWrite(write, refused);
  };
  const auto& commands = gateway_->loadedConfig().config.commands();
  if (!commands.enabled()) {
    return refuse(pb::COMMANDS_DISABLED, "writes are off: the configuration has no commands { enabled: true }");
  }
  write->bus = std::dynamic_pointer_cast<modbus::ModbusSource>(gateway_->findSource(modbus::kKindName, q.bus()));
  if (!write->bus) return refuse(pb::UNKNOWN_DEVICE, "no Modbus bus '" + q.bus() + "' in the running configuration");
  const auto& spec = write->bus->busSpec();
  for (const auto& d : spec.devices) {
    if (d.unitId == q.unit_id()) write->device = &d;
  }
  if (write->device == nullptr) {
    return refuse(pb::UNKNOWN_DEVICE, "no device with unit id " + std::to_string(q.unit_id()) + " on bus '" + q.bus() +
                                          "' in the running configuration");
  }
  const auto& dev = *write->device;
  refused.set_device_id(dev.sensor->id);
  const auto point = modbus::findPoint(dev, q.table(), q.address());
  if (point) refused.set_point(dev.sensor->points[*point].name);
  if (auto no = modbus::checkWrite(commands, &dev, point, q.value())) {
    std::string detail = no->detail;
    if (no->reason == pb::UNKNOWN_POINT) {
      detail = "profile '" + dev.profile + "' has no point at " + pb::RegisterTable_Name(q.table()) + " " +
               std::to_string(q.address());
    }
    return refuse(no->reason, detail);
  }
  write->point = *point;
  const auto& rd = dev.reads[*point];
  if ((q.type() != pb::DATA_TYPE_UNSPECIFIED && q.type() != rd.type) ||
      (q.order() != pb::WORD_ORDER_UNSPECIFIED && q.order() != rd.order)) {
    return refuse(pb::TYPE_MISMATCH, "point '" + refused.point() + "' is " + pb::DataType_Name(rd.type) + " " +
                                         modbus::orderName(rd.order) + " in profile '" + dev.profile + "'");
  }
  auto enc = modbus::encodeValue(rd, dev.sensor->points[*point], q.value());
  if (enc.refusal) return refuse(enc.refusal->reason, enc.refusal->detail);
  write->registers = enc.registers;
  if (spec.kind != modbus::BusSpec::Kind::Tcp) {
    return refuse(pb::UNSUPPORTED, "writes are supported on Modbus TCP buses only so far; bus '" + q.bus() + "' is " +
                                       describeBus(spec.config));
  }
  if (q.dry_run()) {
    pb::ControlResponse r;
    auto* o = r.mutable_modbus_write();
    *o = refused;
    for (auto v : enc.registers) o->add_registers(v);
    o->set_detail("dry run: point '" + refused.point() + "' of device '" + dev.sensor->id + "' (profile '" +
                  dev.profile + "', " + pb::DataType_Name(rd.type) + " " + modbus::orderName(rd.order) + ", writable " +
                  fmt::format("{}..{}", rd.writeMin, rd.writeMax) + ")");
    write->finished = true;
    write->reply.send(std::move(r));
    return;
  }
  const std::uint32_t writes =
      commands.rate_limit().writes() != 0 ? commands.rate_limit().writes() : modbus::kDefaultRateWrites;
  const std::uint32_t perS =
      commands.rate_limit().per_s() != 0 ? commands.rate_limit().per_s() : modbus::kDefaultRatePerS;
  if (!writeLimiter_ || writeLimit_ != std::pair{writes, perS}) {
    writeLimiter_ = std::make_unique<modbus::RateLimiter>(writes, std::chrono::seconds(perS));
    writeLimit_ = {writes, perS};
  }
  std::chrono::milliseconds retryIn{0};
  if (!writeLimiter_->take(dev.sensor->id, gateway_->steadyNow(), &retryIn)) {
    return refuse(pb::RATE_LIMITED, "device '" + dev.sensor->id + "' had its " + std::to_string(writes) +
                                        " writes in " + std::to_string(perS) + " s; the next one in " +
                                        std::to_string((retryIn.count() + 999) / 1000) + " s");
  }
  write->timeout = dev.timeout;
  modbus::WriteRequest wr{rd.table, static_cast<std::uint16_t>(rd.address), enc.registers};
  modbus::ReadRequest back{rd.table, static_cast<std::uint16_t>(rd.address), static_cast<std::uint16_t>(rd.count), {}};
  const std::size_t capacity = commands.queue_capacity() != 0 ? commands.queue_capacity() : modbus::kDefaultWriteQueue;
  if (!write->bus->bus().adhocWrite(dev.unitId, std::move(wr), std::move(back), write->timeout, capacity,
                                    std::bind_front(&Handlers::onWriteDone, shared_from_this(), write))) {
    return refuse(pb::QUEUE_FULL, "bus '" + q.bus() + "' has " + std::to_string(capacity) +
                                      " writes waiting (or a full queue); try again in a moment");
  }
  log_->info("modbus write of {} = {} to {} ({} '{}') queued, by {}", refused.point(), q.value(), describeWrite(q),
             dev.sensor->id, dev.profile, write->who);
  write->reply.onClose([write] { write->finished = true; });  // the write goes on: it is on the bus
  write->guard.expires_after(write->timeout * 2 + kQueueAllowance);
  write->guard.async_wait(std::bind_front(&Handlers::onWriteTimeout, shared_from_this(), write));
}

void Handlers::onWriteDone(const std::shared_ptr<AdhocWrite>& write, modbus::JobResult&& result) {
  write->guard.cancel();
  const auto& q = write->request;
  const auto& dev = *write->device;
  pb::WriteOutcome o;
  o.set_requested(q.value());
  o.set_device_id(dev.sensor->id);
  o.set_point(dev.sensor->points[write->point].name);
  for (auto r : write->registers) o.add_registers(r);
  const modbus::ReadError we =
      result.writeError ? *result.writeError : modbus::ReadError{modbus::ErrorKind::Timeout, 0, "not tried"};
  if (!we.ok()) {
    o.set_detail("the write failed: " + readError(we, q.unit_id(), q.bus(), write->timeout));
  } else {
    o.set_written(true);
    if (result.errors.empty() || !result.errors.front().ok()) {
      const modbus::ReadError e =
          result.errors.empty() ? modbus::ReadError{modbus::ErrorKind::Timeout, 0, "not tried"} : result.errors.front();
      o.set_detail("written, but the read-back failed: " + readError(e, q.unit_id(), q.bus(), write->timeout));
    } else {
      const auto& rd = dev.reads[write->point];
      const std::span<const std::uint16_t> back(result.data.data(),
                                                std::min<std::size_t>(rd.count, result.data.size()));
      for (auto r : back) o.add_read_back_registers(r);
      if (auto v = modbus::decodeValue(rd, dev.sensor->points[write->point], back)) o.set_read_back(*v);
      const bool holds = std::equal(
          back.begin(), back.end(), write->registers.begin(), write->registers.end(),
          [&rd](std::uint16_t a, std::uint16_t b) { return rd.table == pb::COIL ? ((a != 0) == (b != 0)) : a == b; });
      o.set_holds(holds);
      o.set_detail(holds ? "written and read back: the device holds the value"
                         : "written, but the device reads back another value");
    }
  }
  finishWrite(write, std::move(o));
}

void Handlers::onWriteTimeout(const std::shared_ptr<AdhocWrite>& write, const boost::system::error_code& ec) {
  if (ec) return;
  pb::WriteOutcome o;
  o.set_requested(write->request.value());
  o.set_refusal(pb::BUS_STOPPED);
  o.set_detail("bus '" + write->request.bus() + "' did not run the write (it was stopped or is overloaded)");
  finishWrite(write, std::move(o));
}

void Handlers::finishWrite(const std::shared_ptr<AdhocWrite>& write, pb::WriteOutcome outcome) {
  const auto& q = write->request;
  // The audit trail: every write asked for, and what became of it.
  if (outcome.refusal() != pb::WRITE_REFUSAL_UNSPECIFIED) {
    log_->warn("modbus write of {} to {} by {} refused ({}): {}", q.value(), describeWrite(q), write->who,
               modbus::refusalName(outcome.refusal()), outcome.detail());
  } else {
    log_->info("modbus write of {} to {} by {}: written {}, holds {}, read back {}: {}", q.value(), describeWrite(q),
               write->who, outcome.written(), outcome.holds(), outcome.read_back(), outcome.detail());
  }
  if (write->finished) return;
  write->finished = true;
  pb::ControlResponse r;
  *r.mutable_modbus_write() = std::move(outcome);
  write->reply.send(std::move(r));
}

}  // namespace citygate::control
