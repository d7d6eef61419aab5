// The clock's synchronisation: ClockSyncMonitor on a manual clock with a source the test sets, and
// the flag it gives every reading through the pipeline (Reading.clock_unsynchronised).
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <vector>

#include "core/clock_sync.hpp"
#include "core/pipeline.hpp"
#include "core/wire.hpp"
#include "spool/memory_spool.hpp"
#include "support/generic_sensor.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::core;
using namespace std::chrono_literals;
namespace pb = citygate::v1;

namespace {

// Says what the test sets; counts the questions.
class FakeClockSync final : public ClockSyncSource {
 public:
  ClockSyncStatus query() override {
    ++queries;
    return status;
  }
  ClockSyncStatus status;
  int queries = 0;
};

ClockSyncStatus state(ClockSyncState s) {
  ClockSyncStatus st;
  st.state = s;
  if (s == ClockSyncState::Unknown) st.error = "adjtimex: Operation not permitted";
  return st;
}

// Keeps every reading it is given and acknowledges at once.
class KeepingSink final : public Sink {
 public:
  std::string_view name() const override { return "keep"; }
  bool ready() const override { return true; }
  void beginBatch(std::string&) override {}
  void addRecord(std::string& payload, std::uint64_t, std::string_view record) override {
    wire::appendLengthDelimited(payload, pb::ReadingBatch::kReadingsFieldNumber, record);
  }
  void asyncDeliver(std::string payload, std::uint32_t, std::function<void(Outcome)> done) override {
    pb::ReadingBatch b;
    REQUIRE(b.ParseFromString(payload));
    for (const auto& r : b.readings()) readings.push_back(r);
    pending.push_back(std::move(done));
  }
  void setReadyCallback(std::function<void(bool)>) override {}
  // Completes every delivery in flight (and those their completion starts).
  void ackAll() {
    while (!pending.empty()) {
      auto p = std::move(pending);
      pending.clear();
      for (auto& d : p) d(Outcome::Delivered);
    }
  }
  std::vector<pb::Reading> readings;
  std::vector<std::function<void(Outcome)>> pending;
};

}  // namespace

TEST_CASE("the monitor asks at start and every 5 s, keeps the answer, and calls back on a change only") {
  testing::ManualClock clock;
  FakeClockSync source;
  source.status = state(ClockSyncState::Unsynchronised);
  ClockSyncMonitor monitor(clock, source);
  std::vector<std::pair<ClockSyncState, std::optional<ClockSyncState>>> changes;
  monitor.start([&](const ClockSyncStatus& now, std::optional<ClockSyncState> before) {
    changes.emplace_back(now.state, before);
  });
  CHECK(source.queries == 1);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].first == ClockSyncState::Unsynchronised);
  CHECK_FALSE(changes[0].second.has_value());
  CHECK(monitor.unsynchronised());
  const auto started = monitor.since();
  REQUIRE(started.has_value());

  clock.advance(4s);
  CHECK(source.queries == 1);
  clock.advance(1s);
  CHECK(source.queries == 2);
  CHECK(changes.size() == 1);  // same answer: no callback
  CHECK(monitor.since() == started);

  source.status = state(ClockSyncState::Synchronised);
  source.status.maxErrorUs = 12000;
  clock.advance(5s);
  CHECK(source.queries == 3);
  REQUIRE(changes.size() == 2);
  CHECK(changes[1].first == ClockSyncState::Synchronised);
  CHECK(changes[1].second == ClockSyncState::Unsynchronised);
  CHECK_FALSE(monitor.unsynchronised());
  CHECK(monitor.status().maxErrorUs == 12000);
  CHECK(*monitor.since() == clock.steadyNow());

  monitor.stop();
  clock.advance(60s);
  CHECK(source.queries == 3);
}

TEST_CASE("a clock whose state cannot be read counts as not synchronised") {
  testing::ManualClock clock;
  FakeClockSync source;
  source.status = state(ClockSyncState::Unknown);
  ClockSyncMonitor monitor(clock, source);
  monitor.start([](const ClockSyncStatus&, std::optional<ClockSyncState>) {});
  CHECK(monitor.unsynchronised());
  CHECK(monitor.status().error == "adjtimex: Operation not permitted");
  CHECK(std::string(clockSyncName(monitor.status().state)) == "unknown");
}

TEST_CASE("the kernel's answer is one of the three states, and an error only with unknown") {
  KernelClockSync kernel;
  const auto s = kernel.query();
  CHECK((s.state == ClockSyncState::Synchronised || s.state == ClockSyncState::Unsynchronised ||
         s.state == ClockSyncState::Unknown));
  CHECK(s.error.empty() == (s.state != ClockSyncState::Unknown));
}

TEST_CASE("readings carry clock_unsynchronised while the injected clock source says so, and not after") {
  testing::ManualClock clock;
  FakeClockSync source;
  source.status = state(ClockSyncState::Unsynchronised);
  spool::MemorySpool spool{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  KeepingSink sink;
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  PipelineOptions o;
  o.maxBatchReadings = 1;
  auto pipeline = std::make_shared<Pipeline>(
      clock, o, spool, sink, seq,
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  pipeline->start();
  ClockSyncMonitor monitor(clock, source);
  // As app::Gateway wires them: the pipeline's flag follows the monitor.
  monitor.start([&](const ClockSyncStatus&, std::optional<ClockSyncState>) {
    pipeline->setClockUnsynchronised(monitor.unsynchronised());
  });
  const SensorSpec spec = testing::genericSensor("s");
  SensorMemory memory;
  auto submit = [&](double v) {
    RawSample s;
    s.observedAt = clock.wallNow();
    s.values.push_back(RawValue{v, RawValue::State::Ok});
    pipeline->submit(spec, memory, std::move(s));
    sink.ackAll();
  };

  submit(1);
  submit(2);
  source.status = state(ClockSyncState::Synchronised);
  clock.advance(ClockSyncMonitor::kDefaultEvery);
  submit(3);
  source.status = state(ClockSyncState::Unknown);
  clock.advance(ClockSyncMonitor::kDefaultEvery);
  submit(4);
  pipeline->stop();

  REQUIRE(sink.readings.size() == 4);
  CHECK(sink.readings[0].clock_unsynchronised());
  CHECK(sink.readings[1].clock_unsynchronised());
  CHECK_FALSE(sink.readings[2].clock_unsynchronised());
  CHECK(sink.readings[3].clock_unsynchronised());
  // The generic observation (written after the reading's own fields) is intact beside the flag.
  CHECK(sink.readings[0].has_generic());
  CHECK(sink.readings[3].seq() == 4);
}
