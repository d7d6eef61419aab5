#include "core/fanout.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace citygate::core {
namespace {

// Hands each record the spool reads to the sink's framing.
class Framer final : public RecordVisitor {
 public:
  Framer(Sink& sink, std::string& payload) : sink_(sink), payload_(payload) {}
  void record(std::uint64_t seq, std::string_view record) override { sink_.addRecord(payload_, seq, record); }

 private:
  Sink& sink_;
  std::string& payload_;
};

}  // namespace

SinkFanout::SinkFanout(Clock& clock, FanoutOptions options, Spool& spool, std::vector<Sink*> sinks,
                       std::shared_ptr<spdlog::logger> log)
    : clock_(clock), options_(options), spool_(spool), log_(std::move(log)), spoolGeneration_(spool.generation()) {
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    auto c = std::make_unique<Cursor>();
    c->sink = sinks[i];
    c->reader = i == 0 ? ReaderId{0} : spool_.addReader();
    c->timer = clock_.makeTimer();
    c->stats.name = std::string(c->sink->name());
    cursors_.push_back(std::move(c));
  }
}

SinkFanout::~SinkFanout() {
  alive_.reset();
}

void SinkFanout::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  const std::uint64_t oldest = spool_.stats().oldestSeq;  // a backlog from the last run is due at once
  for (auto& c : cursors_) {
    c->nextUnread = oldest;
    Cursor* cursor = c.get();
    c->sink->setReadyCallback([this, cursor, alive = std::weak_ptr<int>(alive_)](bool ready) {
      if (alive.lock()) onReady(*cursor, ready);
    });
  }
}

void SinkFanout::stop() {
  stopped_ = true;
  for (auto& c : cursors_) c->timer->cancel();
}

void SinkFanout::pump() {
  if (stopped_) return;
  for (auto& c : cursors_) pump(*c);
}

void SinkFanout::pump(Cursor& c) {
  if (spool_.generation() != spoolGeneration_) restartCursors();
  while (c.sink->ready() && c.inflight.size() < options_.maxInflightBatches) {
    if (c.pausedUntil) {  // after a failed delivery
      const SteadyTime now = clock_.steadyNow();
      if (now < *c.pausedUntil) {
        arm(c, *c.pausedUntil - now);
        return;
      }
      c.pausedUntil.reset();
    }
    const std::uint64_t unread = spool_.unreadBy(c.reader);
    if (unread == 0) return;
    // A partial batch goes at once when the sink has nothing in flight (the link is idle: waiting
    // would only add latency); behind a batch in flight it waits for more, up to max_batch_delay.
    if (unread < options_.maxBatchReadings && !c.inflight.empty()) {
      const SteadyTime now = clock_.steadyNow();
      // A reading numbered too long ago to be in the ring is due at once.
      if (const auto at = numberedAt(c.nextUnread); at && now < *at + options_.maxBatchDelay) {
        arm(c, *at + options_.maxBatchDelay - now);
        return;
      }
    }
    std::string payload;
    // Below malloc's mmap threshold (64 KiB, app/main.cpp): a larger first reservation was a fresh
    // mmap per batch here and a munmap in Paho's thread after the PUBACK.
    payload.reserve(std::min<std::size_t>(64 + options_.maxBatchBytes / 4, 60 * 1024));
    c.sink->beginBatch(payload);
    Framer framer(*c.sink, payload);
    const ReadResult r = spool_.readBatch(c.reader, options_.maxBatchReadings, options_.maxBatchBytes, framer);
    if (r.count == 0) return;
    c.nextUnread = r.lastSeq + 1;
    c.inflight.push_back(InFlight{r.firstSeq, r.lastSeq, r.count, false, false});
    ++c.stats.batchesSent;
    c.stats.readingsSent += r.count;
    Cursor* cursor = &c;
    c.sink->asyncDeliver(
        std::move(payload), r.count,
        [this, cursor, epoch = c.epoch, lastSeq = r.lastSeq, alive = std::weak_ptr<int>(alive_)](Outcome o) {
          if (alive.lock()) onOutcome(*cursor, epoch, lastSeq, o);
        });
  }
}

