// The tiered spool (ACK_DRIVEN durability, FORMAT.md "Tiers"): young readings in RAM
// (runtime_dir) are published at once and reach the storage only when the broker does not
// acknowledge them within sync_after; a crash of the process loses none of them.
#include "spool/tiered_spool.hpp"

#include <doctest/doctest.h>

#include <filesystem>

#include "spool/file_spool_support.hpp"
#include "spool/spool_contract.hpp"
#include "support/manual_clock.hpp"

using namespace file_spool_support;
using spool_contract::drain;
using spool_contract::range;
using spool_contract::readInto;
using spool_contract::record;
using spool_contract::seqsOf;

namespace {

constexpr auto kSyncAfter = std::chrono::milliseconds(1000);

struct World {
  citygate::testing::ManualClock clock;
  std::string root = tempDir("tiered");
  std::string durableDir = root + "/spool";
  std::string youngDir = root + "/run/spool";
  TieredOptions to;

  World() { to.syncAfter = kSyncAfter; }
  ~World() { std::filesystem::remove_all(root); }

  std::unique_ptr<TieredSpool> open() {
    std::filesystem::create_directories(youngDir);
    auto durable = openOk(options(durableDir, 1 << 20, pb::SpoolConfig::BLOCK_SOURCES));
    auto young = openOk(TieredSpool::youngOptions(youngDir, to));
    return std::make_unique<TieredSpool>(ioc().get_executor(), clock, to, std::move(durable), std::move(young),
                                         quietLog());
  }
  // The records in the storage's segments (the durable tier), read by a fresh FileSpool.
  std::vector<std::uint64_t> onStorage() {
    auto s = openOk(options(durableDir, 1 << 20, pb::SpoolConfig::BLOCK_SOURCES));
    runUntil([&] { return s->settled(); });
    auto seqs = drain(*s);
    s->close();
    return seqs;
  }
  void commit(TieredSpool& s) { settle(s.durableTier()); }
};

}  // namespace

TEST_CASE("tiered spool: with a broker that acknowledges, readings are readable at once and the storage gets nothing") {
  World w;
  auto s = w.open();
  const std::uint64_t before = s->durableTier().stats().bytesWritten;
  for (std::uint64_t i = 1; i <= 500; ++i) {
    REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    if (i % 50 == 0) {
      CHECK(s->unread() == 50);  // no group commit to wait for
      CHECK(drain(*s) == range(i - 49, i));
      w.clock.advance(std::chrono::milliseconds(100));
      s->acknowledge(i);
    }
  }
  CHECK_FALSE(s->direct());
  CHECK(s->moved() == 0);
  CHECK(s->stats().readings == 0);
  s->durableTier().syncNow();
  runUntil([&] { return s->durableTier().settled(); });
  CHECK(s->durableTier().stats().bytesWritten == before);  // not one byte more on the storage
  CHECK(s->stats().bytesWritten == before);
  s.reset();
  CHECK(w.onStorage().empty());
}

TEST_CASE(
    "tiered spool: a reading not acknowledged within sync_after moves to the storage, once, and is not sent twice") {
  World w;
  auto s = w.open();
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  std::string out;
  CHECK(readInto(*s, 4, 1 << 20, out).lastSeq == 4);  // 1..4 in flight
  w.clock.advance(kSyncAfter - std::chrono::milliseconds(1));
  CHECK_FALSE(s->direct());
  w.clock.advance(std::chrono::milliseconds(1));  // the broker is late: everything young moves
  CHECK(s->direct());
  CHECK(s->moved() == 10);
  // New readings go straight to the storage (the broker is away: behave as STRICT).
  REQUIRE(s->append(11, record(11)) == AppendResult::Ok);
  w.commit(*s);
  // The reader goes on after what it had: 5..11, never 1..4 again.
  CHECK(drain(*s) == range(5, 11));
  // A power cut now (runtime_dir lost) costs nothing: it is all on the storage.
  CHECK(s->durableTier().held() == 11);
  s->acknowledge(11);
  CHECK_FALSE(s->direct());  // acknowledged in time and nothing left to read: RAM again
  REQUIRE(s->append(12, record(12)) == AppendResult::Ok);
  CHECK(s->youngTier().held() == 1);
  CHECK(drain(*s) == std::vector<std::uint64_t>{12});
  s->acknowledge(12);
  s->close();
}

