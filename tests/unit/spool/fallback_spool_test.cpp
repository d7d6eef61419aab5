// The fallback spool (issue 12, item 5): a spool directory that cannot be used at start. The
// directory is made unusable without root: its parent is a regular file (ENOTDIR), which is
// replaced by a directory to make it usable again.
#include "spool/fallback_spool.hpp"

#include "core/fanout.hpp"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <filesystem>
#include <sstream>

#include "spool/file_spool_support.hpp"
#include "spool/spool_contract.hpp"
#include "support/manual_clock.hpp"

using namespace file_spool_support;
using spool_contract::drain;
using spool_contract::range;
using spool_contract::readInto;
using spool_contract::record;

namespace {

struct Blocked {
  citygate::testing::ManualClock clock;  // the retry timer
  std::string root = tempDir("fallback");
  std::string dir = root + "/blocker/spool";
  std::ostringstream logText;
  std::shared_ptr<spdlog::logger> log =
      std::make_shared<spdlog::logger>("spool", std::make_shared<spdlog::sinks::ostream_sink_mt>(logText));

  Blocked() { spit(root + "/blocker", "a file where the spool's parent directory should be"); }
  ~Blocked() { std::filesystem::remove_all(root); }
  void unblock() {
    std::filesystem::remove(root + "/blocker");
    std::filesystem::create_directories(dir);
  }
  FallbackOptions options() {
    FallbackOptions o;
    o.file = file_spool_support::options(dir);
    o.memoryBytes = 64 * 1024;
    o.retryMin = std::chrono::milliseconds(10);
    o.retryMax = std::chrono::milliseconds(20);
    return o;
  }
  std::string why() {
    auto r = FileSpool::open(ioc().get_executor(), options().file, quietLog());
    REQUIRE_FALSE(r.ok());
    return r.error();
  }
};

// A sink that keeps its batches in flight until ackAll(), and the seqs it was given.
class HoldingSink final : public citygate::core::Sink {
 public:
  std::string_view name() const override { return "holding"; }
  bool ready() const override { return true; }
  void beginBatch(std::string& /*payload*/) override {}
  void addRecord(std::string& /*payload*/, std::uint64_t seq, std::string_view /*record*/) override {
    batch_.push_back(seq);
  }
  void asyncDeliver(std::string /*payload*/, std::uint32_t /*count*/,
                    std::function<void(citygate::core::Outcome)> done) override {
    pending_.push_back(std::move(done));
  }
  void setReadyCallback(std::function<void(bool)> /*cb*/) override {}
  void ackAll() {
    while (!pending_.empty()) {
      auto done = std::move(pending_.front());
      pending_.erase(pending_.begin());
      done(citygate::core::Outcome::Delivered);
    }
    delivered.insert(delivered.end(), batch_.begin(), batch_.end());
    batch_.clear();
  }
  std::vector<std::uint64_t> delivered;

 private:
  std::vector<std::uint64_t> batch_;
  std::vector<std::function<void(citygate::core::Outcome)>> pending_;
};

}  // namespace

TEST_CASE("fallback spool: a directory that cannot be opened is reported, readings stay in memory, bounded") {
  Blocked b;
  FileSpool::OpenFailure failure = FileSpool::OpenFailure::Refused;
  auto r = FileSpool::open(ioc().get_executor(), b.options().file, quietLog(), &failure);
  REQUIRE_FALSE(r.ok());
  CHECK((failure == FileSpool::OpenFailure::Unavailable));
  FallbackSpool s(ioc().get_executor(), b.clock, b.options(), r.error(), std::uint64_t{1}, b.log);
  const auto st = s.stats();
  CHECK(st.unavailable);
  CHECK(st.lastError.find("unavailable") != std::string::npos);
  CHECK(st.lastError.find("Not a directory") != std::string::npos);
  CHECK(st.maxBytes == 64 * 1024);
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s.append(i, record(i)) == AppendResult::Ok);
  CHECK(drain(s, 4) == range(1, 10));
  s.acknowledge(10);
  // Bounded: the memory buffer's policy is the configured one (DROP_OLDEST here).
  std::uint64_t seq = 10;
  for (int i = 0; i < 5000; ++i) {
    ++seq;
    REQUIRE(s.append(seq, record(seq)) != AppendResult::Error);
  }
  CHECK(s.stats().bytes <= 64 * 1024);
  CHECK(s.stats().dropped > 0);
  s.close();
  CHECK(b.logText.str().find("lost, seq") != std::string::npos);  // what memory held at stop, by seq
}

