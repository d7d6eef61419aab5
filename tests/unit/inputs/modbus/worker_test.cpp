// BusWorker: a job nobody waits for any more (Job::cancelled, set when a control client goes away
// during `modbus read` or `scan`) does not hold the bus; a write goes before polls, between two
// transactions, and is read back in the same job.
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "inputs/modbus/worker.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::modbus;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

// Every read is a dead unit's: a timeout, at once, except that a read of unit 1 first waits for
// `release` (the job runs while the test queues and cancels others). Counts the reads per unit.
class DeadTransport final : public Transport {
 public:
  DeadTransport(std::shared_ptr<std::map<int, int>> reads, std::shared_future<void> release)
      : reads_(std::move(reads)), release_(std::move(release)) {}
  ReadError connect() override { return {}; }
  void close() override {}
  bool isOpen() const override { return true; }
  ReadError read(std::uint8_t unit, pb::RegisterTable, std::uint16_t, std::uint16_t, std::chrono::milliseconds,
                 std::span<std::uint16_t>) override {
    {
      std::lock_guard lock(mutex_);
      ++(*reads_)[unit];
    }
    if (unit == 1) release_.wait();
    return ReadError{ErrorKind::Timeout, 0, "timeout"};
  }
  std::string describe() const override { return "dead"; }

 private:
  std::mutex mutex_;
  std::shared_ptr<std::map<int, int>> reads_;
  std::shared_future<void> release_;
};

}  // namespace

TEST_CASE("a cancelled job is skipped without touching the bus, and its done still runs") {
  testing::ManualClock clock;
  boost::asio::io_context ioc;
  auto reads = std::make_shared<std::map<int, int>>();
  std::promise<void> release;
  BusWorker worker(ioc.get_executor(), clock, std::make_unique<DeadTransport>(reads, release.get_future().share()), 0ms,
                   8);
  REQUIRE(worker.start().ok());
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::vector<int> done;
  auto job = [&](int unit, std::shared_ptr<const std::atomic<bool>> flag) {
    Job j;
    j.unit = static_cast<std::uint8_t>(unit);
    j.timeout = 300ms;
    j.requests.push_back(ReadRequest{pb::HOLDING_REGISTER, 0, 1, {0}});
    j.requests.push_back(ReadRequest{pb::HOLDING_REGISTER, 10, 1, {0}});
    j.cancelled = std::move(flag);
    j.done = [&done, unit](JobResult&& r) {
      done.push_back(unit);
      if (unit == 2) {
        CHECK(r.requestsSent == 0);
        CHECK(r.errors.at(0).message == "not tried");
      }
    };
    return j;
  };
  REQUIRE(worker.submit(job(1, nullptr)));    // running (held): one timeout, then aborted
  REQUIRE(worker.submit(job(2, cancelled)));  // queued behind it; its client goes away
  cancelled->store(true);
  REQUIRE(worker.submit(job(3, nullptr)));
  release.set_value();
  ioc.run();  // returns once the three results are handled: queued jobs are the executor's work
  CHECK(done == std::vector<int>{1, 2, 3});
  CHECK(reads->count(2) == 0);
  CHECK(reads->at(1) == 1);
  CHECK(reads->at(3) == 1);  // two timeouts, not three: the cancelled job did not hold the bus
}

namespace {

// Records every transaction in order ("r<unit>:<address>", "w<unit>:<address>"); the first read
// waits for `release` so the test can queue jobs while a poll runs. Writes fail on unit 9.
class RecordingTransport final : public Transport {
 public:
  RecordingTransport(std::shared_ptr<std::vector<std::string>> log, std::shared_future<void> release,
                     std::shared_ptr<std::promise<void>> started)
      : log_(std::move(log)), release_(std::move(release)), started_(std::move(started)) {}
  ReadError connect() override { return {}; }
  void close() override {}
  bool isOpen() const override { return true; }
  ReadError read(std::uint8_t unit, pb::RegisterTable, std::uint16_t address, std::uint16_t, std::chrono::milliseconds,
                 std::span<std::uint16_t> out) override {
    add("r" + std::to_string(unit) + ":" + std::to_string(address));
    if (first_) {
      first_ = false;
      started_->set_value();
      release_.wait();
    }
    for (auto& v : out) v = held_;
    return {};
  }
  ReadError write(std::uint8_t unit, pb::RegisterTable, std::uint16_t address, std::span<const std::uint16_t> values,
                  std::chrono::milliseconds) override {
    add("w" + std::to_string(unit) + ":" + std::to_string(address));
    if (unit == 9) return ReadError{ErrorKind::Exception, 2, "02 illegal data address"};
    held_ = values[0];
    return {};
  }
  bool canWrite() const override { return true; }
  std::string describe() const override { return "recording"; }

