#include <doctest/doctest.h>
#include <unistd.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/seq_store.hpp"
#include "support/run_until.hpp"

using namespace citygate::core;
using citygate::testing::runUntil;

namespace {
std::string tempDir() {
  char tmpl[] = "/tmp/citygate-seq-XXXXXX";
  return ::mkdtemp(tmpl);
}
}  // namespace

TEST_CASE("seq continues exactly after a clean close") {
  const std::string dir = tempDir();
  {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(0));
    CHECK(s.next() == 1);
    CHECK(s.next() == 2);
    REQUIRE(s.close());
  }
  SeqStore s(dir + "/seq", true);
  REQUIRE(s.open(0));
  CHECK(s.next() == 3);
  std::filesystem::remove_all(dir);
}

TEST_CASE("after a crash (no close) seq never repeats") {
  const std::string dir = tempDir();
  std::uint64_t last = 0;
  {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(0));
    for (int i = 0; i < 5000; ++i) last = s.next().value_or(0);  // crosses a reservation block
  }                                                              // no close(): a crash
  SeqStore s(dir + "/seq", true);
  REQUIRE(s.open(0));
  CHECK(s.next() > last);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a durable spool's floor wins") {
  const std::string dir = tempDir();
  SeqStore s(dir + "/seq", false);
  REQUIRE(s.open(777));
  CHECK(s.next() == 777);
  CHECK_FALSE(s.damage());
  std::filesystem::remove_all(dir);
}

// Issue 12, item 4: a corrupt or empty seq file made every start exit 1.
TEST_CASE("a damaged seq file is recovered from the spool's floor, said, and rewritten") {
  for (const std::string& content :
       {std::string(), std::string("garbage\n"), std::string("12a4\n"), std::string("\0\0\0\0", 4),
        std::string("99999999999999999999999\n"), std::string(200, '7')}) {
    CAPTURE(content.size());
    for (bool reserve : {false, true}) {
      CAPTURE(reserve);
      const std::string dir = tempDir();
      REQUIRE(writeFileAtomic(dir + "/seq", content));
      SeqStore s(dir + "/seq", reserve);
      REQUIRE(s.open(5000));
      REQUIRE(s.damage());
      CHECK(s.damage()->chosen == 5000);
      CHECK(s.damage()->floor == 5000);
      CHECK(s.damage()->found.find(content.empty() ? "empty" : "not a sequence number") != std::string::npos);
      CHECK(s.next() == 5000);  // never below what the spool has seen
      // The file is whole again: the next start finds no damage and does not go back.
      SeqStore again(dir + "/seq", reserve);
      REQUIRE(again.open(0));
      CHECK_FALSE(again.damage());
      CHECK(again.next() >= 5000);
      std::filesystem::remove_all(dir);
    }
  }
}

TEST_CASE("a damaged seq file: a complete seq.tmp from an interrupted write counts too") {
  const std::string dir = tempDir();
  REQUIRE(writeFileAtomic(dir + "/seq", "\n"));
  {
    std::ofstream tmp(dir + "/seq.tmp");
    tmp << "9000\n";
  }
  SeqStore s(dir + "/seq", false);
  REQUIRE(s.open(42));
  REQUIRE(s.damage());
  CHECK(s.damage()->tmp == 9000);
  CHECK(s.next() == 9000);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a seq file that is not a regular file is not read (no hang on a FIFO)") {
  const std::string dir = tempDir();
  REQUIRE(::mkfifo((dir + "/seq").c_str(), 0600) == 0);
  SeqStore s(dir + "/seq", false);
  REQUIRE(s.open(10));
  REQUIRE(s.damage());
  CHECK(s.damage()->found.find("not a regular file") != std::string::npos);
  CHECK(s.next() == 10);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a seq file that cannot be written stops numbering with the reason, never a seq that could repeat") {
  SeqStore s("/nonexistent-dir-for-citygate/seq", true);
  REQUIRE(s.open(3));
  CHECK(s.writeError().find("cannot create") != std::string::npos);
  CHECK_FALSE(s.next());  // before: 3, with nothing on disk to keep it from repeating after a crash
  CHECK_FALSE(s.ready());
  CHECK(s.numberingError().find("numbering stopped") != std::string::npos);
  CHECK(s.numberingError().find("cannot create") != std::string::npos);
}

namespace {

// The writer seam: fails while `fail` is set, records the values written and on which thread.
struct Disk {
  std::mutex m;
  bool fail = false;
  std::vector<std::uint64_t> written;
  std::vector<std::thread::id> threads;
};

FileWriter::WriteFn seam(const std::shared_ptr<Disk>& disk) {
  return [disk](const std::string& path, std::string_view data, unsigned mode) -> citygate::Status {
    std::lock_guard lock(disk->m);
    disk->threads.push_back(std::this_thread::get_id());
    if (disk->fail) return citygate::Error{"cannot write " + path + ": Read-only file system"};
    disk->written.push_back(std::stoull(std::string(data)));
    return writeFileAtomic(path, data, mode);
  };
}

// Runs the executor until `done` (5 s at most).
}  // namespace

