// BusWorker: a job nobody waits for any more (Job::cancelled, set when a control client goes away
// during `modbus read` or `scan`) does not hold the bus.
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <mutex>
#include <thread>

#include "inputs/modbus/worker.hpp"

using namespace citygate;
using namespace citygate::modbus;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

// Every read is a dead unit's: it costs its timeout. Counts the reads per unit.
class DeadTransport final : public Transport {
 public:
  explicit DeadTransport(std::shared_ptr<std::map<int, int>> reads) : reads_(std::move(reads)) {}
  ReadError connect() override { return {}; }
  void close() override {}
  bool isOpen() const override { return true; }
  ReadError read(std::uint8_t unit, pb::RegisterTable, std::uint16_t, std::uint16_t, std::chrono::milliseconds timeout,
                 std::span<std::uint16_t>) override {
    {
      std::lock_guard lock(mutex_);
      ++(*reads_)[unit];
    }
    std::this_thread::sleep_for(timeout);
    return ReadError{ErrorKind::Timeout, 0, "timeout"};
  }
  std::string describe() const override { return "dead"; }

 private:
  std::mutex mutex_;
  std::shared_ptr<std::map<int, int>> reads_;
};

}  // namespace

TEST_CASE("a cancelled job is skipped without touching the bus, and its done still runs") {
  boost::asio::io_context ioc;
  auto reads = std::make_shared<std::map<int, int>>();
  BusWorker worker(ioc.get_executor(), std::make_unique<DeadTransport>(reads), 0ms, 8);
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
  REQUIRE(worker.submit(job(1, nullptr)));    // running: one timeout (300 ms), then aborted
  REQUIRE(worker.submit(job(2, cancelled)));  // queued behind it; its client goes away
  cancelled->store(true);
  REQUIRE(worker.submit(job(3, nullptr)));
  ioc.run();
  CHECK(done == std::vector<int>{1, 2, 3});
  CHECK(reads->count(2) == 0);
  CHECK(reads->at(1) == 1);
  CHECK(reads->at(3) == 1);  // two timeouts, not three: the cancelled job did not hold the bus
}