void SinkFanout::onOutcome(Cursor& c, std::uint64_t epoch, std::uint64_t lastSeq, Outcome outcome) {
  if (epoch != c.epoch || stopped_) return;  // a batch of a lost link: the cursor already went back
  if (outcome == Outcome::Rejected) {
    // It can never be delivered: resending it would stop every later batch for good.
    for (auto& f : c.inflight) {
      if (f.lastSeq == lastSeq && !f.delivered) setAside(c, f);
    }
  } else if (outcome != Outcome::Delivered) {
    ++c.stats.retries;
    log_->warn("{}: batch up to seq {} not delivered; resending from seq {}", c.stats.name, lastSeq,
               std::max(c.stats.deliveredSeq + 1, spool_.stats().oldestSeq));
    linkLost(c);
    c.pausedUntil = clock_.steadyNow() + options_.retryDelay;
    arm(c, options_.retryDelay);
    return;
  }
  for (auto& f : c.inflight) {
    if (f.lastSeq == lastSeq) f.delivered = true;
  }
  bool moved = false;
  while (!c.inflight.empty() && c.inflight.front().delivered) {
    const InFlight& f = c.inflight.front();
    c.stats.deliveredSeq = f.lastSeq;
    if (!f.rejected) {
      ++c.stats.batchesDelivered;
      c.stats.readingsDelivered += f.count;
    }
    c.inflight.pop_front();
    moved = true;
  }
  if (moved) acknowledgeSpool();
  if (wake_) {
    wake_();  // the spool may have room for held readings; then every sink's pump
  } else {
    pump();
  }
}

void SinkFanout::acknowledgeSpool() {
  std::uint64_t all = ~0ULL;
  for (const auto& c : cursors_) all = std::min(all, c->stats.deliveredSeq);
  if (cursors_.empty() || all <= spoolAcked_) return;
  spoolAcked_ = all;
  spool_.acknowledge(all);
}

void SinkFanout::restartCursors() {
  spoolGeneration_ = spool_.generation();
  const std::uint64_t oldest = spool_.stats().oldestSeq;
  if (oldest == 0) return;  // nothing older than what was delivered waits
  const std::uint64_t before = oldest - 1;
  for (auto& c : cursors_) {
    if (c->stats.deliveredSeq <= before) continue;
    log_->info("{}: the spool holds readings from seq {} again (an earlier run's backlog); sending them", c->stats.name,
               oldest);
    ++c->epoch;  // an outcome still due from the old store counts for nothing
    c->inflight.clear();
    c->stats.deliveredSeq = before;
    spool_.rewindReader(c->reader, before);
    c->nextUnread = oldest;
  }
  spoolAcked_ = std::min(spoolAcked_, before);
}

void SinkFanout::setAside(Cursor& c, InFlight& f) {
  f.delivered = true;
  f.rejected = true;
  ++c.stats.rejectedBatches;
  c.stats.rejectedReadings += f.count;
  const SetAsideResult kept = spool_.setAside(f.firstSeq, f.lastSeq);
  log_->error("{}: batch of {} reading(s), seq {}..{}, rejected: not sent again; {}", c.stats.name, f.count, f.firstSeq,
              f.lastSeq, kept.kept > 0 ? "set aside in " + kept.where : "not kept (" + kept.why + "); it is lost");
}

void SinkFanout::linkLost(Cursor& c) {
  ++c.epoch;
  c.inflight.clear();
  spool_.rewindReader(c.reader, c.stats.deliveredSeq);
  // Resent at once: their times have passed.
  c.nextUnread = std::max(c.stats.deliveredSeq + 1, spool_.stats().oldestSeq);
}

void SinkFanout::onReady(Cursor& c, bool ready) {
  if (stopped_) return;
  if (!ready) {
    if (!c.inflight.empty()) {
      log_->info("{}: link lost with {} batch(es) in flight; they will be resent", c.stats.name, c.inflight.size());
    }
    linkLost(c);
    return;
  }
  c.pausedUntil.reset();  // a new connection: what failed on the old one goes at once
  if (wake_) {
    wake_();
  } else {
    pump(c);
  }
}

void SinkFanout::arm(Cursor& c, SteadyClock::duration wait) {
  if (c.timer->armed() || stopped_) return;
  Cursor* cursor = &c;
  c.timer->start(wait, [this, cursor] {
    if (!stopped_) pump(*cursor);
  });
}

std::optional<SteadyTime> SinkFanout::numberedAt(std::uint64_t seq) const {
  const Numbered& n = numberedAt_[seq % numberedAt_.size()];
  if (n.seq != seq) return std::nullopt;  // not in the ring: older than any delay
  return n.at;
}

std::vector<SinkStats> SinkFanout::stats() const {
  std::vector<SinkStats> v;
  v.reserve(cursors_.size());
  for (const auto& c : cursors_) {
    v.push_back(c->stats);
    v.back().ready = c->sink->ready();
  }
  return v;
}

}  // namespace citygate::core
