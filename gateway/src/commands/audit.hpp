// AuditTrail: every command (from the platform or the cabinet) and each of its results, as an
// AuditRecord numbered by a seq of its own, kept in a spool of its own (state_dir/audit: a
// FileSpool, the readings' format and guarantees) and published on <prefix>/<gateway_id>/audit at
// QoS 1 by the same fan-out as readings, one record per message. A broker outage or a restart
// loses no record: it leaves the spool only once the broker has acknowledged it. Every record is
// also one line of the `audit` logger.
//
// When the directory cannot be used the trail keeps its records in memory (bounded, 1 MiB) and
// says so (stats().durable false, an error in the log); a record that cannot be stored at all is
// counted (lost) and its log line is what remains of it.
//
// Threading: executor only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "citygate/v1/commands.pb.h"
#include "core/clock.hpp"
#include "core/fanout.hpp"
#include "core/spool.hpp"

namespace spdlog {
class logger;
}

namespace citygate::mqtt {
class ReadingsSink;
class Session;
}  // namespace citygate::mqtt

namespace citygate::commands {

namespace pb = citygate::v1;

struct AuditOptions {
  std::string dir;                      // state_dir/audit
  std::uint64_t maxBytes = 4ULL << 20;  // then the oldest records go (counted)
  std::string gatewayId;
  std::string bootId;
};

struct AuditStats {
  std::uint64_t recorded = 0;  // records stored since start
  std::uint64_t lost = 0;      // records that could not be stored (logged)
  std::uint64_t pending = 0;   // stored, not yet acknowledged by the broker
  std::uint64_t dropped = 0;   // dropped by the spool when full (oldest first)
  std::uint64_t nextSeq = 0;
  bool durable = false;  // false: the records are in memory only (the directory failed)
  std::string lastError;
};

class AuditTrail {
 public:
  // Opens (recovers) the audit spool: blocking, at start. `session` may be null (no broker: the
  // records wait in the spool).
  AuditTrail(boost::asio::any_io_executor executor, core::Clock& clock, AuditOptions options,
             std::shared_ptr<mqtt::Session> session, std::shared_ptr<spdlog::logger> log);
  ~AuditTrail();
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  void start();
  void stop();  // flushes and closes the spool

  // Numbers `record` (seq, gateway, boot, time), stores it and logs it; returns its seq (0 when it
  // could not be stored).
  std::uint64_t record(pb::AuditRecord record);

  AuditStats stats() const;

 private:
  void pump();

  core::Clock& clock_;
  AuditOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::Spool> spool_;
  std::shared_ptr<mqtt::ReadingsSink> sink_;
  std::unique_ptr<core::SinkFanout> fanout_;
  std::uint64_t nextSeq_ = 1;
  bool durable_ = false;
  bool stopped_ = false;
  std::uint64_t recorded_ = 0;
  std::uint64_t lost_ = 0;
  std::string lastError_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace citygate::commands
