// BusSource on a real io_context with a fake Transport at the seam, on a manual clock: time moves
// in 1 ms steps, and after each step the test waits (for the event, with a deadline) until the bus
// worker has run every job due and the executor every result. A dead unit answers at once with a
// timeout: its cost in time is the transport's, not the schedule's, which is what these test.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "inputs/modbus/bus_source.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::modbus;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

struct FakeState {
  std::mutex mutex;
  std::map<int, int> requestsPerUnit;
  std::set<int> deadUnits;
  std::set<int> refuseMergedUnits;  // exception 02 for reads of more than one register
  int maxCount = 0;
  int drift = 0;  // added to every value on each read (report-by-exception tests)
  int reads = 0;
  std::map<int, std::vector<DiscardedFrames>> discardsWhenReading;  // by the unit read
  std::vector<DiscardedFrames> discarded;                           // not yet taken
  // A read of a held unit blocks until released: a poll still running while time moves.
  std::set<int> heldUnits;
  int readsInProgress = 0;
  std::condition_variable changed;
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(std::shared_ptr<FakeState> s) : s_(std::move(s)) {}
  ReadError connect() override { return {}; }
  void close() override {}
  bool isOpen() const override { return true; }
  ReadError read(std::uint8_t unit, pb::RegisterTable, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds, std::span<std::uint16_t> out) override {
    {
      std::unique_lock lock(s_->mutex);
      ++s_->readsInProgress;
      s_->changed.notify_all();
      s_->changed.wait(lock, [&] { return !s_->heldUnits.contains(unit); });
      --s_->readsInProgress;
      ++s_->requestsPerUnit[unit];
      s_->maxCount = std::max<int>(s_->maxCount, count);
      for (const auto& d : s_->discardsWhenReading[unit]) addDiscarded(s_->discarded, d.unit, d.frames);
      if (s_->deadUnits.contains(unit)) {
        return ReadError{ErrorKind::Timeout, 0, "timeout"};  // at once (see the top of the file)
      } else if (s_->refuseMergedUnits.contains(unit) && count > 1) {
        return ReadError{ErrorKind::Exception, 2, "02 illegal data address"};
      } else {
        ++s_->reads;
        for (std::size_t i = 0; i < count; ++i) {
          out[i] = static_cast<std::uint16_t>(address + i + unit * 100 + s_->drift * s_->reads);
        }
        return {};
      }
    }
  }
  std::vector<DiscardedFrames> takeDiscarded() override {
    std::lock_guard lock(s_->mutex);
    return std::exchange(s_->discarded, {});
  }
  std::string describe() const override { return "fake"; }

 private:
  std::shared_ptr<FakeState> s_;
};

DeviceSpec device(const std::string& id, int unit, std::chrono::milliseconds interval, int points) {
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = id;
  sensor->kind = pb::GENERIC;
  DeviceSpec d;
  d.unitId = static_cast<std::uint8_t>(unit);
  d.interval = interval;
  d.timeout = std::chrono::milliseconds(50);
  for (int i = 0; i < points; ++i) {
    core::PointSpec p;
    p.name = "p" + std::to_string(i);
    p.field = core::FieldRef{pb::GENERIC, -1};
    p.address = static_cast<std::uint32_t>(i * 2);
    sensor->points.push_back(p);
    PointRead r;
    r.table = pb::HOLDING_REGISTER;
    r.address = static_cast<std::uint32_t>(i * 2);
    r.type = pb::UINT16;
    d.reads.push_back(r);
  }
  core::buildGroups(*sensor);
  d.sensor = sensor;
  d.limits.maxGap = 4;
  return d;
}

std::shared_ptr<spdlog::logger> quietLog() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// Runs the executor and waits for `worker` (a BusWorker or a BusSource) until neither has anything
// left to do at the manual clock's time. Fails after a real deadline (a hung worker).
template <typename Worker>
void settle(boost::asio::io_context& ioc, Worker&& workerSettled) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    if (ioc.stopped()) ioc.restart();  // it stops whenever it runs out of work
    if (ioc.poll() > 0) continue;
    if (workerSettled()) {
      if (ioc.stopped()) ioc.restart();
      if (ioc.poll() == 0) return;
      continue;
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::yield();
  }
}

