// Pipeline on a real io_context with a fake Sink and the memory spool.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <sstream>
#include <thread>

#include "core/pipeline.hpp"
#include "spool/memory_spool.hpp"

using namespace citygate;
using namespace citygate::core;
namespace pb = citygate::v1;

namespace {

class FakeSink final : public Sink {
 public:
  bool ready() const override { return ready_; }
  void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(Outcome)> done) override {
    pb::ReadingBatch b;
    REQUIRE(b.ParseFromString(payload));
    CHECK(b.readings_size() == static_cast<int>(count));
    CHECK(b.gateway_id() == "gw");
    batches.push_back(b);
    pending.push_back(std::move(done));
  }
  void setReadyCallback(std::function<void(bool)> cb) override { cb_ = std::move(cb); }
  void setReady(bool r) {
    ready_ = r;
    if (!r) pending.clear();
    if (cb_) cb_(r);
  }
  void ackAll() {
    auto p = std::move(pending);
    pending.clear();
    for (auto& d : p) d(Outcome::Delivered);
  }
  std::vector<pb::ReadingBatch> batches;
  std::vector<std::function<void(Outcome)>> pending;

 private:
  bool ready_ = true;
  std::function<void(bool)> cb_;
};

struct Fixture {
  boost::asio::io_context ioc;
  spool::MemorySpool spool{1 << 20, pb::SpoolConfig::DROP_OLDEST};
  FakeSink sink;
  SeqStore seq{"", false};
  SensorSpec spec;
  SensorMemory memory;
  std::shared_ptr<Pipeline> pipeline;

