// SinkFanout: the delivery half of the pipeline, spool -> every sink, on the executor.
//
// Each sink has a cursor of its own (SinkCursor: a spool reader, its batches in flight, the
// highest seq it has delivered in order). pump() moves batches from the spool to each ready sink
// independently: a full batch at once; a partial one at once when the sink has no batch in flight
// (an idle link: latency is one round trip), otherwise when its oldest reading has waited
// max_batch_delay since it was numbered or when the batches in flight are acknowledged (so batches
// grow with the load, as Nagle's algorithm does). The sink frames the payload itself (core/sink.hpp). A
// batch counts for its sink only when the sink reports Delivered, in seq order; the spool frees a
// record only when every sink has it (Spool::acknowledge with the lowest of the cursors' seqs). A
// sink that is down or failing therefore never stops another from delivering; it only keeps
// records in the spool, where the spool's policy (DROP_OLDEST, BLOCK_SOURCES) applies when full.
//
// Retry or a lost link: that sink's batches in flight are forgotten and its cursor goes back to
// the first record it has not delivered, so that they are sent again (at least once): after
// retry_delay on Retry, at once when the sink reports ready again.
//
// A spool whose store was replaced (Spool::generation: the spool directory took over with an
// earlier run's backlog, older than what was delivered from memory meanwhile): every cursor that
// had delivered past the spool's oldest record starts again there, so the backlog is sent and then
// acknowledged (a cursor's delivered seq only counts what it has in seq order).
//
// Dead letters: a batch a sink rejects (Outcome::Rejected: it can never be delivered as it is) is
// set aside in the spool (Spool::setAside: rejected.cgs, FORMAT.md), counted for that sink
// (SinkStats::rejectedBatches/rejectedReadings; the health report: spool.rejected, spool.sinks), and that
// sink's cursor moves past it: delivery goes on.
//
// Threading: executor only; timers from the injected Clock.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/sink.hpp"
#include "core/spool.hpp"
#include "core/time.hpp"

namespace spdlog {
class logger;
}

namespace citygate::core {

struct FanoutOptions {
  std::uint32_t maxBatchReadings = 200;
  std::chrono::milliseconds maxBatchDelay{100};
  std::uint32_t maxInflightBatches = 8;  // per sink
  std::size_t maxBatchBytes = 256 * 1024;
  std::chrono::milliseconds retryDelay{1000};  // after a failed delivery
};

// One sink's delivery figures.
struct SinkStats {
  std::string name;
  bool ready = false;
  std::uint64_t batchesSent = 0;
  std::uint64_t batchesDelivered = 0;
  std::uint64_t readingsSent = 0;  // counting resends
  std::uint64_t readingsDelivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t rejectedBatches = 0;  // dead letters: set aside, not sent again
  std::uint64_t rejectedReadings = 0;
  std::uint64_t deliveredSeq = 0;  // every record up to this one is delivered (or set aside)
};

class SinkFanout {
 public:
  // Adds one spool reader per sink beyond the first; the sinks and the spool outlive it.
  SinkFanout(Clock& clock, FanoutOptions options, Spool& spool, std::vector<Sink*> sinks,
             std::shared_ptr<spdlog::logger> log);
  ~SinkFanout();
  SinkFanout(const SinkFanout&) = delete;
  SinkFanout& operator=(const SinkFanout&) = delete;

  // Registers the sinks' ready callbacks. `wake` is called after the spool freed records (it may
  // have room again) and when a sink becomes ready: the owner's pump(), which calls pump() here.
  void start(std::function<void()> wake);
  void stop();

  // Reading `seq` was numbered at `at` (the batch delay counts from then).
  void numbered(std::uint64_t seq, SteadyTime at) {
    numberedAt_[seq % numberedAt_.size()] = Numbered{seq, at};
    for (auto& c : cursors_) {
      if (c->nextUnread == 0) c->nextUnread = seq;
    }
  }

  // Send what is due to every ready sink.
  void pump();

  std::vector<SinkStats> stats() const;
  // The highest seq freed in the spool by this fan-out.
  std::uint64_t acknowledged() const { return spoolAcked_; }

 private:
  struct InFlight {
    std::uint64_t firstSeq;
    std::uint64_t lastSeq;
    std::uint32_t count;
    bool delivered;  // or rejected and set aside: either way it counts in its turn
    bool rejected;
  };
  struct Cursor {
    Sink* sink = nullptr;
    ReaderId reader = 0;
    std::deque<InFlight> inflight;
    std::uint64_t epoch = 0;                // a lost link starts a new one: older outcomes are ignored
    std::uint64_t nextUnread = 0;           // seq of the oldest reading not handed to it yet (0: none)
    std::optional<SteadyTime> pausedUntil;  // after a failed delivery: retry_delay, or until it reconnects
    std::unique_ptr<Timer> timer;           // the batch delay, and the end of the pause
    SinkStats stats;
  };
  struct Numbered {
    std::uint64_t seq = 0;
    SteadyTime at{};
  };

  void pump(Cursor& c);
  void onOutcome(Cursor& c, std::uint64_t epoch, std::uint64_t lastSeq, Outcome outcome);
  void onReady(Cursor& c, bool ready);
  void setAside(Cursor& c, InFlight& f);
  void linkLost(Cursor& c);
  void arm(Cursor& c, SteadyClock::duration wait);
  void acknowledgeSpool();
  void restartCursors();
  // When reading `seq` was numbered; none when it is no longer in the ring (due at once).
  std::optional<SteadyTime> numberedAt(std::uint64_t seq) const;

  Clock& clock_;
  FanoutOptions options_;
  Spool& spool_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<Cursor>> cursors_;
  std::function<void()> wake_;
  std::uint64_t spoolAcked_ = 0;
  std::uint64_t spoolGeneration_ = 0;
  bool stopped_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions check it
  // The numbering times of the last 1024 seqs; an older reading is due at once.
  std::array<Numbered, 1024> numberedAt_{};
};

}  // namespace citygate::core