 private:
  void add(std::string s) {
    std::lock_guard lock(mutex_);
    log_->push_back(std::move(s));
  }
  std::mutex mutex_;
  std::shared_ptr<std::vector<std::string>> log_;
  std::shared_future<void> release_;
  std::shared_ptr<std::promise<void>> started_;
  bool first_ = true;
  std::uint16_t held_ = 0;
};

Job pollJob(std::uint8_t unit, std::vector<std::uint16_t> addresses, std::function<void(JobResult&&)> done) {
  Job j;
  j.unit = unit;
  j.timeout = 300ms;
  for (auto a : addresses) j.requests.push_back(ReadRequest{pb::HOLDING_REGISTER, a, 1, {0}});
  j.done = std::move(done);
  return j;
}

Job writeJob(std::uint8_t unit, std::uint16_t address, std::uint16_t value, std::function<void(JobResult&&)> done) {
  Job j = pollJob(unit, {address}, std::move(done));
  j.write = WriteRequest{pb::HOLDING_REGISTER, address, {value}};
  return j;
}

}  // namespace

TEST_CASE("a write goes between two transactions of a running poll, and before due polls") {
  testing::ManualClock clock;
  boost::asio::io_context ioc;
  auto log = std::make_shared<std::vector<std::string>>();
  std::promise<void> release;
  auto started = std::make_shared<std::promise<void>>();
  auto startedFuture = started->get_future();
  BusWorker worker(ioc.get_executor(), clock,
                   std::make_unique<RecordingTransport>(log, release.get_future().share(), started), 0ms, 8);
  REQUIRE(worker.start().ok());
  std::vector<std::string> done;
  std::optional<JobResult> written;
  REQUIRE(worker.submit(pollJob(1, {0, 1, 2}, [&](JobResult&&) { done.push_back("poll1"); })));
  startedFuture.wait();  // the poll's first transaction is running
  REQUIRE(worker.submit(pollJob(2, {0}, [&](JobResult&&) { done.push_back("poll2"); })));  // due, queued first
  REQUIRE(worker.submit(writeJob(1, 10, 77, [&](JobResult&& r) {
    done.push_back("write");
    written = std::move(r);
  })));
  release.set_value();
  ioc.run();
  // The running transaction ended; the write and its read-back came before the poll's next
  // transaction, and before the poll of unit 2 that was due earlier.
  CHECK(*log == std::vector<std::string>{"r1:0", "w1:10", "r1:10", "r1:1", "r1:2", "r2:0"});
  CHECK(done == std::vector<std::string>{"write", "poll1", "poll2"});
  REQUIRE(written);
  REQUIRE(written->writeError);
  CHECK(written->writeError->ok());
  CHECK(written->data.at(0) == 77);  // read back
}

TEST_CASE("a write the device refuses is not read back") {
  testing::ManualClock clock;
  boost::asio::io_context ioc;
  auto log = std::make_shared<std::vector<std::string>>();
  std::promise<void> release;
  release.set_value();
  auto started = std::make_shared<std::promise<void>>();
  BusWorker worker(ioc.get_executor(), clock,
                   std::make_unique<RecordingTransport>(log, release.get_future().share(), started), 0ms, 8);
  REQUIRE(worker.start().ok());
  std::optional<JobResult> result;
  REQUIRE(worker.submit(writeJob(9, 10, 1, [&](JobResult&& r) { result = std::move(r); })));
  ioc.run();
  REQUIRE(result);
  REQUIRE(result->writeError);
  CHECK(result->writeError->kind == ErrorKind::Exception);
  CHECK(result->attempted == 0);
  CHECK(*log == std::vector<std::string>{"w9:10"});
}