TEST_CASE("reservations are written on the writer's thread, ahead: the caller never writes after open") {
  const std::string dir = tempDir();
  boost::asio::io_context ioc;
  auto disk = std::make_shared<Disk>();
  SeqStore s(dir + "/seq", true);
  REQUIRE(s.open(1));
  CHECK(s.reservedUpTo() == 1 + SeqStore::kBlock);
  REQUIRE(s.writeOn(ioc.get_executor(), seam(disk)));
  // Half a block: the next one is asked for, not yet durable; numbering goes on meanwhile.
  for (std::uint64_t i = 1; i <= SeqStore::kBlock / 2 + 1; ++i) REQUIRE(s.next() == i);
  REQUIRE(runUntil(ioc, [&] { return s.reservedUpTo() > 1 + SeqStore::kBlock; }));
  std::lock_guard lock(disk->m);
  REQUIRE(disk->written.size() == 1);
  CHECK(disk->written[0] == SeqStore::kBlock / 2 + 2 + SeqStore::kBlock);
  CHECK(disk->threads[0] != std::this_thread::get_id());
  std::filesystem::remove_all(dir);
}

TEST_CASE("a reservation that fails stops numbering at the durable block's end, it resumes when the disk takes it") {
  const std::string dir = tempDir();
  boost::asio::io_context ioc;
  auto disk = std::make_shared<Disk>();
  disk->fail = true;
  std::uint64_t last = 0;
  {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(1));
    REQUIRE(s.writeOn(ioc.get_executor(), seam(disk)));
    // The whole durable block is used, then nothing: every seq given is below what the file says.
    std::uint64_t given = 0;
    for (std::uint64_t i = 0; i < 2 * SeqStore::kBlock; ++i) {
      if (const auto v = s.next()) {
        last = *v;
        ++given;
      }
      ioc.poll();
      ioc.restart();
    }
    CHECK(given == SeqStore::kBlock);
    CHECK(last == SeqStore::kBlock);
    CHECK_FALSE(s.ready());
    REQUIRE(runUntil(ioc, [&] { return !s.writeError().empty(); }));  // the write on the thread fails
    CHECK_FALSE(s.ready());
    CHECK_FALSE(s.next());
    CHECK(s.numberingError().find("Read-only file system") != std::string::npos);
    // The disk takes writes again: numbering goes on where it stopped.
    {
      std::lock_guard lock(disk->m);
      disk->fail = false;
    }
    REQUIRE(runUntil(ioc, [&] { return s.ready(); }));
    CHECK(s.numberingError().empty());
    CHECK(s.next() == last + 1);
    last = last + 1;
    // a crash: no close()
  }
  SeqStore again(dir + "/seq", true);
  REQUIRE(again.open(0));
  CHECK(again.next() > last);
  std::filesystem::remove_all(dir);
}

TEST_CASE("raiseTo moves numbering up, never down") {
  SeqStore s("", false);
  REQUIRE(s.open(0));
  CHECK(s.next() == 1);
  s.raiseTo(100);
  CHECK(s.next() == 100);
  s.raiseTo(50);
  CHECK(s.next() == 101);
}

TEST_CASE("a reservation is skipped only when the spool's tail cannot be trusted") {
  const std::string dir = tempDir();
  {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(0));
    for (int i = 0; i < 100; ++i) REQUIRE(s.next());  // 1..100 handed out, then a crash
  }
  SUBCASE("kill -9 on this boot: the spool holds 1..100, numbering goes on at 101, no gap") {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(101, true));
    CHECK(s.next() == 101);
    CHECK_FALSE(s.skipped());
  }
  SUBCASE("a power cut: the spool's tail (41) may miss published seqs: the reservation's end, said") {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(41, false));
    const auto first = s.next();
    CHECK(first == 1 + SeqStore::kBlock);
    REQUIRE(s.skipped());
    CHECK(s.skipped()->from == 41);
    CHECK(s.skipped()->to == 1 + SeqStore::kBlock);
  }
  SUBCASE("spool files lost on this boot: the floor is below where the reservation began: skipped") {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(0, true));
    CHECK(s.next() == 1 + SeqStore::kBlock);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a seq file of the previous format (a bare number) still loads") {
  const std::string dir = tempDir();
  std::ofstream(dir + "/seq") << "5000\n";
  SeqStore s(dir + "/seq", true);
  REQUIRE(s.open(0, true));
  CHECK(s.next() == 5000);
  CHECK_FALSE(s.skipped());
  std::filesystem::remove_all(dir);
}

TEST_CASE("the epoch is kept while the seq goes on, and new whenever the seq could start again") {
  const std::string dir = tempDir();
  std::string first;
  {
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(0));
    first = s.epoch();
    CHECK(first.size() == 16);
    CHECK(s.epochRenewed() == "there was no epoch file");
    (void)s.next();
    REQUIRE(s.close());
  }
  struct stat st {};
  REQUIRE(::stat((dir + "/seq.epoch").c_str(), &st) == 0);
  {
    SeqStore s(dir + "/seq", true);  // a restart (or a crash: the reservation is on disk)
    REQUIRE(s.open(0));
    CHECK(s.epoch() == first);
    CHECK(s.epochRenewed().empty());
  }
  std::string second;
  {
    std::filesystem::remove(dir + "/seq");  // the seq file gone, nothing in the spool: seq 1 again
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(0));
    CHECK(s.next() == 1);
    second = s.epoch();
    CHECK(second != first);
    CHECK(s.epochRenewed().find("starts again") != std::string::npos);
  }
  {
    std::filesystem::remove(dir + "/seq");  // gone again, but the spool holds seqs up to 41: seq goes on
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(42));
    CHECK(s.epoch() == second);
  }
  {
    std::ofstream(dir + "/seq.epoch") << "not an epoch\n";  // damaged
    SeqStore s(dir + "/seq", true);
    REQUIRE(s.open(42));
    CHECK(s.epoch() != second);
    CHECK(s.epochRenewed() == "the epoch file was damaged");
  }
  SeqStore unsaved("", false);
  REQUIRE(unsaved.open(0));
  CHECK(unsaved.epoch().size() == 16);
  std::filesystem::remove_all(dir);
}
