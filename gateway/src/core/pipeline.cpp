#include "core/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <google/protobuf/arena.h>

#include <boost/asio/post.hpp>

#include "core/report_by_exception.hpp"

namespace citygate::core {

Pipeline::Pipeline(boost::asio::any_io_executor executor, PipelineOptions options, Spool& spool, Sink& sink,
                   SeqStore& seq, std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      spool_(spool),
      sink_(sink),
      seq_(seq),
      log_(std::move(log)),
      batchTimer_(executor_),
      retryTimer_(executor_),
      retryWait_(options_.retryMin) {
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
    if (auto p = self.lock()) p->retryHeld();
  });
  nextUnread_ = spool_.stats().oldestSeq;  // a backlog from the last run is due at once (not in the ring)
  pump();
}

void Pipeline::stop() {
  if (stopped_) return;
  stopped_ = true;
  batchTimer_.cancel();
  retryTimer_.cancel();
  if (blocked_.empty()) return;
  // One last attempt (the disk may be writable again), then every reading still held is lost:
  // counted and logged with its seqs, never dropped silently.
  drainBlocked();
  if (blocked_.empty()) {
    log_->info("stopping: every reading held in memory was stored");
    return;
  }
  const std::uint64_t n = blocked_.size();
  for (const auto& [seq, bytes] : blocked_) {
    lose(seq);
    ++stats_.lostAtStop;
  }
  blocked_.clear();
  log_->error("stopping: {} reading(s) held in memory could not be stored ({})", n,
              lastTroubleError_.empty() ? std::string("the spool was full") : lastTroubleError_);
  logLost(true, "lost at stop");
}

void Pipeline::submit(const SensorSpec& spec, SensorMemory& memory, RawSample&& sample) {
  if (!reportByException(spec, sample, memory)) return;  // nothing changed enough to report
  scratchReadings_.clear();
  Normaliser::normalise(spec, sample, memory, *arena_, scratchReadings_, scratchGeneric_);
  const SteadyTime now = SteadyClock::now();
  for (std::size_t i = 0; i < scratchReadings_.size(); ++i) {
    pb::Reading& r = *scratchReadings_[i];
    const auto seq = seq_.next();
    if (!seq) {
      unnumbered(scratchReadings_.size() - i);
      break;
    }
    if (numberingStopped_) numberingResumed();
    r.set_seq(*seq);
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
    hold(seq, bytes);  // behind the ones already waiting: the spool keeps seq order
    return;
  }
  const auto r = spool_.append(seq, bytes);
  if (r == AppendResult::Ok || r == AppendResult::OkDroppedOldest) return;
  if (r == AppendResult::Refused) {
    refuse(seq);
    return;
  }
  onAppendFailed(r);
  hold(seq, bytes);
}

// A reading the spool can never take (spool.stats().lastError says why): retrying it would
// hold up every later one.
void Pipeline::refuse(std::uint64_t seq) {
  log_->error("seq {} cannot be stored: {}; dropped", seq, spool_.stats().lastError);
  lose(seq);
  logLost(true, "refused by the spool");
}

// The seq store could not make a reservation durable: a reading without a seq cannot be stored,
// and a seq that could repeat after a crash must not be given. Counted (not_stored), said when it
// starts and then every logEvery; sources pause (accepting()), and the retry timer asks again.
// (Not in notStored: those are numbered readings, logged by seq.)
void Pipeline::unnumbered(std::size_t n) {
  stats_.unnumbered += n;
  const SteadyTime now = SteadyClock::now();
  std::string why = seq_.numberingError();
  if (!numberingStopped_ || why != lastNumberingError_ || !lastNumberingLine_ ||
      now - *lastNumberingLine_ >= options_.logEvery) {
    log_->error("{}; {} reading(s) not stored so far", why, stats_.unnumbered);
    lastNumberingLine_ = now;
    lastNumberingError_ = std::move(why);
  }
  numberingStopped_ = true;
  armRetry();
}

