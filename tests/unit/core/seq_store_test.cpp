#include <doctest/doctest.h>
#include <unistd.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/seq_store.hpp"

using namespace citygate::core;

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
    for (int i = 0; i < 5000; ++i) last = s.next();  // crosses a reservation block
  }                                                  // no close(): a crash
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

TEST_CASE("a seq file that cannot be written is not fatal: writeError() says why") {
  SeqStore s("/nonexistent-dir-for-citygate/seq", true);
  REQUIRE(s.open(3));
  CHECK(s.next() == 3);
  CHECK(s.writeError().find("cannot create") != std::string::npos);
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
