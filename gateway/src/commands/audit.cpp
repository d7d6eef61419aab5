#include "commands/audit.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/time.hpp"
#include "outputs/mqtt/readings_sink.hpp"
#include "outputs/mqtt/session.hpp"
#include "spool/file_spool.hpp"
#include "spool/memory_spool.hpp"

namespace citygate::commands {

namespace {

constexpr std::uint64_t kMemoryBytes = 1ULL << 20;

// One line per record: what was asked, by whom, and what became of it. No payload bytes.
std::string summary(const pb::AuditRecord& r) {
  const auto& c = r.command();
  const auto& res = r.result();
  std::string what;
  if (c.has_write()) {
    const auto& w = c.write();
    what = "write " +
           (w.point().empty() ? pb::RegisterTable_Name(w.table()) + " " + std::to_string(w.address()) : w.point()) +
           " = " + fmt::format("{}", w.value());
  } else if (c.has_downlink()) {
    what = "downlink of " + std::to_string(c.downlink().payload().size()) + " bytes on port " +
           std::to_string(c.downlink().f_port());
  } else {
    what = "command";
  }
  std::string line =
      fmt::format("audit seq {}: {} '{}' {} to '{}' by {}: {}", r.seq(), c.request_id().empty() ? "-" : "request",
                  c.request_id(), what, c.device(), r.origin(), pb::CommandResult::Status_Name(res.status()));
  if (res.refusal() != pb::WRITE_REFUSAL_UNSPECIFIED) line += " (" + pb::WriteRefusal_Name(res.refusal()) + ")";
  if (!res.detail().empty()) line += ": " + res.detail();
  return line;
}

}  // namespace

AuditTrail::AuditTrail(boost::asio::any_io_executor executor, core::Clock& clock, AuditOptions options,
                       std::shared_ptr<mqtt::Session> session, std::shared_ptr<spdlog::logger> log)
    : clock_(clock), options_(std::move(options)), log_(std::move(log)) {
  spool::FileSpoolOptions so;
  so.dir = options_.dir;
  so.maxBytes = options_.maxBytes;
  so.segmentBytes = std::max<std::uint64_t>(options_.maxBytes / 8, 4096);
  so.whenFull = pb::SpoolConfig::DROP_OLDEST;
  auto opened = spool::FileSpool::open(executor, so, log_);
  if (opened) {
    spool_ = std::move(opened).value();
    durable_ = true;
  } else {
    lastError_ = opened.error();
    log_->error(
        "the audit spool {} cannot be used ({}): audit records are kept in memory only (at most {} bytes) "
        "until the broker has them; a restart loses those",
        options_.dir, lastError_, kMemoryBytes);
    spool_ = std::make_unique<spool::MemorySpool>(kMemoryBytes, pb::SpoolConfig::DROP_OLDEST);
  }
  nextSeq_ = std::max<std::uint64_t>(1, spool_->recoveredNextSeq());
  std::vector<core::Sink*> sinks;
  if (session) {
    sink_ = mqtt::ReadingsSink::create(std::move(session), "audit", mqtt::ReadingsSink::Framing::EachRecord);
    sinks.push_back(sink_.get());
  }
  core::FanoutOptions fo;
  fo.maxBatchReadings = 1;  // one AuditRecord per message
  fo.maxBatchDelay = std::chrono::milliseconds(0);
  fo.maxInflightBatches = 16;
  if (!sinks.empty()) fanout_ = std::make_unique<core::SinkFanout>(clock_, fo, *spool_, std::move(sinks), log_);
}

AuditTrail::~AuditTrail() {
  stop();
}

void AuditTrail::start() {
  if (!fanout_) return;  // no broker: the records wait in the spool
  std::weak_ptr<int> alive = alive_;
  fanout_->start([this, alive] {
    if (alive.lock()) pump();
  });
  spool_->setReadableCallback([this, alive] {
    if (alive.lock()) pump();
  });
  pump();
}

void AuditTrail::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (fanout_) fanout_->stop();
  spool_->setReadableCallback({});
  spool_->close();
}

void AuditTrail::pump() {
  if (!stopped_ && fanout_) fanout_->pump();
}

std::uint64_t AuditTrail::record(pb::AuditRecord record) {
  const std::uint64_t seq = nextSeq_;
  record.set_seq(seq);
  record.set_gateway_id(options_.gatewayId);
  record.set_boot_id(options_.bootId);
  toTimestamp(clock_.wallNow(), record.mutable_at());
  const std::string line = summary(record);
  if (stopped_) {
    ++lost_;
    log_->error("{} (not stored: the audit trail is stopped)", line);
    return 0;
  }
  const std::string bytes = record.SerializeAsString();
  switch (spool_->append(seq, bytes)) {
    case core::AppendResult::Ok:
    case core::AppendResult::OkDroppedOldest:
      ++nextSeq_;
      ++recorded_;
      log_->info("{}", line);
      if (fanout_) fanout_->numbered(seq, clock_.steadyNow());
      pump();
      return seq;
    case core::AppendResult::Full:
    case core::AppendResult::Error:
    case core::AppendResult::Refused:
      break;
  }
  ++lost_;
  lastError_ = spool_->stats().lastError;
  log_->error("{} (not stored in the audit spool: {})", line, lastError_.empty() ? "full" : lastError_);
  return 0;
}

AuditStats AuditTrail::stats() const {
  const auto s = spool_->stats();
  AuditStats a;
  a.recorded = recorded_;
  a.lost = lost_;
  a.pending = s.readings;
  a.dropped = s.dropped;
  a.nextSeq = nextSeq_;
  a.durable = durable_;
  a.lastError = !s.lastError.empty() ? s.lastError : lastError_;
  return a;
}

}  // namespace citygate::commands
