// Pipeline on a real io_context with a fake Sink and the memory spool.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
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
