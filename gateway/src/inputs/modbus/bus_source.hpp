// BusSource: one Modbus bus on the executor. It schedules every device's polls (own interval,
// staggered phases so the bus load stays flat), hands them to the bus worker, decodes the answers
// into RawSamples and submits them to the pipeline.
//
// A healthy device's next poll goes to the worker as soon as its last result is handled, due at
// its tick: the worker waits for it, so a poll wakes no timer here and no thread but the worker.
// A DOWN device, or any device while the pipeline asks sources to pause, waits for its tick on a
// timer instead, and the tick decides (probe, pause, poll).
//
// Per device: ticks that come while its poll is still queued or running are skipped and counted; a
// failing device goes DEGRADED, and after `failures_to_down` failed polls DOWN: its circuit opens
// and it is tried once per backoff window (doubling up to backoff_max_ms, with jitter) with a
// single request and no retries, so a dead device costs at most one timeout per window. A merged
// read refused with exception 02 is split, the split remembered, and the device polled again.
//
// A DOWN device's backoff ends early when the technician asks (`device ID --retry`: retryNow) or an
// ad-hoc read of its unit succeeds: it is probed at once, and polled as before when it answers.
// Each device's health says since when it is in its state and when its last error happened; the
// bus's own health (BusHealth) says whether the link itself works (TCP connect, serial port).
//
// Time and timers come from the injected clock (its steady time is also the worker's due time).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "citygate/v1/status.pb.h"
#include "core/clock.hpp"
#include "core/normaliser.hpp"
#include "inputs/modbus/spec.hpp"
#include "inputs/modbus/worker.hpp"

namespace spdlog {
class logger;
}

namespace citygate::core {
class Pipeline;
}

namespace citygate::modbus {

struct BusCounters {
  std::uint64_t polls = 0;
  std::uint64_t skipped = 0;
  std::uint64_t blocked = 0;  // not polled: the pipeline asked sources to pause (BLOCK_SOURCES)
  std::uint64_t splits = 0;
  std::uint64_t discarded = 0;  // frames not taken as an answer (DeviceHealth.answers_discarded, and
                                // those from units that are no device of this bus)
};

class BusSource : public std::enable_shared_from_this<BusSource> {
 public:
  // `submit` receives every sample; `accepting` says whether the pipeline takes more.
  using Submit = std::function<void(const core::SensorSpec&, core::SensorMemory&, core::RawSample&&)>;
  using Accepting = std::function<bool()>;

  // `clock` must outlive the source (and its worker's thread).
  BusSource(boost::asio::any_io_executor executor, core::Clock& clock, BusSpec spec,
            std::unique_ptr<Transport> transport, Submit submit, Accepting accepting,
            std::shared_ptr<spdlog::logger> log);

  // Starts the bus worker's thread (no I/O, no polls yet). An error when the system refuses the
  // thread (TasksMax, RLIMIT_NPROC); nothing runs then, and stop() is still safe.
  Status prepare();
  // prepare() if not done, then schedules every device's polls.
  Status start();
  // Stops polling at once; the worker's thread ends after its running transaction, off the
  // executor (BusWorker::stop); the source stays alive until it has, and then `ended` runs on
  // the executor (every caller's, when stop() is called again). Never blocks. Whoever owns the
  // executor lets it run until then: a thread still running when it is destroyed would post to
  // a dead executor.
  void stop(std::function<void()> ended = {});
  // Waits for the worker's thread: only where no executor is serving (a failed start).
  void join();

  const BusSpec& spec() const { return spec_; }
  void fillHealth(google::protobuf::RepeatedPtrField<citygate::v1::DeviceHealth>& out) const;
  const BusCounters& counters() const { return counters_; }

  // Ad-hoc read for the control socket (`modbus read`, `probe`, `scan`): due at once, so it goes
  // before the polls that are not due yet. `cancelled` (optional): see Job::cancelled.
  bool adhocRead(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds timeout, std::function<void(JobResult&&)> done,
                 std::shared_ptr<const std::atomic<bool>> cancelled = nullptr);

