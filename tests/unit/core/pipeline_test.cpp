// Pipeline on a manual clock (no sleeping) with fake sinks and the memory spool.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "core/pipeline.hpp"
#include "core/wire.hpp"
#include "spool/memory_spool.hpp"
#include "support/generic_sensor.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::core;
namespace pb = citygate::v1;

namespace {

std::vector<std::uint64_t> seqs(const pb::ReadingBatch& b) {
  std::vector<std::uint64_t> v;
  for (const auto& r : b.readings()) v.push_back(r.seq());
  return v;
}

// Frames a ReadingBatch as the native sink does; keeps every batch it is given and its completion.
class FakeSink final : public Sink {
 public:
  explicit FakeSink(std::string name = "fake") : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  bool ready() const override { return ready_; }
  void beginBatch(std::string& payload) override {
    wire::appendString(payload, pb::ReadingBatch::kGatewayIdFieldNumber, "gw");
  }
  void addRecord(std::string& payload, std::uint64_t seq, std::string_view record) override {
    CHECK(seq > lastRecordSeq_);  // oldest first within a batch
    lastRecordSeq_ = seq;
    wire::appendLengthDelimited(payload, pb::ReadingBatch::kReadingsFieldNumber, record);
  }
  void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(Outcome)> done) override {
    lastRecordSeq_ = 0;
    pb::ReadingBatch b;
    REQUIRE(b.ParseFromString(payload));
    CHECK(b.readings_size() == static_cast<int>(count));
    CHECK(b.gateway_id() == "gw");
    batches.push_back(b);
    pending.push_back(std::move(done));
    pendingBatches.push_back(b);
  }
  void setReadyCallback(std::function<void(bool)> cb) override { cb_ = std::move(cb); }
  void setReady(bool r) {
    ready_ = r;
    if (!r) {
      pending.clear();
      pendingBatches.clear();
    }
    if (cb_) cb_(r);
  }
  void ackAll() { completeAll(Outcome::Delivered); }
  // Completes every batch in flight with `o`, oldest first; Delivered ones count in `delivered`.
  void completeAll(Outcome o) {
    auto p = std::move(pending);
    auto b = std::move(pendingBatches);
    pending.clear();
    pendingBatches.clear();
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (o == Outcome::Delivered) {
        for (auto s : seqs(b[i])) delivered.push_back(s);
      }
      p[i](o);
    }
  }
  std::vector<pb::ReadingBatch> batches;
  std::vector<std::function<void(Outcome)>> pending;
  std::vector<pb::ReadingBatch> pendingBatches;  // aligned with pending
  std::vector<std::uint64_t> delivered;          // seqs of the batches completed as Delivered

 private:
  std::string name_;
  std::uint64_t lastRecordSeq_ = 0;
  bool ready_ = true;
  std::function<void(bool)> cb_;
};

