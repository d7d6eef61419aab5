#include "core/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <google/protobuf/arena.h>

#include "core/report_by_exception.hpp"

namespace citygate::core {

Pipeline::Pipeline(Clock& clock, PipelineOptions options, Spool& spool, std::vector<Sink*> sinks, SeqStore& seq,
                   std::shared_ptr<spdlog::logger> log)
    : clock_(clock),
      options_(std::move(options)),
      spool_(spool),
      seq_(seq),
      log_(std::move(log)),
      fanout_(clock_, static_cast<const FanoutOptions&>(options_), spool_, std::move(sinks), log_),
      retryTimer_(clock_.makeTimer()),
      retryWait_(options_.retryMin) {
  constexpr std::size_t kArenaBlock = 16 * 1024;  // a reading needs well under 1 KiB (generic maps are not built)
  arenaBlock_ = std::make_unique<char[]>(kArenaBlock);
  google::protobuf::ArenaOptions arenaOptions;
  arenaOptions.initial_block = arenaBlock_.get();
  arenaOptions.initial_block_size = kArenaBlock;
  arenaOptions.start_block_size = 16 * 1024;
  arenaOptions.max_block_size = 256 * 1024;
  arena_ = std::make_unique<google::protobuf::Arena>(arenaOptions);
}

void Pipeline::start() {
  auto self = weak_from_this();
  fanout_.start([self] {
    if (auto p = self.lock()) p->pump();
  });
  spool_.setReadableCallback([self] {
    if (auto p = self.lock()) p->retryHeld();
  });
  pump();
}

void Pipeline::stop() {
  if (stopped_) return;
  stopped_ = true;
  fanout_.stop();
  retryTimer_->cancel();
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
  const SteadyTime now = clock_.steadyNow();
  for (std::size_t i = 0; i < scratchReadings_.size(); ++i) {
    pb::Reading& r = *scratchReadings_[i];
    const auto seq = seq_.next();
    if (!seq) {
      unnumbered(scratchReadings_.size() - i);
      break;
    }
    if (numberingStopped_) numberingResumed();
    r.set_seq(*seq);
    if (clockUnsynchronised_) r.set_clock_unsynchronised(true);
    fanout_.numbered(r.seq(), now);
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
  const SteadyTime now = clock_.steadyNow();
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
                          ? std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steadyNow() - *troubleSince_)
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
  const SteadyTime now = clock_.steadyNow();
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
  const SteadyTime now = clock_.steadyNow();
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
  if (retryTimer_->armed() || stopped_) return;
  retryTimer_->start(retryWait_, [self = weak_from_this()] {
    if (auto p = self.lock()) p->onRetryTimer();
  });
}

void Pipeline::onRetryTimer() {
  if (stopped_) return;
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
  fanout_.pump();
}

PipelineStats Pipeline::stats() const {
  PipelineStats s = stats_;
  s.blockedNow = blocked_.size();
  s.sinks = fanout_.stats();
  for (const SinkStats& k : s.sinks) {
    s.batchesSent += k.batchesSent;
    s.batchesDelivered += k.batchesDelivered;
    s.readingsSent += k.readingsSent;
    s.readingsDelivered += k.readingsDelivered;
    s.retries += k.retries;
    s.rejectedBatches += k.rejectedBatches;
    s.rejectedReadings += k.rejectedReadings;
  }
  return s;
}

}  // namespace citygate::core
