// BusWorker: a job nobody waits for any more (Job::cancelled, set when a control client goes away
// during `modbus read` or `scan`) does not hold the bus.
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <future>
#include <mutex>
#include <thread>

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
