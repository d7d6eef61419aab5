// Gateway: the running daemon's object graph, built from a validated configuration: spool, seq
// store, MQTT output, pipeline, sources and the periodic health report. Everything lives on the
// one executor; blocking work is on the bus workers and the spool's sync worker.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "app/validate.hpp"
#include "citygate/v1/status.pb.h"
#include "control/control_target.hpp"
#include "core/result.hpp"
#include "core/stop_tracker.hpp"
#include "core/time.hpp"

namespace spdlog {
class logger;
}

namespace citygate::core {
class Pipeline;
class SeqStore;
class Spool;
}  // namespace citygate::core
namespace citygate::mqtt {
class Session;
class ReadingsSink;
}  // namespace citygate::mqtt
namespace citygate::modbus {
class BusSource;
struct BusSpec;
}  // namespace citygate::modbus
namespace citygate::lora {
class LoraSource;
struct LoraSpec;
}  // namespace citygate::lora
namespace citygate::platform {
class Logging;
}

namespace citygate::app {

class Gateway : public control::ControlTarget, public std::enable_shared_from_this<Gateway> {
 public:
  Gateway(boost::asio::io_context& ioc, platform::Logging& logging, std::unique_ptr<ValidatedConfig> config,
          std::string version);
  ~Gateway() override;

  Status start();
  void stop(std::function<void()> done);
  // After the executor has stopped: ends the threads that post into it (Paho's callbacks).
  void release();

  citygate::v1::GatewayHealth health() const override;
  const ValidatedConfig& config() const { return *config_; }
  const config::LoadedConfig& loadedConfig() const override { return config_->loaded; }
  const std::string& bootId() const override { return bootId_; }

  // ---- run-time configuration changes and the control socket (issue 6) ----
  using ApplyOutcome = control::ApplyOutcome;  // control/control_target.hpp

  // Replaces the running configuration by `text` (or, without text, the file at `path`), or only
  // plans it (`dryRun`, for `config diff`). Validation, the plan and the checks that need I/O (new
  // serial ports open, a new LoRa port is free) run on a helper thread; the swap runs on the
  // executor: unchanged buses keep running untouched, changed and added buses start, removed ones
  // stop; the LoRa source is replaced when it changed, and put back when the new one cannot start
  // (Failed, rolled back). Spool, seq numbering, pipeline and the MQTT session are never touched;
  // settings that would need them to restart are Refused. One change at a time (Busy). `done` is
  // called on the executor.
  void applyConfig(std::string path, std::optional<std::string> text, bool dryRun, ApplyDone done) override;

  // Every reading as the pipeline numbers it (one tap: the control socket's).
  void setReadingTap(ReadingTap tap) override;
  // Adds entries to every health report (the control socket's counters).
  void setHealthExtension(std::function<void(citygate::v1::GatewayHealth&)> extension);

  const std::vector<std::shared_ptr<modbus::BusSource>>& buses() const override { return buses_; }
  std::shared_ptr<modbus::BusSource> bus(const std::string& name) const override;
  const lora::LoraSource* loraSource() const { return lora_.get(); }
  platform::Logging& logging() override { return logging_; }
  const std::string& version() const override { return version_; }
  WallTime startedAt() const override { return startedAt_; }
  WallTime configLoadedAt() const override { return configLoadedAt_; }
  std::uint64_t configGeneration() const override { return generation_; }
  std::uint64_t nextSeq() const;
  bool stopping() const override { return stopping_; }
  // One line for systemd's STATUS=: "running", or what is wrong with the spool.
  std::string statusText() const;

 private:
  struct ApplyCheck;

  std::shared_ptr<modbus::BusSource> makeBus(const modbus::BusSpec& spec);
  std::shared_ptr<lora::LoraSource> makeLora(const lora::LoraSpec& spec);
  void onApplyChecked(bool dryRun, const ApplyDone& done, const std::shared_ptr<ApplyCheck>& check);
  ApplyOutcome swapIn(std::unique_ptr<ValidatedConfig> next, ConfigPlan plan);
  void applyLiveSettings(const ValidatedConfig& next, const ConfigPlan& plan);
  void scheduleHealth();
  void notifyState();
  void onHealthTimer(const boost::system::error_code& ec);

  boost::asio::io_context& ioc_;
  platform::Logging& logging_;
  std::unique_ptr<ValidatedConfig> config_;
  std::string version_;
  std::string bootId_;
  WallTime startedAt_;
  SteadyTime startedSteady_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::Spool> spool_;
  std::unique_ptr<core::SeqStore> seq_;
  std::shared_ptr<mqtt::Session> mqtt_;  // the broker link; its clients below
  std::shared_ptr<mqtt::ReadingsSink> readings_;
  std::shared_ptr<core::Pipeline> pipeline_;
  std::vector<std::shared_ptr<modbus::BusSource>> buses_;
  core::StopTracker busThreads_;            // stopped buses whose worker is still finishing (stop() waits)
  std::shared_ptr<lora::LoraSource> lora_;  // when the config has a lora block
  boost::asio::steady_timer healthTimer_;
  bool stopping_ = false;
  // issue 6: run-time configuration changes, control socket hooks
  WallTime configLoadedAt_;
  std::uint64_t generation_ = 1;
  bool applying_ = false;
  std::thread applyThread_;
  std::function<void(citygate::v1::GatewayHealth&)> healthExtension_;
  // issue 12
  std::uint64_t seqRecovered_ = 0;  // the seq file was damaged at start and recovered
  std::string lastStatusText_;
};

std::string randomHex(std::size_t bytes);
std::uint64_t currentRssBytes();

}  // namespace citygate::app
