// BusWorker: the one thread that talks on a bus. libmodbus is blocking and a context is
// single-threaded, so each bus gets a worker that runs jobs strictly one after another (an RTU bus
// is half-duplex anyway) and posts every result back to the executor.
//
// A job is a list of reads for one unit. The worker stops a job at the first timeout or link
// failure (the device is presumed gone: one timeout is all it may cost), keeps going after an
// exception (the device answered), and flushes the link after a bad frame so the next
// transaction starts clean. The queue is bounded: submit() refuses when it is full.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "inputs/modbus/planner.hpp"
#include "inputs/modbus/transport.hpp"

namespace citygate::modbus {

struct JobResult {
  std::vector<std::uint16_t> data;     // every request's registers/bits, concatenated in order
  std::vector<std::uint32_t> offsets;  // start of each request in `data`
  std::vector<ReadError> errors;       // per request; requests after an abort are Timeout "not tried"
  std::uint32_t requestsSent = 0;
  std::uint32_t attempted = 0;  // requests tried (the rest were skipped after an abort)
  std::uint32_t timeouts = 0;   // every attempt, retries included
  std::uint32_t badFrames = 0;
  std::chrono::microseconds rtt{0};  // whole job
  std::chrono::steady_clock::time_point finishedAt;
};

struct Job {
  std::uint8_t unit = 1;
  std::vector<ReadRequest> requests;
  std::chrono::milliseconds timeout{500};
  std::uint32_t retries = 0;
  std::function<void(JobResult&&)> done;  // invoked on the executor
};

class BusWorker {
 public:
  BusWorker(boost::asio::any_io_executor executor, std::unique_ptr<Transport> transport,
            std::chrono::milliseconds interFrameGap, std::size_t queueCapacity);
  ~BusWorker();

  BusWorker(const BusWorker&) = delete;
  BusWorker& operator=(const BusWorker&) = delete;

  bool submit(Job job);
  void stop();  // waits for the running job (bounded by its timeouts), drops queued ones
  std::size_t queued() const;
  std::string describe() const { return description_; }

 private:
  void run();
  JobResult execute(Job& job);

  boost::asio::any_io_executor executor_;
  std::unique_ptr<Transport> transport_;
  std::chrono::microseconds gap_;
  std::size_t capacity_;
  std::string description_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point lastTransaction_{};
  std::thread thread_;
};

}  // namespace citygate::modbus