struct Fixture {
  testing::ManualClock clock;
  spool::MemorySpool spool{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  FakeSink sink;
  SeqStore seq{"", false};
  SensorSpec spec;
  SensorMemory memory;
  std::shared_ptr<Pipeline> pipeline;

  explicit Fixture(std::uint32_t maxBatch = 3, std::chrono::milliseconds delay = std::chrono::milliseconds(50),
                   spool::Spool* other = nullptr) {
    REQUIRE(seq.open(0));
    spec = testing::genericSensor("s");
    PipelineOptions o;
    o.maxBatchReadings = maxBatch;
    o.maxBatchDelay = delay;
    o.retryDelay = std::chrono::milliseconds(10);
    pipeline = std::make_shared<Pipeline>(
        clock, o, other ? *other : spool, sink, seq,
        std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
    pipeline->start();
  }
  void submit(double v) {
    RawSample s;
    s.observedAt = clock.wallNow();
    s.values.push_back(RawValue{v, RawValue::State::Ok});
    pipeline->submit(spec, memory, std::move(s));
  }
};

// A spool whose records become readable only on release(), like a group commit that comes later.
class LateSpool final : public spool::Spool {
 public:
  spool::AppendResult append(std::uint64_t seq, std::string_view record) override { return inner.append(seq, record); }
  spool::ReaderId addReader() override { return inner.addReader(); }
  std::size_t readers() const override { return inner.readers(); }
  spool::ReadResult readBatch(spool::ReaderId reader, std::size_t maxRecords, std::size_t maxBytes,
                              spool::RecordVisitor& to) override {
    return released ? inner.readBatch(reader, maxRecords, maxBytes, to) : spool::ReadResult{};
  }
  void acknowledge(std::uint64_t lastSeq) override { inner.acknowledge(lastSeq); }
  void rewindReader(spool::ReaderId reader, std::uint64_t afterSeq) override { inner.rewindReader(reader, afterSeq); }
  std::uint64_t unreadBy(spool::ReaderId reader) const override { return released ? inner.unreadBy(reader) : 0; }
  spool::SpoolStats stats() const override { return inner.stats(); }
  std::uint64_t recoveredNextSeq() const override { return 0; }
  void setReadableCallback(std::function<void()> cb) override { readable = std::move(cb); }
  void close() override {}
  void release() {
    released = true;
    readable();
  }

  spool::MemorySpool inner{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  bool released = false;
  std::function<void()> readable;
};

}  // namespace

TEST_CASE("a full batch goes at once, a partial one at once on an idle link, else after max_batch_delay or an ack") {
  Fixture f(3, std::chrono::milliseconds(50));
  f.submit(1);  // nothing in flight: at once (latency is one round trip)
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(seqs(f.sink.batches[0]) == std::vector<std::uint64_t>{1});
  f.submit(2);  // behind the batch in flight: they wait and grow
  f.submit(3);
  CHECK(f.sink.batches.size() == 1);
  f.submit(4);  // full
  REQUIRE(f.sink.batches.size() == 2);
  CHECK(seqs(f.sink.batches[1]) == std::vector<std::uint64_t>{2, 3, 4});
  f.submit(5);
  f.clock.advance(std::chrono::milliseconds(49));
  CHECK(f.sink.batches.size() == 2);
  f.clock.advance(std::chrono::milliseconds(1));  // max_batch_delay since it was numbered
  REQUIRE(f.sink.batches.size() == 3);
  CHECK(seqs(f.sink.batches[2]) == std::vector<std::uint64_t>{5});
  f.submit(6);
  CHECK(f.sink.batches.size() == 3);
  f.sink.ackAll();  // the batches in flight acknowledged: the partial one goes
  REQUIRE(f.sink.batches.size() == 4);
  CHECK(seqs(f.sink.batches[3]) == std::vector<std::uint64_t>{6});
}

TEST_CASE("the batch delay counts from numbering: a reading readable late goes as soon as it is readable") {
  LateSpool late;
  Fixture f(10, std::chrono::milliseconds(30), &late);
  f.submit(1);
  CHECK(f.clock.armedTimers() == 0);  // nothing readable, so no timer either
  // The delay passes while the record is not yet durable.
  f.clock.advance(std::chrono::milliseconds(40));
  CHECK(f.sink.batches.empty());
  late.release();  // the group commit: due already, so no second wait
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(seqs(f.sink.batches[0]) == std::vector<std::uint64_t>{1});
  f.submit(2);  // the next one waits its own delay
  CHECK(f.sink.batches.size() == 1);
  f.clock.advance(std::chrono::milliseconds(29));
  CHECK(f.sink.batches.size() == 1);
  f.clock.advance(std::chrono::milliseconds(1));
  REQUIRE(f.sink.batches.size() == 2);
  CHECK(seqs(f.sink.batches[1]) == std::vector<std::uint64_t>{2});
}

TEST_CASE("only delivered batches leave the spool") {
  Fixture f(2);
  for (int i = 0; i < 4; ++i) f.submit(i);
  // 1 alone (the link was idle), then 2..3 (full); 4 waits behind them.
  CHECK(f.sink.batches.size() == 2);
  CHECK(f.spool.stats().readings == 4);
  f.sink.ackAll();
  CHECK(f.spool.stats().readings == 1);  // 4 went at once when the link was idle again
  CHECK(f.sink.batches.size() == 3);
  f.sink.ackAll();
  CHECK(f.spool.stats().readings == 0);
  CHECK(f.pipeline->stats().readingsDelivered == 4);
}

TEST_CASE("a lost link resends every unacknowledged reading, in order") {
  Fixture f(2);
  for (int i = 0; i < 4; ++i) f.submit(i);
  REQUIRE(f.sink.batches.size() == 2);
  f.sink.setReady(false);  // in-flight batches are gone
  f.submit(9);
  CHECK(f.sink.batches.size() == 2);
  f.sink.setReady(true);
  REQUIRE(f.sink.batches.size() >= 4);
  CHECK(seqs(f.sink.batches[2]) == std::vector<std::uint64_t>{1, 2});
  CHECK(seqs(f.sink.batches[3]) == std::vector<std::uint64_t>{3, 4});
  f.sink.ackAll();
  f.clock.advance(std::chrono::milliseconds(80));
  f.sink.ackAll();
  CHECK(f.spool.stats().readings == 0);
}

TEST_CASE("seq is strictly increasing across submits") {
  Fixture f(1);
  for (int i = 0; i < 5; ++i) f.submit(i);
  std::uint64_t last = 0;
  for (const auto& b : f.sink.batches) {
    for (auto s : seqs(b)) {
      CHECK(s == last + 1);
      last = s;
    }
  }
  CHECK(last == 5);
}

TEST_CASE("BLOCK_SOURCES: a full spool pauses the sources and loses nothing") {
  testing::ManualClock clock;
  spool::MemorySpool spool{70 * 1024, pb::SpoolConfig::BLOCK_SOURCES};
  FakeSink sink;
  sink.setReady(false);
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  SensorSpec spec = testing::genericSensor(std::string(200, 's'));
  SensorMemory mem;
  PipelineOptions o;
  o.maxBatchReadings = 1000;
  o.maxBatchDelay = std::chrono::milliseconds(5);
  auto pl = std::make_shared<Pipeline>(
      clock, o, spool, sink, seq,
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  pl->start();
  int n = 0;
  while (pl->accepting() && n < 10000) {
    RawSample s;
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pl->submit(spec, mem, std::move(s));
    ++n;
  }
  CHECK_FALSE(pl->accepting());
  CHECK(spool.stats().dropped == 0);
  sink.setReady(true);
  for (int round = 0; round < 100 && (!sink.pending.empty() || spool.stats().readings > 0); ++round) {
    sink.ackAll();
    clock.advance(std::chrono::milliseconds(50));
  }
  CHECK(pl->accepting());
  std::uint64_t total = 0;
  for (const auto& b : sink.batches) total += static_cast<std::uint64_t>(b.readings_size());
  CHECK(total == static_cast<std::uint64_t>(n));
}

// ---- issue 12: a spool that fails, a batch the sink rejects ------------------------------------

namespace {

// The memory spool behind a switch that makes every append fail as a full disk would.
class FailingSpool final : public spool::Spool {
 public:
  spool::AppendResult append(std::uint64_t seq, std::string_view record) override {
    ++attempts;
    if (failing) return spool::AppendResult::Error;
    return inner.append(seq, record);
  }
  spool::ReaderId addReader() override { return inner.addReader(); }
  std::size_t readers() const override { return inner.readers(); }
  spool::ReadResult readBatch(spool::ReaderId reader, std::size_t maxRecords, std::size_t maxBytes,
                              spool::RecordVisitor& to) override {
    return inner.readBatch(reader, maxRecords, maxBytes, to);
  }
  void acknowledge(std::uint64_t lastSeq) override { inner.acknowledge(lastSeq); }
  void rewindReader(spool::ReaderId reader, std::uint64_t afterSeq) override { inner.rewindReader(reader, afterSeq); }
  spool::SetAsideResult setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) override {
    asides.emplace_back(firstSeq, lastSeq);
    return spool::SetAsideResult{lastSeq - firstSeq + 1, "the test's list", {}};
  }
  std::uint64_t unreadBy(spool::ReaderId reader) const override { return inner.unreadBy(reader); }
  spool::SpoolStats stats() const override {
    auto s = inner.stats();
    if (failing) s.lastError = "cannot create /spool/seg-1.cgs: No space left on device";
    return s;
  }
  std::uint64_t recoveredNextSeq() const override { return 0; }
  void setReadableCallback(std::function<void()> cb) override { readable = std::move(cb); }
  void close() override {}

  spool::MemorySpool inner{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  bool failing = false;
  int attempts = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> asides;
  std::function<void()> readable;
};

struct FailureFixture {
  testing::ManualClock clock;
  FailingSpool spool;
  FakeSink sink;
  SeqStore seq{"", false};
  SensorSpec spec;
  SensorMemory memory;
  std::ostringstream logText;
  std::shared_ptr<Pipeline> pipeline;
  std::vector<SpoolState> states;

  explicit FailureFixture(bool dropOldest, std::size_t maxHeld = 100) {
    REQUIRE(seq.open(0));
    spec = testing::genericSensor("s");
    PipelineOptions o;
    o.maxBatchReadings = 1000;
    o.maxBatchDelay = std::chrono::milliseconds(5);
    o.maxBlockedReadings = maxHeld;
    o.dropOldestHeld = dropOldest;
    o.retryMin = std::chrono::milliseconds(10);
    o.retryMax = std::chrono::milliseconds(40);
    auto log = std::make_shared<spdlog::logger>("spool", std::make_shared<spdlog::sinks::ostream_sink_st>(logText));
    pipeline = std::make_shared<Pipeline>(clock, o, spool, sink, seq, log);
    pipeline->setStateCallback([this](SpoolState st, const std::string&) { states.push_back(st); });
    pipeline->start();
  }
  void submit() {
    RawSample s;
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pipeline->submit(spec, memory, std::move(s));
  }
  // Moves the manual clock on in 5 ms steps until `done`, for at most `timeout` of its time.
  void runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = clock.steadyNow() + timeout;
    while (!done()) {
      REQUIRE(clock.steadyNow() < deadline);
      clock.advance(std::chrono::milliseconds(5));
    }
  }
};

std::uint64_t delivered(const FakeSink& sink) {
  std::uint64_t n = 0;
  for (const auto& b : sink.batches) n += static_cast<std::uint64_t>(b.readings_size());
  return n;
}

}  // namespace

TEST_CASE("a spool write error does not stop collection: held readings are retried on a timer") {
  FailureFixture f(false);
  f.spool.failing = true;
  for (int i = 0; i < 3; ++i) f.submit();
  CHECK_FALSE(f.pipeline->accepting());  // BLOCK_SOURCES: the sources pause
  CHECK(f.pipeline->spoolState() == SpoolState::Failing);
  CHECK(f.pipeline->stats().blockedNow == 3);
  CHECK(f.pipeline->stats().spoolErrors >= 1);
  CHECK(f.logText.str().find("No space left on device") != std::string::npos);
  // Retried while failing, with backoff, and never by a submit (nothing submits: sources paused).
  const int before = f.spool.attempts;
  f.runUntil([&] { return f.spool.attempts >= before + 3; });
  // The disk has room again; nobody calls pump(): the retry timer alone resumes collection.
  f.spool.failing = false;
  f.runUntil([&] { return f.pipeline->accepting(); });
  CHECK(f.pipeline->spoolState() == SpoolState::Ok);
  CHECK(f.pipeline->stats().notStored == 0);
  CHECK(f.logText.str().find("spool writable again") != std::string::npos);
  f.runUntil([&] { return delivered(f.sink) == 3; });
  CHECK(seqs(f.sink.batches.back()) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK((f.states == std::vector<SpoolState>{SpoolState::Failing, SpoolState::Ok}));
}

TEST_CASE("a spool write error with DROP_OLDEST never pauses the sources: a full queue drops its oldest, counted") {
  FailureFixture f(true, 5);
  f.spool.failing = true;
  for (int i = 0; i < 8; ++i) f.submit();
  CHECK(f.pipeline->accepting());
  const auto st = f.pipeline->stats();
  CHECK(st.blockedNow == 5);
  CHECK(st.notStored == 3);
  CHECK(st.lostBlocked == 3);
  // Logged at once the first time, then at most every logEvery (and when the spool recovers).
  CHECK(f.logText.str().find("1 reading(s) lost, seq 1\n") != std::string::npos);
  CHECK(f.logText.str().find("seq 2..3") == std::string::npos);
  f.spool.failing = false;
  f.runUntil([&] { return delivered(f.sink) == 5; });
  CHECK(f.logText.str().find("2 reading(s) lost, seq 2..3") != std::string::npos);
  CHECK(seqs(f.sink.batches.back()) == std::vector<std::uint64_t>{4, 5, 6, 7, 8});
}

TEST_CASE("stopping while the spool fails: one last attempt, then every held reading is counted and logged by seq") {
  SUBCASE("the disk is still full") {
    FailureFixture f(false);
    f.spool.failing = true;
    for (int i = 0; i < 4; ++i) f.submit();
    f.pipeline->stop();
    const auto st = f.pipeline->stats();
    CHECK(st.blockedNow == 0);
    CHECK(st.notStored == 4);
    CHECK(st.lostAtStop == 4);
    CHECK(f.logText.str().find("4 reading(s) held in memory could not be stored") != std::string::npos);
    CHECK(f.logText.str().find("not stored (lost at stop): 4 reading(s) lost, seq 1..4") != std::string::npos);
  }
  SUBCASE("the disk has room again by then") {
    FailureFixture f(false);
    f.spool.failing = true;
    for (int i = 0; i < 4; ++i) f.submit();
    f.spool.failing = false;
    f.pipeline->stop();
    CHECK(f.pipeline->stats().notStored == 0);
    CHECK(f.spool.inner.stats().readings == 4);
    CHECK(f.logText.str().find("every reading held in memory was stored") != std::string::npos);
  }
}

TEST_CASE("a batch the sink rejects is counted, set aside, and delivery goes on") {
  FailureFixture f(false);
  f.pipeline->stop();  // a fixture with small batches instead
  testing::ManualClock clock;
  FailingSpool spool;
  FakeSink sink;
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  PipelineOptions o;
  o.maxBatchReadings = 2;
  o.maxBatchDelay = std::chrono::milliseconds(5);
  o.retryDelay = std::chrono::milliseconds(1);
  auto pl = std::make_shared<Pipeline>(
      clock, o, spool, sink, seq,
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  pl->start();
  for (int i = 0; i < 6; ++i) {
    RawSample s;
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pl->submit(f.spec, f.memory, std::move(s));
  }
  // 1 alone (the link was idle), 2..3 and 4..5 behind it; 6 waits.
  REQUIRE(sink.batches.size() == 3);
  REQUIRE(sink.pending.size() == 3);
  auto pending = std::move(sink.pending);
  sink.pending.clear();
  pending[1](Outcome::Rejected);  // 2..3 can never be delivered
  pending[0](Outcome::Delivered);
  pending[2](Outcome::Delivered);
  REQUIRE(sink.batches.size() == 4);  // 6, at once on the idle link
  REQUIRE(sink.pending.size() == 1);
  sink.pending[0](Outcome::Delivered);
  CHECK(spool.stats().readings == 0);  // all acknowledged: nothing is resent
  CHECK(sink.batches.size() == 4);
  CHECK((spool.asides == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 3}}));
  const auto st = pl->stats();
  CHECK(st.rejectedBatches == 1);
  CHECK(st.rejectedReadings == 2);
  CHECK(st.readingsDelivered == 4);
  CHECK(st.retries == 0);
}

// ---- issue 13: two sinks on one spool ----------------------------------------------------------

TEST_CASE(
    "two sinks on one spool: each gets every record once, in order, the spool frees a record only when both have it") {
  testing::ManualClock clock;
  spool::MemorySpool spool{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  FakeSink a("a");
  FakeSink b("b");
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  SensorSpec spec = testing::genericSensor("s");
  SensorMemory memory;
  PipelineOptions o;
  o.maxBatchReadings = 2;
  o.maxBatchDelay = std::chrono::milliseconds(50);
  o.retryDelay = std::chrono::milliseconds(100);
  auto pl = std::make_shared<Pipeline>(
      clock, o, spool, std::vector<Sink*>{&a, &b}, seq,
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  pl->start();
  REQUIRE(spool.readers() == 2);
  auto submit = [&](int n) {
    for (int i = 0; i < n; ++i) {
      RawSample s;
      s.values.push_back(RawValue{1, RawValue::State::Ok});
      pl->submit(spec, memory, std::move(s));
    }
  };
  const auto upTo = [](std::uint64_t n) {
    std::vector<std::uint64_t> v;
    for (std::uint64_t i = 1; i <= n; ++i) v.push_back(i);
    return v;
  };

  // Each sink batches on its own (Nagle: a partial batch goes at once only on an idle link).
  submit(4);  // [1] at once, [2, 3] full, 4 waits behind them
  REQUIRE(a.pending.size() == 2);
  REQUIRE(b.pending.size() == 2);
  a.ackAll();                          // 1..3; [4] goes now
  CHECK(spool.stats().readings == 4);  // b has none of them yet

  // b fails for a while: its batches come back Retry, twice; a goes on meanwhile.
  b.completeAll(Outcome::Retry);
  CHECK(b.pending.empty());  // paused for retry_delay, not resent at once
  submit(2);
  REQUIRE(a.pending.size() == 2);  // [4], [5, 6]
  a.ackAll();
  CHECK(a.delivered == upTo(6));
  CHECK(b.pending.empty());
  CHECK(spool.stats().readings == 6);
  clock.advance(std::chrono::milliseconds(100));
  REQUIRE(b.pending.size() == 3);  // 1..2, 3..4, 5..6 again
  b.completeAll(Outcome::Retry);
  submit(2);
  a.ackAll();  // 7; [8] goes now
  a.ackAll();
  CHECK(a.delivered == upTo(8));
  CHECK(spool.stats().readings == 8);
  clock.advance(std::chrono::milliseconds(100));
  REQUIRE(b.pending.size() == 4);
  b.ackAll();
  CHECK(b.delivered == upTo(8));
  CHECK(spool.stats().readings == 0);  // both have every record: the spool freed them

  // b rejects a batch: it goes to the dead letters, counted for b; a and b go on.
  submit(2);  // [9] at once to each, 10 waits
  REQUIRE(a.pending.size() == 1);
  REQUIRE(b.pending.size() == 1);
  b.completeAll(Outcome::Rejected);
  CHECK(spool.stats().readings == 2);  // a has neither 9 nor 10 yet
  REQUIRE(b.pending.size() == 1);      // [10], once [9] was settled
  a.ackAll();
  a.ackAll();
  CHECK(spool.stats().readings == 1);  // 10: b has not acknowledged it
  b.ackAll();
  CHECK(spool.stats().readings == 0);
  submit(2);
  a.ackAll();
  a.ackAll();
  b.ackAll();
  b.ackAll();
  CHECK(a.delivered == upTo(12));
  auto bExpected = upTo(8);
  for (std::uint64_t s : {10, 11, 12}) bExpected.push_back(s);
  CHECK(b.delivered == bExpected);
  CHECK(spool.stats().readings == 0);

  const auto st = pl->stats();
  REQUIRE(st.sinks.size() == 2);
  CHECK(st.sinks[0].name == "a");
  CHECK(st.sinks[0].rejectedBatches == 0);
  CHECK(st.sinks[0].retries == 0);
  CHECK(st.sinks[0].readingsDelivered == 12);
  CHECK(st.sinks[1].name == "b");
  CHECK(st.sinks[1].rejectedBatches == 1);
  CHECK(st.sinks[1].rejectedReadings == 1);
  CHECK(st.sinks[1].retries == 2);  // one per failure: the rest of its batches in flight went with it
  CHECK(st.sinks[1].readingsDelivered == 11);
  CHECK(st.rejectedReadings == 1);
  // Every record went to a once (it never failed): its batches hold 1..12, each once, in order.
  std::vector<std::uint64_t> sentToA;
  for (const auto& batch : a.batches) {
    for (auto seqNo : seqs(batch)) sentToA.push_back(seqNo);
  }
  CHECK(sentToA == upTo(12));
}

TEST_CASE("two sinks: one that is down does not hold the other up, it catches up from its own cursor") {
  Fixture f(2);
  // The fixture's pipeline has one sink; this one has two on a spool of its own.
  spool::MemorySpool spool{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  FakeSink up("up");
  FakeSink down("down");
  down.setReady(false);
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  PipelineOptions o;
  o.maxBatchReadings = 2;
  auto pl = std::make_shared<Pipeline>(
      f.clock, o, spool, std::vector<Sink*>{&up, &down}, seq,
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  pl->start();
  for (int i = 0; i < 6; ++i) {
    RawSample s;
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pl->submit(f.spec, f.memory, std::move(s));
    up.ackAll();
  }
  CHECK(up.delivered == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
  CHECK(down.batches.empty());
  CHECK(spool.stats().readings == 6);
  const std::size_t sentUp = up.batches.size();
  down.setReady(true);
  REQUIRE(down.batches.size() == 3);
  CHECK(seqs(down.batches[0]) == std::vector<std::uint64_t>{1, 2});
  CHECK(seqs(down.batches[2]) == std::vector<std::uint64_t>{5, 6});
  CHECK(up.batches.size() == sentUp);  // nothing resent to the one that had them
  down.ackAll();
  CHECK(spool.stats().readings == 0);
}
