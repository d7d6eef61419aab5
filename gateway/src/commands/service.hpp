// Service: the one way back to the devices. Every write (a technician's `citygatectl modbus
// write`, the platform's Command on <prefix>/<gateway_id>/cmd) and every platform downlink goes
// through it: the configuration's allow-list (GatewayConfig.commands), the profile's writable
// range and type (inputs/modbus/write.hpp), the per-device rate limit, the bus's bounded queue of
// writes (a write goes before the next poll, never inside a transaction), the read-back, and the
// audit trail (audit.hpp) that records each command and each of its results.
//
// Platform commands (off unless `commands { enabled: true platform: true }`): the service
// subscribes to .../cmd at QoS 1 and answers on .../cmd/result (QoS 1) with a CommandResult:
// ACCEPTED once a write is queued on its bus (a downlink: queued for the device's next uplink),
// then DONE (written, read back: `write.holds`), FAILED (the device did not take it) or REFUSED
// with its reason; EXPIRED past the command's expires_at. A malformed command is counted (and
// answered REFUSED BAD_COMMAND when it has a readable request id); a request id seen among the
// last `dedupe_window` commands is answered REFUSED DUPLICATE_REQUEST and not carried out again.
// A result that cannot be published (no link) is not retried: the audit record carries it.
//
// Threading: executor only; time from the injected Clock.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "citygate/v1/commands.pb.h"
#include "citygate/v1/control.pb.h"
#include "commands/audit.hpp"
#include "commands/command.hpp"
#include "config/loader.hpp"
#include "core/clock.hpp"
#include "sources/source.hpp"

namespace spdlog {
class logger;
}

namespace citygate::mqtt {
class Session;
}

namespace citygate::modbus {
class RateLimiter;
struct JobResult;
}  // namespace citygate::modbus

namespace citygate::commands {

// What the service needs of the running daemon (app::Gateway implements it).
class Daemon {
 public:
  virtual const config::LoadedConfig& loadedConfig() const = 0;
  virtual const std::vector<std::shared_ptr<sources::Source>>& sources() const = 0;
  // A platform's Refill: `done` gets ACCEPTED (with what will be resent) and then DONE or FAILED,
  // or REFUSED (REFILL_UNAVAILABLE) at once; on the executor.
  virtual void refill(const pb::Refill& refill, std::function<void(pb::CommandResult)> done) = 0;

 protected:
  ~Daemon() = default;
};

struct CommandStats {
  std::uint64_t received = 0;    // messages on .../cmd
  std::uint64_t malformed = 0;   // not a valid Command (BAD_COMMAND)
  std::uint64_t duplicates = 0;  // DUPLICATE_REQUEST
  std::uint64_t expired = 0;
  std::uint64_t refused = 0;  // every other refusal
  std::uint64_t accepted = 0;
  std::uint64_t done = 0;    // written and read back (holds or not)
  std::uint64_t failed = 0;  // the device did not take the write
  std::uint64_t resultsPublished = 0;
  std::uint64_t resultsNotPublished = 0;  // no link: the audit has them
  bool subscribed = false;                // platform commands are on
};

class Service : public std::enable_shared_from_this<Service> {
 public:
  using WriteDone = std::function<void(pb::WriteOutcome)>;

  // `session` may be null (no platform commands, audit kept in its spool).
  Service(boost::asio::any_io_executor executor, Daemon& daemon, core::Clock& clock, std::unique_ptr<AuditTrail> audit,
          std::shared_ptr<mqtt::Session> session, std::shared_ptr<spdlog::logger> log);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  void start();  // the audit's delivery, and configure()
  void stop();   // no more commands; writes on the bus still finish (unanswered); audit closed
  // Follows the running configuration (start, and after every change): subscribes to or leaves
  // .../cmd, resizes the memory of request ids.
  void configure();

  // `citygatectl modbus write` (origin: who asks, for the log and the audit). `done` is called
  // once, with a refusal or with what was written and read back. Dry runs are not audited.
  void modbusWrite(const pb::ModbusWriteRequest& request, std::string origin, WriteDone done);

  // One message from .../cmd (the subscription's handler; tests call it directly).
  void onCommand(std::string_view payload);
  // A command from another channel (a Sparkplug DCMD write): the checks and the audit of a
  // platform command (dedupe, expiry, commands { enabled platform }, allow-list, rate limit), with
  // no answer on .../cmd/result (the channel has its own: the read-back value in the next data).
  void submit(pb::Command command);

  const CommandStats& stats() const { return stats_; }
  AuditStats auditStats() const { return audit_->stats(); }

 private:
  struct Write;

  void startWrite(const std::shared_ptr<Write>& w);
  void onBusDone(const std::shared_ptr<Write>& w, modbus::JobResult&& result);
  void finishWrite(const std::shared_ptr<Write>& w, pb::WriteOutcome outcome);
  // A decoded command; `reply`: answer on .../cmd/result (else the audit only).
  void execute(const pb::Command& command, bool reply);
  void commandWrite(const pb::Command& command, bool reply);
  void commandDownlink(const pb::Command& command);
  void commandRefill(const pb::Command& command);
  // The per-device rate limit (commands.rate_limit): nullopt when `device` may go on, else why not.
  std::optional<std::string> takeRate(const std::string& device, const char* what);
  // Publishes `result` for `command` on .../cmd/result (`platform`) and audits it.
  void answer(const pb::Command& command, pb::CommandResult result, bool platform, const std::string& origin,
              const std::string& bus = {}, std::uint32_t unit = 0);
  pb::CommandResult::Status statusOf(const pb::WriteOutcome& o) const;

  boost::asio::any_io_executor executor_;
  Daemon& daemon_;
  core::Clock& clock_;
  std::unique_ptr<AuditTrail> audit_;
  std::shared_ptr<mqtt::Session> session_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<modbus::RateLimiter> limiter_;
  std::pair<std::uint32_t, std::uint32_t> limit_{0, 0};
  RecentIds recent_{kDefaultDedupeWindow};
  std::optional<std::uint64_t> subscription_;
  std::string resultTopic_;
  std::uint64_t cliWrites_ = 0;  // numbers the cabinet's writes in the audit ("cli-<boot>-<n>")
  bool stopped_ = false;
  CommandStats stats_;
};

}  // namespace citygate::commands