struct Run {
  testing::ManualClock clock;
  boost::asio::io_context ioc;
  std::shared_ptr<FakeState> state = std::make_shared<FakeState>();
  std::map<std::string, int> samples;
  std::map<std::string, std::vector<double>> lastValues;
  std::map<std::string, std::vector<core::RawValue::State>> lastStates;
  std::shared_ptr<BusSource> source;

  void make(BusSpec spec) {
    source = std::make_shared<BusSource>(
        ioc.get_executor(), clock, std::move(spec), std::make_unique<FakeTransport>(state),
        [this](const core::SensorSpec& s, core::SensorMemory&, core::RawSample&& raw) {
          ++samples[s.id];
          auto& v = lastValues[s.id];
          v.clear();
          for (auto& x : raw.values) v.push_back(x.value);
          auto& st = lastStates[s.id];
          st.clear();
          for (auto& x : raw.values) st.push_back(x.state);
        },
        [] { return true; }, quietLog());
  }
  void settle() {
    ::settle(ioc, [this] { return source->workerSettled(); });
  }
  // Moves the clock by `d` in 1 ms steps, settling after each.
  void advance(std::chrono::milliseconds d) {
    for (auto t = 0ms; t < d; t += 1ms) {
      clock.advance(1ms, [this] { settle(); });
      settle();
    }
  }
  void runFor(std::chrono::milliseconds d) {
    REQUIRE(source->start());
    settle();
    advance(d);
    source->stop();
  }
  // The worker ends off the executor (BusSource::stop): the executor outlives it.
  ~Run() {
    if (!source) return;
    auto ended = std::make_shared<bool>(false);
    source->stop([ended] { *ended = true; });
    for (int i = 0; i < 1000 && !*ended; ++i) {  // the worker's exit is outstanding work: run_for waits
      ioc.restart();
      ioc.run_for(std::chrono::milliseconds(10));
    }
  }
};

BusSpec bus() {
  BusSpec b;
  b.name = "test";
  b.config.set_retries(0);
  b.config.set_failures_to_down(2);
  b.config.set_backoff_min_ms(400);
  b.config.set_backoff_max_ms(400);
  return b;
}

}  // namespace

TEST_CASE("a healthy device is polled at its interval and its values decoded") {
  Run r;
  BusSpec b = bus();
  b.devices.push_back(device("a", 1, std::chrono::milliseconds(50), 3));
  r.make(b);
  r.runFor(std::chrono::milliseconds(530));
  CHECK(r.samples["a"] == 11);  // 0 (at start), 50, 100, ... 500 ms
  CHECK(r.source->counters().skipped == 0);
  CHECK(r.lastValues["a"] == std::vector<double>{100, 102, 104});
  CHECK(r.state->requestsPerUnit[1] == r.samples["a"]);  // the three points merge into one read
}

TEST_CASE("a point whose profile says all ones is not available is BAD on all ones, a value otherwise") {
  Run r;
  BusSpec b = bus();
  DeviceSpec d = device("a", 1, std::chrono::milliseconds(50), 3);
  // The fake answers address + 100 x unit: 65534 and 65535 (all ones), then 65535 without the flag.
  for (std::size_t i = 0; i < 3; ++i)
    d.reads[i].address = 65434 + static_cast<std::uint32_t>(std::min<std::size_t>(i, 1));
  d.reads[0].allOnesNotAvailable = true;
  d.reads[1].allOnesNotAvailable = true;
  b.devices.push_back(d);
  r.make(b);
  r.runFor(std::chrono::milliseconds(10));
  REQUIRE(r.samples["a"] == 1);
  using State = core::RawValue::State;
  CHECK(r.lastStates["a"] == std::vector<State>{State::Ok, State::Bad, State::Ok});
  CHECK(r.lastValues["a"][0] == 65534);
  CHECK(r.lastValues["a"][2] == 65535);  // no flag: a number like any other
}