  explicit Fixture(std::uint32_t maxBatch = 3, std::chrono::milliseconds delay = std::chrono::milliseconds(50),
                   spool::Spool* other = nullptr) {
    REQUIRE(seq.open(0));
    spec.id = "s";
    spec.kind = pb::GENERIC;
    PointSpec p;
    p.name = "v";
    p.field = FieldRef{pb::GENERIC, -1};
    spec.points.push_back(p);
    buildGroups(spec);
    PipelineOptions o;
    o.gatewayId = "gw";
    o.bootId = "b";
    o.maxBatchReadings = maxBatch;
    o.maxBatchDelay = delay;
    o.retryDelay = std::chrono::milliseconds(10);
    pipeline = std::make_shared<Pipeline>(
        ioc.get_executor(), o, other ? *other : spool, sink, seq,
        std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
    pipeline->start();
  }
  void submit(double v) {
    RawSample s;
    s.observedAt = WallClock::now();
    s.values.push_back(RawValue{v, RawValue::State::Ok});
    pipeline->submit(spec, memory, std::move(s));
  }
};

// A spool whose records become readable only on release(), like a group commit that comes later.
class LateSpool final : public spool::Spool {
 public:
  spool::AppendResult append(std::uint64_t seq, std::string_view record) override { return inner.append(seq, record); }
  spool::ReadResult readBatch(std::size_t maxRecords, std::size_t maxBytes, std::string& out) override {
    return released ? inner.readBatch(maxRecords, maxBytes, out) : spool::ReadResult{};
  }
  void acknowledge(std::uint64_t lastSeq) override { inner.acknowledge(lastSeq); }
  void rewind() override { inner.rewind(); }
  std::uint64_t unread() const override { return released ? inner.unread() : 0; }
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

std::vector<std::uint64_t> seqs(const pb::ReadingBatch& b) {
  std::vector<std::uint64_t> v;
  for (const auto& r : b.readings()) v.push_back(r.seq());
  return v;
}

}  // namespace

TEST_CASE("a full batch goes at once; a partial one after max_batch_delay") {
  Fixture f(3, std::chrono::milliseconds(50));
  f.submit(1);
  f.submit(2);
  CHECK(f.sink.batches.empty());
  f.submit(3);
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(seqs(f.sink.batches[0]) == std::vector<std::uint64_t>{1, 2, 3});
  f.submit(4);
  f.ioc.run_for(std::chrono::milliseconds(20));
  CHECK(f.sink.batches.size() == 1);
  f.ioc.restart();
  f.ioc.run_for(std::chrono::milliseconds(60));
  REQUIRE(f.sink.batches.size() == 2);
  CHECK(seqs(f.sink.batches[1]) == std::vector<std::uint64_t>{4});
}

TEST_CASE("the batch delay counts from numbering: a reading readable late goes as soon as it is readable") {
  LateSpool late;
  Fixture f(10, std::chrono::milliseconds(30), &late);
  f.submit(1);
  CHECK(f.ioc.poll() == 0);  // nothing readable, so no timer either
  // The delay passes while the record is not yet durable (time itself is the input here).
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  CHECK(f.sink.batches.empty());
  late.release();  // the group commit: due already, so no second wait
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(seqs(f.sink.batches[0]) == std::vector<std::uint64_t>{1});
  f.submit(2);  // the next one waits its own delay
  CHECK(f.sink.batches.size() == 1);
  f.ioc.restart();
  f.ioc.run_for(std::chrono::milliseconds(60));
  REQUIRE(f.sink.batches.size() == 2);
  CHECK(seqs(f.sink.batches[1]) == std::vector<std::uint64_t>{2});
}

TEST_CASE("only delivered batches leave the spool") {
  Fixture f(2);
  for (int i = 0; i < 4; ++i) f.submit(i);
  CHECK(f.sink.batches.size() == 2);
  CHECK(f.spool.stats().readings == 4);
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
  f.ioc.run_for(std::chrono::milliseconds(10));
  REQUIRE(f.sink.batches.size() >= 4);
  CHECK(seqs(f.sink.batches[2]) == std::vector<std::uint64_t>{1, 2});
  CHECK(seqs(f.sink.batches[3]) == std::vector<std::uint64_t>{3, 4});
  f.sink.ackAll();
  f.ioc.restart();
  f.ioc.run_for(std::chrono::milliseconds(80));
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
  boost::asio::io_context ioc;
  spool::MemorySpool spool{70 * 1024, pb::SpoolConfig::BLOCK_SOURCES};
  FakeSink sink;
  sink.setReady(false);
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  SensorSpec spec;
  spec.id = std::string(200, 's');
  spec.kind = pb::GENERIC;
  PointSpec p;
  p.name = "v";
  p.field = FieldRef{pb::GENERIC, -1};
  spec.points.push_back(p);
  buildGroups(spec);
  SensorMemory mem;
  PipelineOptions o;
  o.gatewayId = "gw";
  o.maxBatchReadings = 1000;
  o.maxBatchDelay = std::chrono::milliseconds(5);
  auto pl = std::make_shared<Pipeline>(
      ioc.get_executor(), o, spool, sink, seq,
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
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(50));
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
  spool::ReadResult readBatch(std::size_t maxRecords, std::size_t maxBytes, std::string& out) override {
    return inner.readBatch(maxRecords, maxBytes, out);
  }
  void acknowledge(std::uint64_t lastSeq) override { inner.acknowledge(lastSeq); }
  void rewind() override { inner.rewind(); }
  spool::SetAsideResult setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) override {
    asides.emplace_back(firstSeq, lastSeq);
    return spool::SetAsideResult{lastSeq - firstSeq + 1, "the test's list", {}};
  }
  std::uint64_t unread() const override { return inner.unread(); }
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
  boost::asio::io_context ioc;
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
    spec.id = "s";
    spec.kind = pb::GENERIC;
    PointSpec p;
    p.name = "v";
    p.field = FieldRef{pb::GENERIC, -1};
    spec.points.push_back(p);
    buildGroups(spec);
    PipelineOptions o;
    o.gatewayId = "gw";
    o.maxBatchReadings = 1000;
    o.maxBatchDelay = std::chrono::milliseconds(5);
    o.maxBlockedReadings = maxHeld;
    o.dropOldestHeld = dropOldest;
    o.retryMin = std::chrono::milliseconds(10);
    o.retryMax = std::chrono::milliseconds(40);
    auto log = std::make_shared<spdlog::logger>("spool", std::make_shared<spdlog::sinks::ostream_sink_st>(logText));
    pipeline = std::make_shared<Pipeline>(ioc.get_executor(), o, spool, sink, seq, log);
    pipeline->setStateCallback([this](SpoolState st, const std::string&) { states.push_back(st); });
    pipeline->start();
  }
  void submit() {
    RawSample s;
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pipeline->submit(spec, memory, std::move(s));
  }
  // Runs the io_context until `done`, for at most `timeout` (then the test fails).
  void runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    ioc.restart();
    while (!done()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      ioc.run_one_for(std::chrono::milliseconds(5));
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
  boost::asio::io_context ioc;
  FailingSpool spool;
  FakeSink sink;
  SeqStore seq{"", false};
  REQUIRE(seq.open(0));
  PipelineOptions o;
  o.gatewayId = "gw";
  o.maxBatchReadings = 2;
  o.maxBatchDelay = std::chrono::milliseconds(5);
  o.retryDelay = std::chrono::milliseconds(1);
  auto pl = std::make_shared<Pipeline>(
      ioc.get_executor(), o, spool, sink, seq,
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>()));
  pl->start();
  for (int i = 0; i < 6; ++i) {
    RawSample s;
    s.values.push_back(RawValue{1, RawValue::State::Ok});
    pl->submit(f.spec, f.memory, std::move(s));
  }
  REQUIRE(sink.batches.size() == 3);
  REQUIRE(sink.pending.size() == 3);
  auto pending = std::move(sink.pending);
  sink.pending.clear();
  pending[1](Outcome::Rejected);  // 3..4 can never be delivered
  pending[0](Outcome::Delivered);
  pending[2](Outcome::Delivered);
  CHECK(spool.stats().readings == 0);  // all acknowledged: nothing is resent
  CHECK(sink.batches.size() == 3);
  CHECK((spool.asides == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 4}}));
  const auto st = pl->stats();
  CHECK(st.rejectedBatches == 1);
  CHECK(st.rejectedReadings == 2);
  CHECK(st.readingsDelivered == 4);
  CHECK(st.retries == 0);
}
