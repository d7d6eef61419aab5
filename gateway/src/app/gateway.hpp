// Gateway: the composition root of the running daemon. It builds the object graph from a validated
// configuration (spool, seq store, MQTT session and readings sink, pipeline, the sources through
// the SourceRegistry) and implements control::ControlTarget. Its other parts are in their own
// files: the health report (app/health.cpp), configuration changes (app/apply.cpp); the sources'
// kinds are registered in app/sources.cpp. Everything lives on the one executor; blocking work is
// on the bus workers, the spool's sync worker and the configuration check's helper thread.
#pragma once

#include <boost/asio/io_context.hpp>
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
#include "commands/service.hpp"
#include "control/control_target.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "core/time.hpp"

namespace spdlog {
class logger;
}

namespace citygate::core {
class Clock;
class ClockSyncMonitor;
class ClockSyncSource;
struct ClockSyncStatus;
enum class ClockSyncState : std::uint8_t;
class Pipeline;
class SeqStore;
class Spool;
}  // namespace citygate::core
namespace citygate::mqtt {
class Session;
class ReadingsSink;
}  // namespace citygate::mqtt
namespace citygate::sparkplug {
class BdSeq;
class EdgeNode;
}  // namespace citygate::sparkplug
namespace citygate::platform {
class Logging;
}
namespace citygate::spool {
class FileSpool;
}

namespace citygate::app {

class Gateway : public control::ControlTarget, public commands::Daemon, public std::enable_shared_from_this<Gateway> {
 public:
  // `registry`: the kinds of source (sourceRegistry(), or a test's); it must outlive the Gateway
  // and be the one `config` was validated with.
  Gateway(boost::asio::io_context& ioc, platform::Logging& logging, std::unique_ptr<ValidatedConfig> config,
          std::string version, const sources::SourceRegistry& registry = sourceRegistry());
  ~Gateway() override;

  Status start();
  // Stops every source (asynchronously: each calls back when it is done), then the pipeline and
  // the MQTT session; `done` on the executor.
  void stop(std::function<void()> done);
  // After the executor has stopped: ends the threads that post into it (Paho's callbacks) and
  // destroys the pipeline and the spool (their timers) while the io_context is still alive.
  void release();

  citygate::v1::GatewayHealth health() const override;
  // The daemon's one clock (steady_clock, system_clock, timers on the executor), for every component.
  core::Clock& clock() { return clock_; }
  const ValidatedConfig& config() const { return *config_; }
  const config::LoadedConfig& loadedConfig() const override { return config_->loaded; }
  const std::string& bootId() const override { return bootId_; }

  using ApplyOutcome = control::ApplyOutcome;  // control/control_target.hpp

  // Replaces the running configuration by `text` (or, without text, the file at `path`), or only
  // plans it (`dryRun`, for `config diff`). Validation, the plan and the checks that need I/O (new
  // serial ports open, a new LoRa port is free) run on a helper thread; the swap runs on the
  // executor (app/apply.cpp): unchanged sources keep running untouched; the new sources of added
  // and changed ones are prepared first (a refused thread fails the change with nothing touched),
  // then the removed and changed ones stop, and once all have stopped the new ones start; if one
  // cannot start (a port taken meanwhile), the new ones stop and the old ones are made and started
  // again from the running configuration (Failed, rolled back). Spool, seq numbering, pipeline
  // and the MQTT session are never touched; settings that would need them to restart are Refused.
  // One change at a time (Busy). `done` is called on the executor.
  void applyConfig(std::string path, std::optional<std::string> text, bool dryRun, ApplyDone done) override;
  // The same, and the applied text saved to configFile() (control_target.hpp; config/config_file.hpp).
  void applyAndSave(std::string path, std::string text, ApplyDone done) override;
  // The --config file the daemon was started with: the first configuration's path.
  const std::string& configFile() const override { return configFile_; }

  // Every reading as the pipeline numbers it (one tap: the control socket's).
  void setReadingTap(ReadingTap tap) override;
  // `mqtt reconnect` (app/health.cpp).
  std::optional<citygate::v1::MqttReconnectResponse> reconnectMqtt() override;
  // Writes, platform commands and their audit (commands/service.hpp).
  commands::Service* commands() override { return commands_.get(); }
  // Where the clock's synchronisation comes from (core/clock_sync.hpp): the kernel's
  // (KernelClockSync) unless a test sets another before start().
  void setClockSyncSource(std::unique_ptr<core::ClockSyncSource> source);

