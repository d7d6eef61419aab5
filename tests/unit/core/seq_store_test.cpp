#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

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

TEST_CASE("a durable spool's floor wins, and a corrupt file is an error") {
  const std::string dir = tempDir();
  SeqStore s(dir + "/seq", false);
  REQUIRE(s.open(777));
  CHECK(s.next() == 777);
  REQUIRE(writeFileAtomic(dir + "/seq", "garbage\n"));
  SeqStore bad(dir + "/seq", false);
  CHECK_FALSE(bad.open(0));
  std::filesystem::remove_all(dir);
}
