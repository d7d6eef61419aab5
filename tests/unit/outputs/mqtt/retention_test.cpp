#include "outputs/mqtt/retention.hpp"

#include <doctest/doctest.h>

namespace citygate::mqtt {
namespace {

using std::chrono::seconds;

SteadyTime at(int s) {
  return SteadyTime(seconds(1000 + s));  // a time well after the clock's epoch, as after a boot
}

TEST_CASE("retention off keeps nothing") {
  Retention r(0, seconds(60));
  CHECK_FALSE(r.enabled());
  r.add(1, 10, 10, std::string(100, 'x'), at(0));
  CHECK(r.bytes() == 0);
  CHECK(r.find(1, 10, 10).batches.empty());
}

TEST_CASE("batches are found by overlap, seqs not kept are counted missing up to what was acknowledged") {
  Retention r(10000, seconds(60));
  r.add(1, 10, 10, "a", at(0));
  r.add(11, 20, 10, "b", at(1));
  r.add(31, 40, 10, "c", at(2));  // 21..30 never retained (dropped, or acknowledged while off)
  auto f = r.find(5, 15, 40);
  REQUIRE(f.batches.size() == 2);
  CHECK(f.readings == 20);
  CHECK(f.missing == 0);
  f = r.find(18, 35, 40);
  REQUIRE(f.batches.size() == 2);
  CHECK(f.batches[0]->payload == "b");
  CHECK(f.batches[1]->payload == "c");
  CHECK(f.missing == 10);  // 21..30
  // Above what was acknowledged: not missing, still on its way.
  f = r.find(38, 60, 45);
  CHECK(f.batches.size() == 1);
  CHECK(f.missing == 5);  // 41..45 acknowledged but not kept; 46..60 not acknowledged yet
  f = r.find(100, 200, 45);
  CHECK(f.batches.empty());
  CHECK(f.missing == 0);
}

TEST_CASE("the oldest batches go when the bytes or the age are over") {
  Retention r(10, seconds(60));
  r.add(1, 1, 1, "aaaa", at(0));
  r.add(2, 2, 1, "bbbb", at(1));
  r.add(3, 3, 1, "cccc", at(2));  // 12 bytes: the first goes
  CHECK(r.bytes() == 8);
  CHECK(r.firstSeq() == 2);
  CHECK(r.lastSeq() == 3);
  r.expire(at(61));  // the second (at 1) is 60 s old: kept; 61 s: goes
  CHECK(r.firstSeq() == 2);
  r.expire(at(62));
  CHECK(r.firstSeq() == 3);
  r.expire(at(200));
  CHECK(r.bytes() == 0);
  CHECK(r.firstSeq() == 0);
  CHECK(r.find(1, 3, 3).missing == 3);
}

TEST_CASE("a batch overlapping what is kept (a late acknowledgement of a batch sent again) is ignored") {
  Retention r(1000, seconds(60));
  r.add(1, 10, 10, "a", at(0));
  r.add(5, 12, 8, "again", at(1));
  CHECK(r.lastSeq() == 10);
  CHECK(r.bytes() == 1);
  r.add(11, 12, 2, "b", at(1));
  CHECK(r.lastSeq() == 12);
}

}  // namespace
}  // namespace citygate::mqtt
