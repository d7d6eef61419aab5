#include "core/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <google/protobuf/arena.h>

#include <boost/asio/post.hpp>

namespace citygate::core {

Pipeline::Pipeline(boost::asio::any_io_executor executor, PipelineOptions options, spool::Spool& spool, Sink& sink,
                   SeqStore& seq, std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      spool_(spool),
      sink_(sink),
      seq_(seq),
      log_(std::move(log)),
      batchTimer_(executor_) {
  constexpr std::size_t kArenaBlock = 16 * 1024;  // a reading needs well under 1 KiB (generic maps are not built)
  arenaBlock_ = std::make_unique<char[]>(kArenaBlock);
  google::protobuf::ArenaOptions arenaOptions;
  arenaOptions.initial_block = arenaBlock_.get();
  arenaOptions.initial_block_size = kArenaBlock;
  arenaOptions.start_block_size = 16 * 1024;
  arenaOptions.max_block_size = 256 * 1024;
  arena_ = std::make_unique<google::protobuf::Arena>(arenaOptions);
  pb::ReadingBatch header;
  header.set_gateway_id(options_.gatewayId);
  header.set_boot_id(options_.bootId);
  batchHeader_ = header.SerializeAsString();
}

void Pipeline::start() {
  auto self = weak_from_this();
  sink_.setReadyCallback([self](bool ready) {
    if (auto p = self.lock()) p->onSinkReady(ready);
  });
  spool_.setReadableCallback([self] {
    if (auto p = self.lock()) p->pump();
  });
  nextUnread_ = spool_.stats().oldestSeq;  // a backlog from the last run is due at once (not in the ring)
  pump();
}

void Pipeline::stop() {
  stopped_ = true;
  batchTimer_.cancel();
}

void Pipeline::submit(const SensorSpec& spec, SensorMemory& memory, RawSample&& sample) {
  scratchReadings_.clear();
  Normaliser::normalise(spec, sample, memory, *arena_, scratchReadings_, scratchGeneric_);
  const SteadyTime now = SteadyClock::now();
  for (std::size_t i = 0; i < scratchReadings_.size(); ++i) {
    pb::Reading& r = *scratchReadings_[i];
    r.set_seq(seq_.next());
    numberedAt_[r.seq() % numberedAt_.size()] = Numbered{r.seq(), now};
    if (nextUnread_ == 0) nextUnread_ = r.seq();
    scratchBytes_.clear();
    r.AppendToString(&scratchBytes_);
    if (scratchGeneric_[i].active()) scratchGeneric_[i].appendTo(scratchBytes_);
    ++stats_.readings;
    if (tap_) tap_(r, scratchBytes_);
    store(r.seq(), scratchBytes_);
  }
  scratchReadings_.clear();
  arena_->Reset();
  pump();
}

Pipeline::~Pipeline() {
  scratchReadings_.clear();
  arena_.reset();  // before its initial block
}

void Pipeline::store(std::uint64_t seq, std::string_view bytes) {
  if (!blocked_.empty()) {
    if (blocked_.size() >= options_.maxBlockedReadings) {
      ++stats_.lostBlocked;
      return;
    }
    blocked_.emplace_back(seq, std::string(bytes));
    return;
  }
  switch (spool_.append(seq, bytes)) {
    case spool::AppendResult::Ok:
    case spool::AppendResult::OkDroppedOldest:
      break;
    case spool::AppendResult::Error:
      ++stats_.spoolErrors;
      [[fallthrough]];
    case spool::AppendResult::Full:
      blocked_.emplace_back(seq, std::string(bytes));
      break;
  }
}

void Pipeline::drainBlocked() {
  while (!blocked_.empty()) {
    const auto& [seq, bytes] = blocked_.front();
    const auto r = spool_.append(seq, bytes);
    if (r == spool::AppendResult::Full || r == spool::AppendResult::Error) break;
    blocked_.pop_front();
  }
}

void Pipeline::pump() {
  if (stopped_) return;
  if (!blocked_.empty()) drainBlocked();
  while (sink_.ready() && inflight_.size() < options_.maxInflightBatches) {
    const std::uint64_t unread = spool_.unread();
    if (unread == 0) return;
    if (unread < options_.maxBatchReadings) {
      const auto now = SteadyClock::now();
      // A reading numbered too long ago to be in the ring is due at once.
      if (const auto at = oldestUnreadAt(); at && now < *at + options_.maxBatchDelay) {
        armBatchTimer(*at + options_.maxBatchDelay - now);
        return;
      }
    }
    std::string payload;
    payload.reserve(batchHeader_.size() + options_.maxBatchBytes / 4);
    payload = batchHeader_;
    const spool::ReadResult r = spool_.readBatch(options_.maxBatchReadings, options_.maxBatchBytes, payload);
    if (r.count == 0) return;
    nextUnread_ = r.lastSeq + 1;
    inflight_.push_back(InFlight{r.lastSeq, r.count, false});
    ++stats_.batchesSent;
    stats_.readingsSent += r.count;
    auto self = weak_from_this();
    const std::uint64_t epoch = epoch_;
    const std::uint64_t lastSeq = r.lastSeq;
    sink_.asyncDeliver(std::move(payload), r.count, [self, epoch, lastSeq](Outcome o) {
      if (auto p = self.lock()) p->onOutcome(epoch, lastSeq, o);
    });
  }
}

void Pipeline::onOutcome(std::uint64_t epoch, std::uint64_t lastSeq, Outcome outcome) {
  if (epoch != epoch_ || stopped_) return;  // a batch of a lost link: the spool already rewound
  if (outcome != Outcome::Delivered) {
    ++stats_.retries;
    log_->warn("batch up to seq {} not delivered ({}); resending from seq {}", lastSeq,
               outcome == Outcome::Retry ? "retry" : "rejected", spool_.stats().oldestSeq);
    linkLost();
    armBatchTimer(options_.retryDelay);
    return;
  }
  for (auto& f : inflight_) {
    if (f.lastSeq == lastSeq) f.delivered = true;
  }
  std::uint64_t ackUpTo = 0;
  while (!inflight_.empty() && inflight_.front().delivered) {
    ackUpTo = inflight_.front().lastSeq;
    ++stats_.batchesDelivered;
    stats_.readingsDelivered += inflight_.front().count;
    inflight_.pop_front();
  }
  if (ackUpTo > 0) spool_.acknowledge(ackUpTo);
  pump();
}

void Pipeline::linkLost() {
  ++epoch_;
  inflight_.clear();
  spool_.rewind();
  nextUnread_ = spool_.stats().oldestSeq;  // resent at once: their times have passed
}

std::optional<SteadyTime> Pipeline::oldestUnreadAt() const {
  const Numbered& n = numberedAt_[nextUnread_ % numberedAt_.size()];
  if (n.seq != nextUnread_) return std::nullopt;  // not in the ring: older than any delay
  return n.at;
}

void Pipeline::onSinkReady(bool ready) {
  if (!ready) {
    if (!inflight_.empty()) log_->info("link lost with {} batch(es) in flight; they will be resent", inflight_.size());
    linkLost();
    return;
  }
  pump();
}

void Pipeline::armBatchTimer(std::chrono::steady_clock::duration wait) {
  if (timerArmed_) return;
  timerArmed_ = true;
  batchTimer_.expires_after(wait);
  batchTimer_.async_wait(std::bind_front(&Pipeline::onBatchTimer, shared_from_this()));
}

void Pipeline::onBatchTimer(const boost::system::error_code& ec) {
  timerArmed_ = false;
  if (ec || stopped_) return;
  pump();
}

PipelineStats Pipeline::stats() const {
  PipelineStats s = stats_;
  s.blockedNow = blocked_.size();
  return s;
}

}  // namespace citygate::core
