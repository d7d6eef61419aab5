// BusSource's state history and "try again now", on a manual clock with a fake Transport at the
// seam: since when a device is in its state, its last error and when it happened (kept once it
// recovered), the end of a backoff by `device ID --retry` (retryNow) or by a successful ad-hoc
// read of its unit, and the bus link's own health (a TCP connect refused, a serial port missing).
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/time.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::modbus;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

struct Peer {
  std::mutex mutex;
  std::set<int> deadUnits;  // answer nothing (a timeout, at once)
  bool linkDown = false;    // the link itself fails (connect refused)
  std::map<int, int> requests;
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(std::shared_ptr<Peer> p) : p_(std::move(p)) {}
  ReadError connect() override { return {}; }
  void close() override {}
  bool isOpen() const override { return true; }
  ReadError read(std::uint8_t unit, pb::RegisterTable, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds, std::span<std::uint16_t> out) override {
    std::lock_guard lock(p_->mutex);
    if (p_->linkDown) return ReadError{ErrorKind::Connection, 0, "cannot connect: Connection refused"};
    ++p_->requests[unit];
    if (p_->deadUnits.contains(unit)) return ReadError{ErrorKind::Timeout, 0, "timeout"};
    for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<std::uint16_t>(address + i);
    return {};
  }
  std::string describe() const override { return "fake"; }

 private:
  std::shared_ptr<Peer> p_;
};

DeviceSpec device(const std::string& id, int unit, std::chrono::milliseconds interval) {
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = id;
  sensor->kind = pb::GENERIC;
  core::PointSpec p;
  p.name = "p0";
  p.field = core::FieldRef{pb::GENERIC, -1};
  sensor->points.push_back(p);
  core::buildGroups(*sensor);
  DeviceSpec d;
  d.sensor = sensor;
  d.unitId = static_cast<std::uint8_t>(unit);
  d.interval = interval;
  d.timeout = 50ms;
  PointRead r;
  r.table = pb::HOLDING_REGISTER;
  r.type = pb::UINT16;
  d.reads.push_back(r);
  d.limits.maxGap = 4;
  return d;
}

struct Run {
  testing::ManualClock clock;
  boost::asio::io_context ioc;
  std::shared_ptr<Peer> peer = std::make_shared<Peer>();
  std::map<std::string, int> samples;
  std::shared_ptr<BusSource> source;

  // A device polled every 50 ms that goes DOWN after 2 failures, with a backoff of 10 min: only
  // a retry brings it back within the test.
  explicit Run(int unit = 9, std::uint32_t failuresToDown = 2) {
    BusSpec b;
    b.name = "cabinet";
    b.config.set_retries(0);
    b.config.set_failures_to_down(failuresToDown);
    b.config.set_backoff_min_ms(600000);
    b.config.set_backoff_max_ms(600000);
    b.devices.push_back(device("air", unit, 50ms));
    source = std::make_shared<BusSource>(
        ioc.get_executor(), clock, std::move(b), std::make_unique<FakeTransport>(peer),
        [this](const core::SensorSpec& s, core::SensorMemory&, core::RawSample&&) { ++samples[s.id]; },
        [] { return true; }, std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>()));
  }
  ~Run() {  // NOLINT(bugprone-exception-escape): a test fixture; asio throws only on a broken io_context
    auto ended = std::make_shared<bool>(false);
    source->stop([ended] { *ended = true; });
    for (int i = 0; i < 1000 && !*ended; ++i) {
      ioc.restart();
      ioc.run_for(10ms);
    }
  }
  // Runs the executor and the worker until nothing is left at the clock's time (a real deadline
  // catches a hung worker).
  void settle() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      if (ioc.stopped()) ioc.restart();
      if (ioc.poll() > 0) continue;
      if (source->workerSettled()) {
        if (ioc.stopped()) ioc.restart();
        if (ioc.poll() == 0) return;
        continue;
      }
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::yield();
    }
  }
  void advance(std::chrono::milliseconds d) {
    for (auto t = 0ms; t < d; t += 1ms) {
      clock.advance(1ms, [this] { settle(); });
      settle();
    }
  }
  // Moves the clock in 1 ms steps until `done` (at most `limit`): the tests do not depend on
  // the phase of the first poll.
  template <typename Pred>
  void advanceUntil(Pred done, std::chrono::milliseconds limit = 500ms) {
    for (auto t = 0ms; !done(); t += 1ms) {
      REQUIRE(t < limit);
      advance(1ms);
    }
  }
  pb::DeviceHealth health() {
    google::protobuf::RepeatedPtrField<pb::DeviceHealth> out;
    source->fillHealth(out);
    return out[0];
  }
  int requests(int unit) {
    std::lock_guard lock(peer->mutex);
    return peer->requests[unit];
  }
  void setDead(int unit, bool dead) {
    std::lock_guard lock(peer->mutex);
    if (dead) {
      peer->deadUnits.insert(unit);
    } else {
      peer->deadUnits.erase(unit);
    }
  }
  // Down: 2 failed polls.
  void goDown() {
    setDead(9, true);
    REQUIRE(source->start());
    settle();
    advanceUntil([this] { return health().state() == pb::DOWN; });
  }
};

WallTime at(const google::protobuf::Timestamp& t) {
  return fromTimestamp(t);
}

}  // namespace