TEST_CASE("every device's first poll falls within its first interval, none skipped at start") {
  // After a start, an apply or a SIGHUP (each starts a new schedule): with a 60 s interval a
  // device polled one interval late would publish its first reading a minute late.
  Run r;
  BusSpec b = bus();
  for (int unit = 1; unit <= 3; ++unit) {
    b.devices.push_back(device("d" + std::to_string(unit), unit, 300ms, 1));
  }
  r.make(b);
  REQUIRE(r.source->start());
  r.settle();
  CHECK(r.samples["d1"] == 1);  // at once
  r.advance(299ms);             // phases 0, 100 and 200 ms
  CHECK(r.samples["d1"] == 1);
  CHECK(r.samples["d2"] == 1);
  CHECK(r.samples["d3"] == 1);
  CHECK(r.source->counters().skipped == 0);
  google::protobuf::RepeatedPtrField<pb::DeviceHealth> health;
  r.source->fillHealth(health);
  for (const auto& h : health) CHECK(h.polls_skipped() == 0);
  r.advance(1ms);  // 300 ms: the second round begins
  CHECK(r.samples["d1"] == 2);
  r.source->stop();
}

TEST_CASE("a dead device goes DOWN and costs one timeout per backoff window") {
  Run r;
  r.state->deadUnits.insert(9);
  BusSpec b = bus();
  b.devices.push_back(device("dead", 9, std::chrono::milliseconds(50), 2));
  b.devices.push_back(device("ok1", 1, std::chrono::milliseconds(50), 2));
  b.devices.push_back(device("ok2", 2, std::chrono::milliseconds(50), 2));
  r.make(b);
  r.runFor(std::chrono::milliseconds(2000));
  // 2 failures to go DOWN (at 50 and 100 ms), then one probe per window of 200..400 ms (jitter),
  // each at the first tick after it: between 2 + 1900/450 and 2 + 1900/200.
  CHECK(r.state->requestsPerUnit[9] <= 11);
  CHECK(r.state->requestsPerUnit[9] >= 6);
  // The healthy ones keep every poll: 40 ticks each.
  CHECK(r.samples["ok1"] == 40);
  CHECK(r.samples["ok2"] == 40);
  google::protobuf::RepeatedPtrField<pb::DeviceHealth> health;
  r.source->fillHealth(health);
  CHECK(health[0].state() == pb::DOWN);
  CHECK(health[0].timeouts() >= 3);
  CHECK(health[1].state() == pb::OK);
}

TEST_CASE("exception 02 on a merged read splits it, remembers the split, and carries on") {
  Run r;
  r.state->refuseMergedUnits.insert(4);
  BusSpec b = bus();
  b.devices.push_back(device("picky", 4, std::chrono::milliseconds(100), 3));
  r.make(b);
  r.runFor(std::chrono::milliseconds(450));
  CHECK(r.samples["picky"] == 5);  // 0, 100, 200, 300, 400 ms
  CHECK(r.lastValues["picky"] == std::vector<double>{400, 402, 404});
  CHECK(r.source->counters().splits == 1);
}

TEST_CASE("a tick that finds the previous poll still running is skipped and counted") {
  Run r;
  r.state->deadUnits.insert(3);
  r.state->heldUnits.insert(3);
  BusSpec b = bus();
  b.config.set_failures_to_down(1000);  // keep polling it
  b.devices.push_back(device("slow", 3, 20ms, 1));
  r.make(b);
  REQUIRE(r.source->start());
  r.source->workerSettled();  // wakes the worker: the first poll is due at start
  {
    // Wait for the event: the worker has begun the read (and blocks in it).
    std::unique_lock lock(r.state->mutex);
    const bool began = r.state->changed.wait_for(lock, 10s, [&] { return r.state->readsInProgress > 0; });
    REQUIRE(began);
  }
  CHECK(r.source->counters().skipped == 0);
  r.clock.advance(500ms);  // 25 ticks while the poll runs
  {
    std::lock_guard lock(r.state->mutex);
    r.state->heldUnits.clear();
  }
  r.state->changed.notify_all();
  r.settle();
  r.source->stop();
  CHECK(r.state->requestsPerUnit[3] == 1);
  CHECK(r.source->counters().skipped == 25);
  CHECK(r.source->counters().polls == 1 + 25 + 1);  // the last: the next poll, queued
}

