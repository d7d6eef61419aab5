// The Modbus kind of source (sources/kind.hpp): one source per `modbus_bus`, named after the bus.
// ModbusSource wraps a BusSource for the gateway and the control socket; the Modbus handlers of
// the control socket (control/modbus_handlers.cpp) reach its BusSource for ad-hoc reads.
#pragma once

#include <memory>
#include <string>

#include "inputs/modbus/spec.hpp"
#include "sources/kind.hpp"

namespace citygate::modbus {

class BusSource;

inline constexpr const char* kKindName = "modbus";

struct BusSourceSpec : sources::SourceSpec {
  BusSpec bus;
  // Everything a running bus depends on: its settings and devices, the profiles they use and the
  // gateway location a device without its own inherits (equal: the bus can keep running).
  std::string fingerprint;
  std::size_t busesConfigured = 0;  // in its configuration (a refused worker thread says how many)
  void sensors(std::vector<std::shared_ptr<const core::SensorSpec>>& out) const override {
    for (const auto& d : bus.devices) out.push_back(d.sensor);
  }
};

class ModbusSource final : public sources::Source {
 public:
  ModbusSource(boost::asio::any_io_executor executor, std::shared_ptr<const BusSourceSpec> spec,
               std::shared_ptr<BusSource> bus);

  const sources::SourceSpec& spec() const override { return *spec_; }
  Status prepare() override;
  Status start() override;
  void stop(std::function<void()> done) override;
  void fillHealth(citygate::v1::GatewayHealth& health) const override;

  const BusSpec& busSpec() const { return spec_->bus; }
  BusSource& bus() const { return *bus_; }

 private:
  std::shared_ptr<const BusSourceSpec> spec_;
  std::shared_ptr<BusSource> bus_;
  boost::asio::any_io_executor executor_;
};

std::unique_ptr<sources::SourceKind> makeSourceKind();

// "tcp 10.0.0.5:502", "rtu /dev/ttyS1 9600 8N1": a bus's transport as `devices` and `modbus read`
// show it.
std::string describeBus(const citygate::v1::ModbusBus& bus);

}  // namespace citygate::modbus