  // A write for the control socket and platform commands (checked by the caller: write.hpp),
  // followed by a read-back of `readBack`: goes before every poll, between two transactions. At
  // most `maxQueued` writes wait on this bus; false when that many do (or the worker's queue is
  // full).
  bool adhocWrite(std::uint8_t unit, WriteRequest write, ReadRequest readBack, std::chrono::milliseconds timeout,
                  std::size_t maxQueued, std::function<void(JobResult&&)> done);

  // The last reading of each device, for `devices`.
  std::size_t deviceCount() const { return devices_.size(); }

  // The link of the bus (BusHealth.name and .transport are the caller's).
  const citygate::v1::BusHealth& linkHealth() const { return link_; }

  // `device ID --retry`: ends a DOWN device's backoff and probes it now. Executor only.
  enum class Retry : std::uint8_t {
    Probing,         // the probe is queued (due at once)
    AlreadyProbing,  // a probe of it is queued or running: its answer decides
    NotDown,         // OK or DEGRADED: polled at its interval anyway
  };
  Retry retryNow(std::size_t index, std::string_view why);
  // The index of the device with this sensor id, if it is on this bus.
  std::optional<std::size_t> deviceIndex(std::string_view sensorId) const;
  citygate::v1::DeviceState deviceState(std::size_t index) const { return devices_[index].state; }

  // Tests on a manual clock: see BusWorker::settled().
  bool workerSettled() { return worker_->settled(); }

 private:
  struct Device {
    DeviceSpec spec;
    std::vector<ReadRequest> plan;
    std::vector<bool> isolated;          // per point, learned from exception 02
    std::unique_ptr<core::Timer> timer;  // DOWN or paused: the tick decides
    SteadyTime nextTick;                 // the first tick not yet handed out
    bool busy = false;                   // a poll of it is queued or running
    core::SensorMemory memory;
    // circuit breaker
    citygate::v1::DeviceState state = citygate::v1::OK;
    std::uint32_t consecutiveFailures = 0;
    std::uint32_t downCount = 0;
    SteadyTime nextAttempt{};
    WallTime nextAttemptWall{};
    WallTime lastObservedAt{};
    // health
    citygate::v1::DeviceHealth health;
    std::string lastLoggedError;
  };

  void replan(Device& d);

  // The device is idle: its next poll, or a timer. `first`: the schedule's start, whose tick at
  // `epoch_` is due now (not missed: no poll came before it).
  void scheduleNext(std::size_t index, bool first = false);
  void armTimer(std::size_t index);
  void onTick(std::size_t index);
  void poll(std::size_t index, bool probe, SteadyTime due = {});
  void onResult(std::size_t index, bool probe, JobResult&& result);
  void handleResult(std::size_t index, bool probe, JobResult&& result);
  void decode(Device& d, const JobResult& result, WallTime now);
  void recordFailure(Device& d, const std::string& error);
  void setState(Device& d, citygate::v1::DeviceState state);
  void setError(Device& d, const std::string& error);
  void noteLink(const JobResult& result);
  void onAdhocDone(std::uint8_t unit, const JobResult& result);
  void countDiscarded(Device* asked, const std::vector<DiscardedFrames>& frames);

  boost::asio::any_io_executor executor_;
  core::Clock& clock_;
  BusSpec spec_;
  std::unique_ptr<BusWorker> worker_;
  Submit submit_;
  Accepting accepting_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Device> devices_;
  BusCounters counters_;
  std::minstd_rand rng_;
  std::size_t writesQueued_ = 0;  // adhocWrite()s not done yet
  bool stopped_ = false;
  bool workerEnded_ = false;                           // its thread has ended (after stop())
  std::vector<std::function<void()>> endedCallbacks_;  // stop()'s, until then
  SteadyTime epoch_;
  citygate::v1::BusHealth link_;
};

}  // namespace citygate::modbus