TEST_CASE("the worker runs jobs by due time: a poll due later waits, an ad-hoc read due now goes first") {
  testing::ManualClock clock;
  boost::asio::io_context ioc;
  auto state = std::make_shared<FakeState>();
  BusWorker worker(ioc.get_executor(), clock, std::make_unique<FakeTransport>(state), 0ms, 4);
  REQUIRE(worker.start());
  std::vector<int> order;
  auto job = [&](int unit, SteadyTime due) {
    Job j;
    j.due = due;
    j.unit = static_cast<std::uint8_t>(unit);
    j.requests.push_back(ReadRequest{pb::HOLDING_REGISTER, 0, 1, {0}});
    j.done = [&, unit](JobResult&& r) {
      CHECK(r.errors.at(0).ok());
      order.push_back(unit);
    };
    return j;
  };
  REQUIRE(worker.submit(job(1, clock.steadyNow() + 150ms)));  // a poll due at its tick
  REQUIRE(worker.submit(job(2, {})));                         // an ad-hoc read: at once
  settle(ioc, [&] { return worker.settled(); });
  CHECK(order == std::vector<int>{2});
  clock.advance(149ms);
  settle(ioc, [&] { return worker.settled(); });
  CHECK(order == std::vector<int>{2});
  clock.advance(1ms);
  settle(ioc, [&] { return worker.settled(); });
  CHECK(order == std::vector<int>{2, 1});
  worker.stop();
}

TEST_CASE("a bus whose worker thread the system refuses fails to start with a message, not an abort") {
  // A real refusal, not a fake: a child process under RLIMIT_NPROC 1 (as an unprivileged user when
  // run as root, who is exempt) cannot create a thread, as citygated cannot under TasksMax.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    const rlimit one{1, 1};
    if (::setrlimit(RLIMIT_NPROC, &one) != 0) ::_exit(4);
    Run r;
    BusSpec b = bus();
    b.devices.push_back(device("a", 1, std::chrono::milliseconds(50), 1));
    r.make(b);
    const Status st = r.source->start();
    if (st) ::_exit(5);
    if (st.error().find("cannot create the bus worker thread") == std::string::npos) ::_exit(6);
    r.source->stop();  // safe without a thread
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));  // not killed by std::terminate's abort
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("discarded answers count on the device they came from, else on the device asked") {
  Run r;
  // Every read of unit 1 meets a late answer of unit 2 and a frame from unit 9 (no device here).
  r.state->discardsWhenReading[1] = {DiscardedFrames{2, 1}, DiscardedFrames{9, 2}};
  BusSpec b = bus();
  b.devices.push_back(device("one", 1, std::chrono::milliseconds(100), 1));
  b.devices.push_back(device("two", 2, std::chrono::milliseconds(100), 1));
  r.make(b);
  r.runFor(std::chrono::milliseconds(450));
  REQUIRE(r.state->requestsPerUnit[1] == 5);  // 0, 100, 200, 300, 400 ms, every result handled
  google::protobuf::RepeatedPtrField<pb::DeviceHealth> health;
  r.source->fillHealth(health);
  CHECK(health[1].answers_discarded() == 5);   // unit 2's own late answers
  CHECK(health[0].answers_discarded() == 10);  // unit 9's, on the device asked
  CHECK(r.source->counters().discarded == 15);
}
