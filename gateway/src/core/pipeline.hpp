// Pipeline: sources -> normaliser -> spool -> sinks, on the executor.
//
// submit() normalises a raw sample (after report by exception, core/report_by_exception.hpp),
// numbers each reading with the gateway-wide seq and appends it
// to the spool (the record: the serialized Reading). pump() hands over to SinkFanout
// (core/fanout.hpp), which moves batches from the spool to every sink, each on its own cursor,
// each sink framing its own payload: a full batch at once, a partial one when its oldest reading
// has waited max_batch_delay. A record leaves the spool only when every sink has delivered it;
// when a sink loses its link, its batches in flight are forgotten and its cursor goes back, so the
// next connection resends them (at least once).
//
// Back-pressure: when the spool cannot take a reading (BLOCK_SOURCES and full, or a write error:
// a full disk, a read-only directory), readings wait in memory, in a bounded queue, and are
// retried: whenever the spool says it has room (pump()) and on a timer with bounded backoff, so
// that collection resumes by itself once the disk is writable again. With BLOCK_SOURCES
// accepting() turns false meanwhile, which the sources check before they poll; with DROP_OLDEST
// the sources go on and a full queue drops its oldest reading. A reading that is never stored is
// counted (notStored) and logged with its seq, rate-limited; so are those still held at stop(),
// after one last attempt.
//
// A batch a sink rejects (Outcome::Rejected: it can never be delivered) is counted for that sink,
// set aside in the spool (Spool::setAside, the dead letters) and counts as delivered for that sink
// in its turn, so delivery goes on.
//
// Time: the injected Clock (core/clock.hpp): its now() and its timers (batch delay, retries).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/fanout.hpp"
#include "core/normaliser.hpp"
#include "core/sensor.hpp"
#include "core/seq_store.hpp"
#include "core/sink.hpp"
#include "core/spool.hpp"

namespace spdlog {
class logger;
}
namespace google::protobuf {
class Arena;
}

namespace citygate::core {

// The delivery settings (batching, in-flight limit, retry delay) are the fan-out's; the rest are
// the pipeline's own.
struct PipelineOptions : FanoutOptions {
  std::size_t maxBlockedReadings = 10000;
  // The spool's policy: with DROP_OLDEST the sources are never paused (see above).
  bool dropOldestHeld = false;
  // Retrying held readings: first after retryMin, doubling up to retryMax.
  std::chrono::milliseconds retryMin{1000};
  std::chrono::milliseconds retryMax{5000};
  // Repeats of the same failure, and of readings not stored, are logged at most this often.
  std::chrono::milliseconds logEvery{10000};
};

// Whether the spool takes readings (one state, habit 14).
enum class SpoolState : std::uint8_t {
  Ok,
  Full,     // BLOCK_SOURCES and at max_bytes: readings wait until deliveries make room
  Failing,  // the spool's writes fail (stats().lastError): readings wait and are retried
};

struct PipelineStats {
  std::uint64_t readings = 0;  // numbered and handed to the spool
  // The delivery figures are the sums over the sinks (`sinks` has each one's).
  std::uint64_t batchesSent = 0;
  std::uint64_t batchesDelivered = 0;
  std::uint64_t readingsSent = 0;  // counting resends
  std::uint64_t readingsDelivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t lostBlocked = 0;      // the queue of held readings was full (see notStored)
  std::uint64_t spoolErrors = 0;      // appends that failed (every attempt)
  std::uint64_t blockedNow = 0;       // readings held in memory now
  std::uint64_t notStored = 0;        // numbered, never stored: lostBlocked + lostAtStop
  std::uint64_t lostAtStop = 0;       // still held when the pipeline stopped
  std::uint64_t rejectedBatches = 0;  // dead letters, every sink's
  std::uint64_t rejectedReadings = 0;
  std::vector<SinkStats> sinks;
  std::uint64_t unnumbered = 0;  // not numbered, not stored: no durable seq reservation
};

class Pipeline : public std::enable_shared_from_this<Pipeline> {
 public:
  // The reading and its wire bytes (valid for the call only): a tap that keeps a reading keeps
  // the bytes, which costs a memcpy, not a message copy. The bytes are the reading: a generic
  // observation is only in them (Normaliser's hot path), so a tap that needs it parses them.
  using Tap = std::function<void(const pb::Reading&, std::string_view bytes)>;