TEST_CASE("tiered spool: kill -9 loses nothing: the young readings come back from RAM and move to the storage") {
  World w;
  {
    auto s = w.open();
    for (std::uint64_t i = 1; i <= 20; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    std::string out;
    readInto(*s, 100, 1 << 20, out);
    s->acknowledge(5);
    s->abandon();  // the process dies; tmpfs keeps the files
  }
  auto s = w.open();
  CHECK(s->recoveredNextSeq() == 21);
  CHECK(s->moved() >= 15);  // 1..5 too if the acknowledgement had not reached RAM's ack file
  w.commit(*s);
  const auto again = drain(*s);
  REQUIRE(!again.empty());
  CHECK(again.front() <= 6);
  CHECK(again == range(again.front(), 20));
  s->acknowledge(20);
  s->close();
}

TEST_CASE("tiered spool: a power cut loses only young readings, which the storage never had") {
  World w;
  {
    auto s = w.open();
    for (std::uint64_t i = 1; i <= 5; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    w.clock.advance(kSyncAfter);  // 1..5 were not acknowledged in time: on the storage
    w.commit(*s);
    for (std::uint64_t i = 6; i <= 8; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    w.commit(*s);
    s->acknowledge(8);  // 6..8 were direct: synced before they were readable
    for (std::uint64_t i = 9; i <= 12; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    s->abandon();
  }
  std::filesystem::remove_all(w.youngDir);  // the power cut: tmpfs is gone
  auto s = w.open();
  // 9..12 were young and unacknowledged: lost with the power (the seq store skips their seqs).
  CHECK(s->recoveredNextSeq() <= 9);
  w.commit(*s);
  const auto left = drain(*s);
  CHECK(std::find(left.begin(), left.end(), 9) == left.end());
  s->close();
}

TEST_CASE("tiered spool: a clean stop moves unacknowledged young readings to the storage") {
  World w;
  {
    auto s = w.open();
    for (std::uint64_t i = 1; i <= 30; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    s->acknowledge(10);
    s->close();
  }
  CHECK(w.onStorage() == range(11, 30));
  std::filesystem::remove_all(w.youngDir);  // even a reboot after the clean stop loses nothing
  auto s = w.open();
  w.commit(*s);
  CHECK(drain(*s) == range(11, 30));
  s->close();
}

TEST_CASE("tiered spool: a lost link rewinds across both tiers, in seq order") {
  World w;
  auto s = w.open();
  const ReaderId second = s->addReader();
  for (std::uint64_t i = 1; i <= 6; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  std::string out;
  readInto(*s, 100, 1 << 20, out);
  w.clock.advance(kSyncAfter);  // 1..6 move
  REQUIRE(s->direct());
  for (std::uint64_t i = 7; i <= 8; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  w.commit(*s);
  CHECK(drain(*s) == range(7, 8));
  s->rewindReader(0, 3);  // delivered up to 3 when the link went
  CHECK(drain(*s) == range(4, 8));
  out.clear();
  CHECK(readInto(*s, 100, 1 << 20, out, second).count == 8);  // the other sink reads it all
  CHECK(seqsOf(out) == range(1, 8));
  s->acknowledge(8);
  s->close();
}

TEST_CASE("tiered spool: more than the RAM bound unacknowledged moves to the storage regardless of age") {
  World w;
  w.to.youngMaxBytes = 8 * 1024;
  auto s = w.open();
  std::uint64_t seq = 0;
  while (!s->direct()) {
    REQUIRE(seq < 1000);
    ++seq;
    REQUIRE(s->append(seq, record(seq, 100)) == AppendResult::Ok);
  }
  CHECK(s->moved() > 0);
  CHECK(s->youngTier().held() == 0);
  w.commit(*s);
  CHECK(drain(*s) == range(1, seq));
  s->acknowledge(seq);
  s->close();
}

TEST_CASE("tiered spool: sameBoot is true only for a directory written on this boot") {
  World w;
  std::filesystem::create_directories(w.youngDir);
  CHECK_FALSE(TieredSpool::sameBoot(w.youngDir, "boot-a"));  // nothing there yet
  CHECK(TieredSpool::sameBoot(w.youngDir, "boot-a"));        // a restart on the same boot
  CHECK_FALSE(TieredSpool::sameBoot(w.youngDir, "boot-b"));  // a directory that outlived a reboot
  CHECK_FALSE(TieredSpool::sameBoot(w.youngDir, ""));        // no boot id: never trusted
}
