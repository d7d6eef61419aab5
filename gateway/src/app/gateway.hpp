// Gateway: the running daemon's object graph, built from a validated configuration: spool, seq
// store, MQTT output, pipeline, sources and the periodic health report. Everything lives on the
// one executor; blocking work is on the bus workers and the spool's sync worker.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/validate.hpp"
#include "citygate/v1/status.pb.h"
#include "core/result.hpp"
#include "core/time.hpp"

namespace spdlog {
class logger;
}

namespace citygate::core {
class Pipeline;
class SeqStore;
}  // namespace citygate::core
namespace citygate::spool {
class Spool;
}
namespace citygate::mqtt {
class MqttOutput;
}
namespace citygate::modbus {
class BusSource;
}
namespace citygate::lora {
class LoraSource;
}
namespace citygate::platform {
class Logging;
}

namespace citygate::app {

class Gateway : public std::enable_shared_from_this<Gateway> {
 public:
  Gateway(boost::asio::io_context& ioc, platform::Logging& logging, std::unique_ptr<ValidatedConfig> config,
          std::string version);
  ~Gateway();

  Status start();
  void stop(std::function<void()> done);

  citygate::v1::GatewayHealth health() const;
  const ValidatedConfig& config() const { return *config_; }
  const std::string& bootId() const { return bootId_; }

 private:
  void scheduleHealth();
  void onHealthTimer(const boost::system::error_code& ec);

  boost::asio::io_context& ioc_;
  platform::Logging& logging_;
  std::unique_ptr<ValidatedConfig> config_;
  std::string version_;
  std::string bootId_;
  WallTime startedAt_;
  SteadyTime startedSteady_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<spool::Spool> spool_;
  std::unique_ptr<core::SeqStore> seq_;
  std::shared_ptr<mqtt::MqttOutput> mqtt_;
  std::shared_ptr<core::Pipeline> pipeline_;
  std::vector<std::shared_ptr<modbus::BusSource>> buses_;
  std::shared_ptr<lora::LoraSource> lora_;  // when the config has a lora block
  boost::asio::steady_timer healthTimer_;
  bool stopping_ = false;
};

std::string randomHex(std::size_t bytes);
std::uint64_t currentRssBytes();

}  // namespace citygate::app