  // One or more sinks (each gets every reading, on its own spool reader); they, the spool, the
  // seq store and the clock outlive the pipeline.
  Pipeline(Clock& clock, PipelineOptions options, Spool& spool, std::vector<Sink*> sinks, SeqStore& seq,
           std::shared_ptr<spdlog::logger> log);
  Pipeline(Clock& clock, PipelineOptions options, Spool& spool, Sink& sink, SeqStore& seq,
           std::shared_ptr<spdlog::logger> log)
      : Pipeline(clock, std::move(options), spool, std::vector<Sink*>{&sink}, seq, std::move(log)) {}
  ~Pipeline();

  void start();
  // Stops delivery; readings still held get one last chance to be stored, and the rest are
  // counted and logged with their seqs (never dropped silently).
  void stop();

  void submit(const SensorSpec& spec, SensorMemory& memory, RawSample&& sample);
  bool accepting() const { return (blocked_.empty() && !numberingStopped_) || options_.dropOldestHeld; }
  SpoolState spoolState() const { return state_; }
  // Called on the executor when spoolState() changes, with a one-line description.
  void setStateCallback(std::function<void(SpoolState, const std::string&)> cb) { stateCb_ = std::move(cb); }

  // Readings submitted from now on carry clock_unsynchronised = `unsynchronised` (the gateway's
  // ClockSyncMonitor says when it changes; the hot path only reads this flag).
  void setClockUnsynchronised(bool unsynchronised) { clockUnsynchronised_ = unsynchronised; }
  bool clockUnsynchronised() const { return clockUnsynchronised_; }

  // Called with every reading after it is numbered (control socket `tail`).
  void setTap(Tap tap) { tap_ = std::move(tap); }

  // Re-examine the spool and the sinks (e.g. when the spool has new durable records).
  void pump();

  PipelineStats stats() const;
  const PipelineOptions& options() const { return options_; }

 private:
  // Readings not stored, by seq, waiting for their (rate-limited) log line.
  struct LostLog {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // the first kMaxRanges
    std::uint64_t count = 0;
    std::uint64_t unlisted = 0;  // beyond kMaxRanges
    std::optional<SteadyTime> lastLine;
  };

  void store(std::uint64_t seq, std::string_view bytes);
  void hold(std::uint64_t seq, std::string_view bytes);
  bool drainBlocked();
  void onAppendFailed(AppendResult r);
  void setState(SpoolState s);
  void lose(std::uint64_t seq);
  void refuse(std::uint64_t seq);
  void unnumbered(std::size_t n);
  bool numberingResumed();
  void logLost(bool force, const char* why);
  void armRetry();
  void onRetryTimer();
  void retryHeld();

  Clock& clock_;
  PipelineOptions options_;
  Spool& spool_;
  SeqStore& seq_;
  std::shared_ptr<spdlog::logger> log_;
  SinkFanout fanout_;
  bool stopped_ = false;
  std::unique_ptr<Timer> retryTimer_;
  bool numberingStopped_ = false;  // the seq store has no durable reservation (SeqStore::next)
  std::optional<SteadyTime> lastNumberingLine_;
  std::string lastNumberingError_;
  std::chrono::milliseconds retryWait_;
  SpoolState state_ = SpoolState::Ok;
  std::optional<SteadyTime> troubleSince_;  // when the spool stopped taking readings
  std::optional<SteadyTime> lastTroubleLine_;
  std::string lastTroubleError_;
  std::function<void(SpoolState, const std::string&)> stateCb_;
  LostLog lost_;

  // Readings live on an arena for the length of one submit(): no malloc/free per point.
  std::unique_ptr<char[]> arenaBlock_;  // the arena's first block, reused by every submit()
  std::unique_ptr<google::protobuf::Arena> arena_;
  std::vector<pb::Reading*> scratchReadings_;
  std::vector<GenericWire> scratchGeneric_;  // aligned with scratchReadings_
  std::string scratchBytes_;
  std::deque<std::pair<std::uint64_t, std::string>> blocked_;
  Tap tap_;
  PipelineStats stats_;
  bool clockUnsynchronised_ = false;
};

}  // namespace citygate::core