  // Adds entries to every health report (the control socket's counters).
  void setHealthExtension(std::function<void(citygate::v1::GatewayHealth&)> extension);

  const std::vector<std::shared_ptr<sources::Source>>& sources() const override { return sources_; }
  void refill(const citygate::v1::Refill& refill, std::function<void(citygate::v1::CommandResult)> done) override;
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
  struct Swap;

  sources::SourceContext sourceContext();
  // ACK_DRIVEN: the storage's spool behind a young tier in runtime_dir; the storage's alone (as
  // STRICT) when runtime_dir cannot be used.
  std::unique_ptr<core::Spool> openTiered(std::unique_ptr<spool::FileSpool> durable,
                                          const std::shared_ptr<spdlog::logger>& log);
  std::shared_ptr<sources::Source> makeSource(const std::shared_ptr<const sources::SourceSpec>& spec);
  void startSparkplug();
  void stopSources(std::vector<std::shared_ptr<sources::Source>> sources, std::function<void()> done);
  void change(std::string path, std::optional<std::string> text, bool dryRun, bool save, ApplyDone done);
  void onApplyChecked(bool dryRun, const ApplyDone& done, const std::shared_ptr<ApplyCheck>& check);
  // Puts a prepared save in place (`commit`) or drops it, off the executor; then `answer`.
  void finishSave(const std::shared_ptr<ApplyCheck>& check, bool commit, ApplyOutcome o,
                  std::function<void(ApplyOutcome)> answer);
  void onSaveFinished(ApplyOutcome o);
  void swapIn(std::unique_ptr<ValidatedConfig> next, ConfigPlan plan, std::function<void(ApplyOutcome)> done);
  void onOldStopped(const std::shared_ptr<Swap>& swap);
  void onSwapFailed(const std::shared_ptr<Swap>& swap);
  void finishSwap(const std::shared_ptr<Swap>& swap);
  void applyLiveSettings(const ValidatedConfig& next, const ConfigPlan& plan);
  void scheduleHealth();
  void notifyState();
  void onHealthTimer();
  void onClockSync(const core::ClockSyncStatus& now, std::optional<core::ClockSyncState> before);

  boost::asio::io_context& ioc_;
  platform::Logging& logging_;
  const sources::SourceRegistry& registry_;
  core::SystemClock clock_;  // every component's time and timers
  std::unique_ptr<ValidatedConfig> config_;
  std::string configFile_;  // the --config file (SIGHUP, restart, config apply --save)
  std::string version_;
  std::string bootId_;
  WallTime startedAt_;
  SteadyTime startedSteady_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::Spool> spool_;
  std::unique_ptr<core::SeqStore> seq_;
  bool sameBoot_ = false;                         // runtime_dir was written on this boot: an unclean stop lost nothing
  std::shared_ptr<mqtt::Session> mqtt_;           // the broker link; its clients below
  std::shared_ptr<mqtt::ReadingsSink> readings_;  // mqtt.format NATIVE
  std::shared_ptr<sparkplug::BdSeq> bdSeq_;       // mqtt.format SPARKPLUG_B: the will's bdSeq
  std::shared_ptr<sparkplug::EdgeNode> sparkplug_;  //   and the edge node (the sink)
  std::shared_ptr<commands::Service> commands_;     // after the session: it subscribes to .../cmd
  std::shared_ptr<core::Pipeline> pipeline_;
  std::vector<std::shared_ptr<sources::Source>> sources_;  // in the order of config_->sources
  std::unique_ptr<core::Timer> healthTimer_;
  std::unique_ptr<core::ClockSyncSource> clockSource_;
  std::unique_ptr<core::ClockSyncMonitor> clockSync_;
  bool stopping_ = false;
  WallTime configLoadedAt_;
  std::uint64_t generation_ = 1;
  bool applying_ = false;
  std::thread applyThread_;
  std::function<void(ApplyOutcome)> saveAnswer_;  // a save being put in place (finishSave)
  bool saveCommitted_ = false;
  std::function<void(citygate::v1::GatewayHealth&)> healthExtension_;
  std::uint64_t seqRecovered_ = 0;  // the seq file was damaged at start and recovered
  std::string lastStatusText_;
};

}  // namespace citygate::app
