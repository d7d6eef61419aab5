// Stopping a bus never waits on the executor for its worker: the worker may be inside a slow
// transaction (a fake transport that blocks until released); the source stays alive until the
// thread ended, and its `ended` callback says so.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "core/clock.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "support/run_until.hpp"

using namespace citygate;
using namespace citygate::modbus;
namespace pb = citygate::v1;
using namespace std::chrono_literals;
using citygate::testing::runUntil;

namespace {

struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool inRead = false;
  bool released = false;
  bool closed = false;
};

// A read that blocks until released (5 s at most, so that a regression fails instead of hanging).
class StuckTransport final : public Transport {
 public:
  explicit StuckTransport(std::shared_ptr<Gate> g) : g_(std::move(g)) {}
  ReadError connect() override { return {}; }
  void close() override {
    std::lock_guard lock(g_->m);
    g_->closed = true;
  }
  bool isOpen() const override { return true; }
  ReadError read(std::uint8_t, pb::RegisterTable, std::uint16_t, std::uint16_t count, std::chrono::milliseconds,
                 std::span<std::uint16_t> out) override {
    std::unique_lock lock(g_->m);
    g_->inRead = true;
    g_->cv.notify_all();
    g_->cv.wait_for(lock, 5s, [&] { return g_->released; });
    for (std::size_t i = 0; i < count; ++i) out[i] = 1;
    return {};
  }
  std::vector<DiscardedFrames> takeDiscarded() override { return {}; }
  std::string describe() const override { return "stuck"; }

 private:
  std::shared_ptr<Gate> g_;
};

}  // namespace

TEST_CASE("stopping a bus returns at once while its worker is stuck in a transaction, it ends later") {
  boost::asio::io_context ioc;
  auto gate = std::make_shared<Gate>();
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = "slow";
  sensor->kind = pb::GENERIC;
  core::PointSpec p;
  p.name = "v";
  p.field = core::FieldRef{pb::GENERIC, -1};
  sensor->points.push_back(p);
  core::buildGroups(*sensor);
  DeviceSpec d;
  d.sensor = sensor;
  d.unitId = 1;
  d.interval = 1000ms;
  d.timeout = 100ms;
  PointRead r;
  r.table = pb::HOLDING_REGISTER;
  r.type = pb::UINT16;
  d.reads.push_back(r);
  BusSpec b;
  b.name = "test";
  b.devices.push_back(d);
  int samples = 0;
  core::SystemClock clock(ioc.get_executor());
  auto source = std::make_shared<BusSource>(
      ioc.get_executor(), clock, b, std::make_unique<StuckTransport>(gate),
      [&samples](const core::SensorSpec&, core::SensorMemory&, core::RawSample&&) { ++samples; }, [] { return true; },
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  REQUIRE(source->start());
  REQUIRE(runUntil(ioc, [&] {
    std::lock_guard lock(gate->m);
    return gate->inRead;
  }));

  bool ended = false;
  std::weak_ptr<BusSource> weak = source;
  source->stop([&ended] { ended = true; });  // before: joined the worker here, on the executor, until the read ended
  {
    std::lock_guard lock(gate->m);
    CHECK_FALSE(gate->released);  // stop() came back while the read still hangs
    CHECK_FALSE(gate->closed);
  }
  source.reset();
  CHECK_FALSE(weak.expired());  // kept alive until its thread ended
  ioc.poll();
  CHECK_FALSE(ended);

  {
    std::lock_guard lock(gate->m);
    gate->released = true;
    gate->cv.notify_all();
  }
  REQUIRE(runUntil(ioc, [&] { return ended; }));
  CHECK(gate->closed);
  CHECK(samples == 0);  // the late result of a stopped bus is not submitted
  REQUIRE(runUntil(ioc, [&] { return weak.expired(); }));
}
