// Source: one input of the gateway (a Modbus bus, the LoRa packet forwarder, ...) as the gateway,
// its configuration changes and the control socket see it. Each kind implements it in its own
// folder (inputs/<kind>/kind.*) and registers a SourceKind (sources/kind.hpp) in app/sources.cpp.
//
// Threading: every call on the executor. Failure: start() returns an error and leaves nothing
// running; stop() cannot fail.
//
// Ad-hoc requests (`modbus read`, `modbus scan`, ...): the control handlers find a source by kind
// and name (ControlTarget::findSource) and only the handler of that kind casts it to its concrete
// class (modbus::ModbusSource); nothing else knows the concrete classes.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "citygate/v1/control.pb.h"
#include "citygate/v1/status.pb.h"
#include "core/normaliser.hpp"
#include "core/result.hpp"

namespace spdlog {
class logger;
}
namespace citygate::core {
class Clock;
}

namespace citygate::sources {

// One source's validated settings, as its kind compiled them from the configuration. Kinds derive
// from it to carry their compiled form (modbus::BusSourceSpec, lora::LoraSourceSpec).
struct SourceSpec {
  virtual ~SourceSpec() = default;
  std::string kind;  // its SourceKind's name: "modbus", "lora"
  std::string name;  // unique among a configuration's sources: the bus name, "lora"
  // The static part of `citygatectl devices` for each of its devices (id, kind, profile,
  // transport, ...), in configuration order; the handlers add health and the latest readings.
  std::vector<citygate::v1::DeviceInfo> devices;
  // Every device's compiled sensor (its points: what it can report), e.g. for Sparkplug's DBIRTH.
  virtual void sensors(std::vector<std::shared_ptr<const core::SensorSpec>>& out) const { (void)out; }
};

// What the gateway hands every source it makes.
struct SourceContext {
  using Submit = std::function<void(const core::SensorSpec&, core::SensorMemory&, core::RawSample&&)>;
  using Accepting = std::function<bool()>;

  boost::asio::any_io_executor executor;
  core::Clock* clock = nullptr;  // the gateway's clock (never null when the gateway makes a source)
  Submit submit;                 // every sample, into the pipeline
  Accepting accepting;           // false while the pipeline asks sources to pause (BLOCK_SOURCES)
  std::function<std::shared_ptr<spdlog::logger>(const std::string& component)> logger;
};

class Source {
 public:
  virtual ~Source() = default;

  virtual const SourceSpec& spec() const = 0;
  const std::string& kind() const { return spec().kind; }
  const std::string& name() const { return spec().name; }

  // What may fail without I/O (a worker thread the system refuses); nothing is polled yet. Called
  // for every new source of a start or a configuration change before any running source is
  // touched. On an error nothing runs, and stop() is still safe.
  virtual Status prepare() { return Ok{}; }
  // prepare() if not done, then runs (binds, polls). An error leaves nothing running.
  virtual Status start() = 0;
  // Stops: no sample is submitted after `done`. `done` is called on the executor, never inline,
  // once the source has released what it holds (ports, threads); a source must not block the
  // executor to get there.
  virtual void stop(std::function<void()> done) = 0;

  // Adds its devices' health (GatewayHealth.devices), its kind's sections (GatewayHealth.lora)
  // and counters (added to, so several sources of a kind sum up).
  virtual void fillHealth(citygate::v1::GatewayHealth& health) const = 0;
  // `citygatectl devices`: its devices' static part (health and readings are the handlers').
  virtual void listDevices(std::vector<citygate::v1::DeviceInfo>& out) const {
    out.insert(out.end(), spec().devices.begin(), spec().devices.end());
  }
};

}  // namespace citygate::sources