bool Pipeline::numberingResumed() {
  if (!numberingStopped_ || !seq_.ready()) return false;
  numberingStopped_ = false;
  lastNumberingLine_.reset();
  lastNumberingError_.clear();
  log_->warn("seq reserved on disk again: numbering goes on at seq {} ({} reading(s) were not stored meanwhile)",
             seq_.peek(), stats_.unnumbered);
  return true;
}

void Pipeline::hold(std::uint64_t seq, std::string_view bytes) {
  if (stopped_) {  // nothing will retry it
    lose(seq);
    ++stats_.lostAtStop;
    log_->error("stopping: a reading could not be stored ({})", lastTroubleError_);
    logLost(true, "lost at stop");
    return;
  }
  if (blocked_.size() >= options_.maxBlockedReadings) {
    ++stats_.lostBlocked;
    if (options_.dropOldestHeld) {
      lose(blocked_.front().first);  // DROP_OLDEST: the oldest goes, collection goes on
      blocked_.pop_front();
    } else {
      lose(seq);  // BLOCK_SOURCES: a source that ignored the pause
      logLost(false, "memory queue full");
      return;
    }
    logLost(false, "memory queue full");
  }
  blocked_.emplace_back(seq, std::string(bytes));
  armRetry();
}

// Stores held readings in order until the spool refuses one; true when none is left.
bool Pipeline::drainBlocked() {
  std::uint64_t stored = 0;
  while (!blocked_.empty()) {
    const auto& [seq, bytes] = blocked_.front();
    const auto r = spool_.append(seq, bytes);
    if (r == AppendResult::Full || r == AppendResult::Error) {
      onAppendFailed(r);
      return false;
    }
    if (r == AppendResult::Refused) {
      refuse(seq);
    } else {
      ++stored;
    }
    blocked_.pop_front();
  }
  if (state_ != SpoolState::Ok) {
    const auto held = troubleSince_
                          ? std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - *troubleSince_)
                          : std::chrono::milliseconds(0);
    if (state_ == SpoolState::Failing) {
      log_->warn("spool writable again after {:.1f} s: {} held reading(s) stored; {} not stored in all",
                 held.count() / 1000.0, stored, stats_.notStored);
    } else {
      log_->debug("spool has room again after {:.1f} s: {} held reading(s) stored", held.count() / 1000.0, stored);
    }
    logLost(true, "memory queue full");
    setState(SpoolState::Ok);
  }
  return true;
}

void Pipeline::onAppendFailed(AppendResult r) {
  const SteadyTime now = SteadyClock::now();
  if (r == AppendResult::Full) {
    if (state_ == SpoolState::Ok) {
      troubleSince_ = now;
      // Routine (health shows `blocked`), and it may come and go with every acknowledgement.
      log_->debug(options_.dropOldestHeld
                      ? "spool full: it drops its oldest readings to make room; readings wait in memory meanwhile"
                      : "spool full (BLOCK_SOURCES): sources paused until deliveries make room");
      setState(SpoolState::Full);
    }
    return;
  }
  ++stats_.spoolErrors;
  const std::string error = spool_.stats().lastError;
  if (state_ != SpoolState::Failing) {
    troubleSince_ = now;
    lastTroubleLine_ = now;
    lastTroubleError_ = error;
    log_->error("spool write failed: {}; readings wait in memory (at most {}) and are retried every {}..{} s{}", error,
                options_.maxBlockedReadings, options_.retryMin.count() / 1000.0, options_.retryMax.count() / 1000.0,
                options_.dropOldestHeld ? "" : "; sources paused");
    setState(SpoolState::Failing);
    return;
  }
  // Still failing: say so now and then, and at once when the reason changes.
  if (error != lastTroubleError_ || !lastTroubleLine_ || now - *lastTroubleLine_ >= options_.logEvery) {
    lastTroubleLine_ = now;
    lastTroubleError_ = error;
    log_->error("spool still failing after {:.0f} s: {}; {} reading(s) held in memory, {} not stored so far",
                std::chrono::duration<double>(now - troubleSince_.value_or(now)).count(), error, blocked_.size(),
                stats_.notStored);
    logLost(true, "memory queue full");
  }
}

