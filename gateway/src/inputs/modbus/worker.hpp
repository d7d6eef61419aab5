// BusWorker: the one thread that talks on a bus. A transport is blocking (its framing engine
// waits on a socket or a serial port with deadlines), so each bus gets a worker that runs jobs
// strictly one after another (an RTU bus is half-duplex anyway; a Modbus answer can only be tied
// to the one request outstanding) and posts every result back to the executor.
//
// A job is a list of reads for one unit, due at a given time: the bus source hands a device's
// next poll over as soon as the last one is done, and the worker itself waits for it to be due, so
// a poll costs one wake-up of this thread and none of the executor's. Jobs run in order of due
// time (an ad-hoc read is due at once and goes before future polls); submit() wakes the worker
// only when the new job is due before whatever it is waiting for.
//
// The worker stops a job at the first timeout or link failure (the device is presumed gone: one
// timeout is all it may cost) and keeps going after an exception (the device answered) or a bad
// frame. Recovery after a late or damaged answer is the transport's (it drains the line, skips
// stale frames): the worker only counts what the transport discarded. The queue is bounded:
// submit() refuses when it is full.
//
// The thread is made by start(), which fails (an error, never an exception) when the system
// refuses another thread: TasksMax, RLIMIT_NPROC, memory.
//
// Due times are on the injected clock's steady time (the daemon's SystemClock: the real one). On a
// manual clock (unit tests) the worker cannot see time move: the test calls settled() after each
// step, which wakes the worker when a job has fallen due. The transport's own waits (t3.5, the
// inter-frame gap, the response timeout) stay in real time: they are the line's, not the schedule's.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "inputs/modbus/planner.hpp"
#include "inputs/modbus/transport.hpp"

namespace citygate::modbus {

// A write ahead of a job's reads (its read-back): one coil or one or more holding registers.
struct WriteRequest {
  pb::RegisterTable table = pb::HOLDING_REGISTER;
  std::uint16_t address = 0;
  std::vector<std::uint16_t> values;
};

struct JobResult {
  std::optional<ReadError> writeError;  // a write job: how the write went (ok() when acknowledged)
  std::vector<std::uint16_t> data;      // every request's registers/bits, concatenated in order
  std::vector<std::uint32_t> offsets;   // start of each request in `data`
  std::vector<ReadError> errors;        // per request; requests after an abort are Timeout "not tried"
  std::uint32_t requestsSent = 0;
  std::uint32_t attempted = 0;  // requests tried (the rest were skipped after an abort)
  std::uint32_t timeouts = 0;   // every attempt, retries included
  std::uint32_t badFrames = 0;
  std::vector<DiscardedFrames> discarded;  // frames the transport did not take as an answer, by unit
  std::chrono::microseconds rtt{0};        // whole job
  std::chrono::steady_clock::time_point finishedAt;
};

struct Job {
  std::chrono::steady_clock::time_point due{};  // not before; the default is at once
  std::uint8_t unit = 1;
  std::vector<ReadRequest> requests;
  std::chrono::milliseconds timeout{500};
  std::uint32_t retries = 0;
  std::function<void(JobResult&&)> done;  // invoked on the executor
  // The executor counts a queued job as outstanding work until `done` has run (set by submit()).
  boost::asio::any_io_executor work;
  // Set (from any thread) when nobody waits for the result any more (the control client that
  // asked went away): a job not started yet is skipped, a running one stops before its next
  // request; `done` still runs, with the requests not tried. Optional.
  std::shared_ptr<const std::atomic<bool>> cancelled;
  // A write job: written first, then the requests read it back (skipped when the write failed).
  // Write jobs go before every other due job, and between two transactions of a running job:
  // they never interrupt a transaction, and never wait for a whole poll to end.
  std::optional<WriteRequest> write;
};

class BusWorker {
 public:
  // `clock` must outlive the worker; its steadyNow() is read on the worker's thread.
  BusWorker(boost::asio::any_io_executor executor, const core::Clock& clock, std::unique_ptr<Transport> transport,
            std::chrono::milliseconds interFrameGap, std::size_t queueCapacity);
  ~BusWorker();

  BusWorker(const BusWorker&) = delete;
  BusWorker& operator=(const BusWorker&) = delete;

  // Starts the worker's thread. An error when it cannot be created; the worker then runs nothing.
  Status start();
  bool submit(Job job);
  // Tells the thread to end and returns at once (it never waits, so the executor may call it):
  // queued jobs are dropped, the running one stops before its next request and its result is
  // still posted. `exited` (optional) is posted to the executor as the thread's last act, after
  // it closed the transport: join() then does not wait. Until then it counts as outstanding work
  // of the executor.
  void stop(std::function<void()> exited = {});
  // Waits for the thread (bounded by the running job's timeouts). The destructor stops and joins:
  // the Gateway's shutdown waits there for every bus thread, after the executor stopped.
  void join();
  std::size_t queued() const;
  std::string describe() const { return description_; }
  // For tests on a manual clock: true when the worker waits and no queued job is due; otherwise
  // wakes it if a job has fallen due (time moved without it knowing) and returns false.
  bool settled();

 private:
  void run();
  JobResult execute(Job& job, bool nested = false);
  // Between two transactions of a job: runs a due write job, if one is queued.
  void runQueuedWrite();
  // The job to run now (writes first, then the earliest due), removed from the queue. Locked.
  std::optional<Job> takeDue(bool writesOnly);
  void wake();
  // Waits (the mutex released meanwhile) until woken or, with `until`, until then.
  void wait(std::unique_lock<std::mutex>& lock, std::optional<std::chrono::steady_clock::duration> timeout);

  boost::asio::any_io_executor executor_;
  const core::Clock& clock_;
  std::unique_ptr<Transport> transport_;
  std::chrono::microseconds gap_;
  std::size_t capacity_;
  std::string description_;
  mutable std::mutex mutex_;
  // The thread waits in ppoll() on this eventfd with the next job's due time as the timeout, and
  // is woken by a write to it: one system call per wait, where a condition variable took a futex
  // wait and, on waking, a futex wake for the mutex it takes back (glibc marks it contended).
  int wakeFd_ = -1;
  std::deque<Job> queue_;
  // When the worker's wait ends: max() waiting for any job, min() running one (it looks at the
  // queue again before it waits).
  std::chrono::steady_clock::time_point wakeAt_ = std::chrono::steady_clock::time_point::min();
  bool stopping_ = false;
  bool waiting_ = false;  // the thread waits for a job to be due (or to come)
  std::function<void()> exited_;
  std::optional<std::chrono::steady_clock::time_point> lastTransaction_;  // none yet
  std::thread thread_;
};

}  // namespace citygate::modbus