TEST_CASE("fallback spool: when the directory becomes usable, held readings move into the file spool") {
  Blocked b;
  auto s =
      std::make_unique<FallbackSpool>(ioc().get_executor(), b.clock, b.options(), b.why(), std::uint64_t{1}, b.log);
  std::optional<std::uint64_t> opened;
  s->setOpenedCallback([&](std::uint64_t next) { opened = next; });
  int readable = 0;
  s->setReadableCallback([&] { ++readable; });
  s->start();
  for (std::uint64_t i = 1; i <= 6; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  std::string out;
  REQUIRE(readInto(*s, 2, 1 << 20, out).count == 2);  // 1..2 in flight
  b.unblock();
  b.clock.advance(std::chrono::milliseconds(9));
  CHECK_FALSE(opened.has_value());  // not tried before the retry timer (retryMin 10 ms)
  b.clock.advance(std::chrono::milliseconds(1));
  runUntil([&] { return opened.has_value(); });
  CHECK(*opened == 0);  // an empty directory
  // 1..2 are in flight from memory: nothing more is handed out until they are acknowledged.
  CHECK((s->phase() == FallbackSpool::Phase::Moving));
  CHECK(s->unread() == 0);
  REQUIRE(s->append(7, record(7)) == AppendResult::Ok);  // in memory, behind the others
  s->acknowledge(2);
  CHECK((s->phase() == FallbackSpool::Phase::File));
  CHECK_FALSE(s->stats().unavailable);
  REQUIRE(s->append(8, record(8)) == AppendResult::Ok);  // straight to the file spool
  runUntil([&] { return s->unread() == 6; });
  CHECK(drain(*s) == range(3, 8));
  s->close();
  s.reset();  // releases the directory's lock (the file spool goes with it)
  // Durable: a new start finds them.
  auto again = openOk(b.options().file);
  CHECK(drain(*again) == range(3, 8));
  CHECK(again->recoveredNextSeq() == 9);
  again->close();
}

TEST_CASE(
    "fallback spool: a directory that could not be read at start: held seqs not above its records are lost, said") {
  Blocked b;
  b.unblock();
  {
    auto f = openOk(b.options().file);  // an earlier run left readings 1..50
    for (std::uint64_t i = 1; i <= 50; ++i) REQUIRE(f->append(i, record(i)) == AppendResult::Ok);
    f->close();
  }
  // This run could not read it (no floor): numbering started at 1 again.
  FallbackSpool s(ioc().get_executor(), b.clock, b.options(), "cannot list: Permission denied", std::nullopt, b.log);
  std::optional<std::uint64_t> opened;
  s.setOpenedCallback([&](std::uint64_t next) { opened = next; });
  for (std::uint64_t i = 1; i <= 3; ++i) REQUIRE(s.append(i, record(i)) == AppendResult::Ok);
  s.retryNow();
  runUntil([&] { return opened.has_value() && s.phase() == FallbackSpool::Phase::File; });
  CHECK(*opened == 51);  // the owner numbers above it from now on
  CHECK(s.stats().notStored == 3);
  CHECK(b.logText.str().find("3 reading(s) held in memory lost, seq 1..3") != std::string::npos);
  REQUIRE(s.append(51, record(51)) == AppendResult::Ok);
  runUntil([&] { return s.unread() == 51; });
  CHECK(drain(s) == range(1, 51));
  s.close();
}

// The numbering recovers before the directory opens (the seq store is elsewhere): readings above
// the directory's backlog are delivered from memory first. When the file spool takes over, its
// backlog sorts below what was delivered; it must still be sent and freed (it once stayed in the
// spool for good: the fan-out's "delivered up to" was past it).
TEST_CASE("fallback spool: a backlog found when the directory opens is sent and freed after what memory delivered") {
  Blocked b;
  b.unblock();
  {
    auto f = openOk(b.options().file);  // an earlier run left readings 1..50
    for (std::uint64_t i = 1; i <= 50; ++i) REQUIRE(f->append(i, record(i)) == AppendResult::Ok);
    f->close();
  }
  FallbackSpool s(ioc().get_executor(), b.clock, b.options(), "Read-only file system", std::uint64_t{51}, b.log);
  HoldingSink sink;
  citygate::core::FanoutOptions fo;
  fo.maxBatchReadings = 20;
  citygate::core::SinkFanout fanout(b.clock, fo, s, {&sink}, b.log);
  s.setReadableCallback([&] { fanout.pump(); });
  fanout.start(nullptr);
  for (std::uint64_t i = 51; i <= 60; ++i) {
    REQUIRE(s.append(i, record(i)) == AppendResult::Ok);
    fanout.numbered(i, b.clock.steadyNow());
  }
  fanout.pump();
  sink.ackAll();
  CHECK(sink.delivered == range(51, 60));
  CHECK(s.stats().readings == 0);
  s.retryNow();
  runUntil([&] { return s.phase() == FallbackSpool::Phase::File; });
  for (int i = 0; i < 5; ++i) {
    fanout.pump();
    sink.ackAll();
  }
  auto expected = range(51, 60);
  for (auto seq : range(1, 50)) expected.push_back(seq);
  CHECK(sink.delivered == expected);
  CHECK(fanout.stats().front().deliveredSeq == 50);
  CHECK(s.stats().readings == 0);  // freed once delivered, not only when a newer reading is
  REQUIRE(s.append(61, record(61)) == AppendResult::Ok);
  fanout.numbered(61, b.clock.steadyNow());
  runUntil([&] {  // the group commit makes it readable (and calls the fan-out)
    fanout.pump();
    sink.ackAll();
    return sink.delivered.back() == 61;
  });
  CHECK(s.stats().readings == 0);
  CHECK(fanout.acknowledged() == 61);
  s.close();
}

TEST_CASE("fallback spool: at stop, one last attempt keeps what memory holds if the directory is usable by then") {
  Blocked b;
  auto s =
      std::make_unique<FallbackSpool>(ioc().get_executor(), b.clock, b.options(), b.why(), std::uint64_t{1}, b.log);
  for (std::uint64_t i = 1; i <= 4; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  b.unblock();
  s->close();
  CHECK(b.logText.str().find("lost") == std::string::npos);
  s.reset();
  auto f = openOk(b.options().file);
  CHECK(drain(*f) == range(1, 4));
  f->close();
}
