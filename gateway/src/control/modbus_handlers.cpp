// The Modbus commands of the control socket (`modbus read`, `probe`, `scan`, `write`: the last through
// the command service, commands/service.hpp): the one place of
// control/ that knows a kind of source. The source is found by kind and name among the running
// sources and cast to modbus::ModbusSource for its BusSource.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "commands/service.hpp"
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
    read->reply.error(pb::ControlError::DEVICE_ERROR, modbus::describeError(e, q.unit_id(), q.bus(), read->timeout));
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

void Handlers::modbusWrite(const pb::ModbusWriteRequest& request, Reply reply) {
  auto* service = gateway_->commands();
  if (service == nullptr) {
    reply.error(pb::ControlError::BAD_REQUEST, "this daemon carries out no writes");
    return;
  }
  const std::string who = (request.origin().empty() ? std::string("cli") : request.origin()) + " uid " +
                          std::to_string(reply.peer().uid) + " pid " + std::to_string(reply.peer().pid);
  // The write goes on when the client leaves (it is on the bus); its result is in the audit.
  auto answer = std::make_shared<Reply>(std::move(reply));
  service->modbusWrite(request, who, [answer](pb::WriteOutcome outcome) {
    pb::ControlResponse r;
    *r.mutable_modbus_write() = std::move(outcome);
    answer->send(std::move(r));
  });
}

}  // namespace citygate::control