void Pipeline::setState(SpoolState s) {
  if (s == state_) return;
  state_ = s;
  if (s == SpoolState::Ok) {
    troubleSince_.reset();
    lastTroubleLine_.reset();
    lastTroubleError_.clear();
    retryWait_ = options_.retryMin;
  }
  if (stateCb_) {
    stateCb_(s, s == SpoolState::Ok     ? std::string("running")
                : s == SpoolState::Full ? std::string("spool full: sources paused (BLOCK_SOURCES)")
                                        : "spool failing: " + lastTroubleError_);
  }
}

void Pipeline::lose(std::uint64_t seq) {
  ++stats_.notStored;
  ++lost_.count;
  auto& r = lost_.ranges;
  if (!r.empty() && r.back().second + 1 == seq) {
    r.back().second = seq;
  } else if (r.size() < 16) {
    r.emplace_back(seq, seq);
  } else {
    ++lost_.unlisted;
  }
}

// One line for the readings lost since the last one, at most every logEvery unless forced.
void Pipeline::logLost(bool force, const char* why) {
  if (lost_.count == 0) return;
  const SteadyTime now = SteadyClock::now();
  if (!force && lost_.lastLine && now - *lost_.lastLine < options_.logEvery) return;
  std::string seqs;
  for (const auto& [lo, hi] : lost_.ranges) {
    seqs +=
        (seqs.empty() ? "" : ", ") + (lo == hi ? std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi));
  }
  if (lost_.unlisted > 0) seqs += " and " + std::to_string(lost_.unlisted) + " more";
  log_->error("not stored ({}): {} reading(s) lost, seq {}", why, lost_.count, seqs);
  lost_ = LostLog{};
  lost_.lastLine = now;
}

void Pipeline::armRetry() {
  if (retryArmed_ || stopped_) return;
  retryArmed_ = true;
  retryTimer_.expires_after(retryWait_);
  retryTimer_.async_wait(std::bind_front(&Pipeline::onRetryTimer, shared_from_this()));
}

void Pipeline::onRetryTimer(const boost::system::error_code& ec) {
  retryArmed_ = false;
  if (ec || stopped_) return;
  retryWait_ = std::min(retryWait_ * 2, options_.retryMax);
  retryHeld();
}

// Tries the held readings now (the retry timer, or the spool saying it has room again).
void Pipeline::retryHeld() {
  if (stopped_) return;
  if (numberingStopped_ && !numberingResumed()) armRetry();
  if (!blocked_.empty() && !drainBlocked()) armRetry();
  pump();
}

void Pipeline::pump() {
  if (stopped_) return;
  // While the spool is failing, held readings are retried by the timer and when the spool has
  // room (retryHeld), not on every submit: a failing write is not free, and counted.
  if (!blocked_.empty() && state_ != SpoolState::Failing && !drainBlocked()) armRetry();
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
    const ReadResult r = spool_.readBatch(options_.maxBatchReadings, options_.maxBatchBytes, payload);
    if (r.count == 0) return;
    nextUnread_ = r.lastSeq + 1;
    inflight_.push_back(InFlight{r.firstSeq, r.lastSeq, r.count, false, false});
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
  if (outcome == Outcome::Rejected) {
    // It can never be delivered: resending it would stop every later batch for good.
    for (auto& f : inflight_) {
      if (f.lastSeq == lastSeq && !f.delivered) setAside(f);
    }
  } else if (outcome != Outcome::Delivered) {
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
    if (!inflight_.front().rejected) {
      ++stats_.batchesDelivered;
      stats_.readingsDelivered += inflight_.front().count;
    }
    inflight_.pop_front();
  }
  if (ackUpTo > 0) spool_.acknowledge(ackUpTo);
  pump();
}

void Pipeline::setAside(InFlight& f) {
  f.delivered = true;
  f.rejected = true;
  ++stats_.rejectedBatches;
  stats_.rejectedReadings += f.count;
  const SetAsideResult kept = spool_.setAside(f.firstSeq, f.lastSeq);
  log_->error("batch of {} reading(s), seq {}..{}, rejected by the sink: not sent again; {}", f.count, f.firstSeq,
              f.lastSeq, kept.kept > 0 ? "set aside in " + kept.where : "not kept (" + kept.why + "); it is lost");
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