TEST_CASE("state_since follows every change of state, the last error keeps its time after recovery") {
  Run r;
  const WallTime made = r.clock.wallNow();
  CHECK(r.health().state() == pb::OK);
  CHECK(at(r.health().state_since()) == made);
  r.setDead(9, true);
  REQUIRE(r.source->start());
  r.settle();
  r.advanceUntil([&] { return r.health().state() != pb::OK; });  // the first poll fails: DEGRADED
  auto h = r.health();
  const WallTime degraded = r.clock.wallNow();
  CHECK(degraded >= made);  // the first poll comes at start (the same instant on this clock)
  CHECK(h.state() == pb::DEGRADED);
  CHECK(at(h.state_since()) == degraded);
  CHECK(h.last_error().find("timeout") != std::string::npos);
  CHECK(at(h.last_error_at()) == degraded);
  r.advanceUntil([&] { return r.health().state() == pb::DOWN; });  // the second: DOWN
  h = r.health();
  const WallTime down = r.clock.wallNow();
  CHECK(down == degraded + 50ms);
  CHECK(at(h.state_since()) == down);
  CHECK(at(h.last_error_at()) == down);
  // Repaired, and tried at once: OK since now; the error stays as the last one, with its time.
  r.setDead(9, false);
  r.advance(10ms);
  CHECK(r.source->retryNow(0, "test") == BusSource::Retry::Probing);
  r.settle();
  h = r.health();
  CHECK(h.state() == pb::OK);
  CHECK(at(h.state_since()) == down + 10ms);
  CHECK(h.last_error().find("timeout") != std::string::npos);
  CHECK(at(h.last_error_at()) == down);
  CHECK_FALSE(h.has_next_attempt_at());
}

TEST_CASE("retryNow ends a DOWN device's backoff: it is probed at once and polled at its interval again") {
  Run r;
  r.goDown();
  const int before = r.requests(9);
  r.setDead(9, false);  // the repair
  r.advance(500ms);     // ten ticks: the backoff (10 min) holds, nothing is sent
  CHECK(r.requests(9) == before);
  CHECK(r.health().state() == pb::DOWN);
  CHECK(r.samples["air"] == 0);
  CHECK(r.source->retryNow(0, "test") == BusSource::Retry::Probing);
  r.settle();  // no time passes
  CHECK(r.health().state() == pb::OK);
  CHECK(r.requests(9) == before + 2);  // the probe, then the poll it lets through
  CHECK(r.samples["air"] == 1);
  r.advance(50ms);  // its next tick
  CHECK(r.samples["air"] == 2);
  CHECK(r.source->retryNow(0, "test") == BusSource::Retry::NotDown);
}

TEST_CASE("a retry that fails leaves the device DOWN with a new backoff, and costs one request") {
  Run r;
  r.goDown();
  const int before = r.requests(9);
  CHECK(r.source->retryNow(0, "test") == BusSource::Retry::Probing);
  r.settle();
  auto h = r.health();
  CHECK(h.state() == pb::DOWN);
  CHECK(r.requests(9) == before + 1);
  CHECK(at(h.next_attempt_at()) > r.clock.wallNow() + 4min);  // a new window (jitter: half of 10 min at least)
  r.advance(200ms);
  CHECK(r.requests(9) == before + 1);
}

TEST_CASE("a successful ad-hoc read of a DOWN device's unit ends its backoff, a failed one does not") {
  Run r;
  r.goDown();
  std::optional<bool> answered;
  auto read = [&] {
    answered.reset();
    REQUIRE(r.source->adhocRead(9, pb::HOLDING_REGISTER, 0, 1, 50ms,
                                [&](JobResult&& res) { answered = !res.errors.empty() && res.errors[0].ok(); }));
    r.settle();
    REQUIRE(answered.has_value());
  };
  read();  // still dead
  CHECK_FALSE(*answered);
  CHECK(r.health().state() == pb::DOWN);
  r.setDead(9, false);
  read();
  CHECK(*answered);
  CHECK(r.health().state() == pb::OK);  // probed at once, before the next tick
  CHECK(r.samples["air"] == 1);
}

TEST_CASE("the bus link: DOWN while connects fail, with the error and since when, UP again after") {
  Run r(1, 1000);  // the device keeps being polled
  const WallTime made = r.clock.wallNow();
  CHECK(r.source->linkHealth().state() == pb::BUS_STATE_UNSPECIFIED);
  {
    std::lock_guard lock(r.peer->mutex);
    r.peer->linkDown = true;
  }
  REQUIRE(r.source->start());
  r.settle();
  r.advanceUntil([&] { return r.source->linkHealth().state() != pb::BUS_STATE_UNSPECIFIED; });
  auto l = r.source->linkHealth();
  const WallTime down = r.clock.wallNow();
  CHECK(down >= made);  // the first poll comes at start
  CHECK(l.state() == pb::BUS_DOWN);
  CHECK(l.last_error().find("Connection refused") != std::string::npos);
  CHECK(at(l.since()) == down);
  CHECK(l.link_failures() == 1);
  {
    std::lock_guard lock(r.peer->mutex);
    r.peer->linkDown = false;
  }
  r.advanceUntil([&] { return r.source->linkHealth().state() == pb::BUS_UP; });
  l = r.source->linkHealth();
  CHECK(at(l.since()) == r.clock.wallNow());
  CHECK(l.last_error().find("Connection refused") != std::string::npos);  // kept, with its time
  CHECK(at(l.last_error_at()) == down);
}
