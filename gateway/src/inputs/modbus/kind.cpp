#include "inputs/modbus/kind.hpp"

#include <boost/asio/post.hpp>

#include "config/files.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "inputs/modbus/write.hpp"
#include "sources/port_check.hpp"

namespace citygate::modbus {

namespace {

std::string busFingerprint(const config::LoadedConfig& cfg, const pb::ModbusBus& bus) {
  std::string fp = config::canonicalBytes(bus);
  for (const auto& dev : bus.device()) {
    fp += '\x1f';
    if (const auto* prof = cfg.profiles.find(dev.profile())) fp += config::canonicalBytes(prof->profile);
    if (!dev.has_location() && cfg.config.has_location()) fp += config::canonicalBytes(cfg.config.location());
  }
  return fp;
}

class ModbusKind final : public sources::SourceKind {
 public:
  std::string_view name() const override { return kKindName; }

  void validate(const config::LoadedConfig& cfg, config::Diagnostics& diags, sources::SpecList& out) const override {
    auto buses = compileBuses(cfg, diags);
    validateCommands(cfg, buses, diags);
    // compileBuses() makes one BusSpec per modbus_bus, in order.
    for (std::size_t i = 0; i < buses.size() && i < static_cast<std::size_t>(cfg.config.modbus_bus_size()); ++i) {
      const pb::ModbusBus& bus = cfg.config.modbus_bus(static_cast<int>(i));
      auto spec = std::make_shared<BusSourceSpec>();
      spec->kind = kKindName;
      spec->name = bus.name();
      spec->fingerprint = busFingerprint(cfg, bus);
      spec->busesConfigured = buses.size();
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
        spec->devices.push_back(std::move(d));
      }
      spec->bus = std::move(buses[i]);
      out.push_back(std::move(spec));
    }
  }

  bool unchanged(const sources::SourceSpec& running, const sources::SourceSpec& next) const override {
    return static_cast<const BusSourceSpec&>(running).fingerprint ==
           static_cast<const BusSourceSpec&>(next).fingerprint;
  }

  void namedFiles(const config::LoadedConfig& cfg, std::vector<std::string>& out) const override {
    for (const auto& bus : cfg.config.modbus_bus()) {
      if (bus.has_rtu()) out.push_back(bus.rtu().device());
    }
  }

  std::string checkPorts(const sources::SourceSpec& next, const sources::SourceSpec*,
                         const config::ReadPolicy& policy) const override {
    const BusSpec& bus = static_cast<const BusSourceSpec&>(next).bus;
    if (bus.kind != BusSpec::Kind::Rtu) return {};
    const std::string& device = bus.config.rtu().device();
    // Serial ports live in /dev; anywhere else, only where the policy allows (no probing).
    std::string why = config::absolutePath(device).starts_with("/dev/") ? std::string() : policy.check(device);
    if (why.empty()) why = sources::checkSerialPort(device);
    if (why.empty()) return {};
    return "bus '" + bus.name + "': " + why;
  }

  std::shared_ptr<sources::Source> make(std::shared_ptr<const sources::SourceSpec> spec,
                                        const sources::SourceContext& context) const override {
    auto busSpec = std::static_pointer_cast<const BusSourceSpec>(std::move(spec));
    auto bus =
        std::make_shared<BusSource>(context.executor, *context.clock, busSpec->bus, makeTransport(busSpec->bus.config),
                                    context.submit, context.accepting, context.logger("modbus"));
    return std::make_shared<ModbusSource>(context.executor, std::move(busSpec), std::move(bus));
  }
};

}  // namespace

ModbusSource::ModbusSource(boost::asio::any_io_executor executor, std::shared_ptr<const BusSourceSpec> spec,
                           std::shared_ptr<BusSource> bus)
    : spec_(std::move(spec)), bus_(std::move(bus)), executor_(std::move(executor)) {}

Status ModbusSource::prepare() {
  if (auto st = bus_->prepare(); !st) {
    return Error{"bus '" + spec_->name + "': " + st.error() + " (" + std::to_string(spec_->busesConfigured) +
                 " bus(es) configured, one thread each)"};
  }
  return Ok{};
}

Status ModbusSource::start() {
  if (auto st = bus_->start(); !st) return Error{"bus '" + spec_->name + "': " + st.error()};
  return Ok{};
}

void ModbusSource::stop(std::function<void()> done) {
  // `done` runs on the executor once the bus worker's thread has ended (after its transaction in
  // progress); the executor never waits for it.
  bus_->stop(std::move(done));
}

void ModbusSource::fillHealth(pb::GatewayHealth& health) const {
  bus_->fillHealth(*health.mutable_devices());
  auto* link = health.add_buses();
  *link = bus_->linkHealth();
  link->set_name(spec_->bus.name);
  link->set_transport(describeBus(spec_->bus.config));
  auto& ctr = *health.mutable_counters();
  const auto& bc = bus_->counters();
  ctr["modbus_polls_skipped"] += bc.skipped;
  ctr["modbus_polls_blocked"] += bc.blocked;
  ctr["modbus_read_splits"] += bc.splits;
  ctr["modbus_answers_discarded"] += bc.discarded;
}

std::unique_ptr<sources::SourceKind> makeSourceKind() {
  return std::make_unique<ModbusKind>();
}

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

}  // namespace citygate::modbus
