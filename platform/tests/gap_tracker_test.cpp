// The gap tracker on an injected clock: every case of the seq stream (in order, reorder inside the
// grace period, duplicates, a new epoch) and of the refill (asked after the grace, filled, lost,
// asked again on no answer, split past 100000 seqs, bounded, resumed after a restart).
#include "gap_tracker.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace citygate::ingest;
using namespace std::chrono_literals;

namespace {

const StreamKey kA{"gw-1", "e1"};
const SteadyTime t0{std::chrono::seconds(1000)};

GapTracker::Options opts() {
  GapTracker::Options o;
  o.grace = 2s;
  o.answerTimeout = 10s;
  o.backoffMin = 2s;
  o.backoffMax = 8s;
  o.maxPieces = 100;
  return o;
}

struct Ids {
  int n = 0;
  std::string operator()() { return "r" + std::to_string(++n); }
};

void observeRange(GapTracker& t, const StreamKey& k, std::uint64_t from, std::uint64_t to, SteadyTime now) {
  for (auto s = from; s <= to; ++s) t.observe(k, s, now);
}

}  // namespace

TEST_CASE("in order: no gap, nothing asked") {
  GapTracker t(opts());
  Ids ids;
  observeRange(t, kA, 1, 50, t0);
  CHECK(t.counts(kA).highest == 50);
  CHECK(t.counts(kA).missingSeqs == 0);
  CHECK(t.due(t0 + 1h, ids).empty());
  CHECK(t.takeEvents().empty());
}

TEST_CASE("reorder inside the grace period is not a gap") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 4, t0);
  CHECK(t.counts(kA).missingSeqs == 2);
  CHECK(t.due(t0 + 1999ms, ids).empty());
  CHECK(t.observe(kA, 3, t0 + 1s));
  CHECK(t.observe(kA, 2, t0 + 1500ms));
  CHECK(t.counts(kA).missingSeqs == 0);
  CHECK(t.counts(kA).filledSeqs == 2);
  CHECK(t.due(t0 + 1h, ids).empty());
  CHECK(t.takeEvents().empty());  // never a gap: no row in the gaps table
  CHECK(t.counts(kA).openGaps == 0);
}

TEST_CASE("duplicates change nothing") {
  GapTracker t(opts());
  Ids ids;
  observeRange(t, kA, 1, 3, t0);
  CHECK_FALSE(t.observe(kA, 2, t0));
  CHECK_FALSE(t.observe(kA, 3, t0));
  CHECK_FALSE(t.observe(kA, 1, t0));
  CHECK(t.counts(kA).highest == 3);
  CHECK(t.counts(kA).missingSeqs == 0);
  CHECK(t.due(t0 + 1h, ids).empty());
}

TEST_CASE("a new epoch is a new seq space") {
  GapTracker t(opts());
  Ids ids;
  observeRange(t, kA, 1, 100, t0);
  const StreamKey b{"gw-1", "e2"};
  CHECK_FALSE(t.observe(b, 1, t0));  // seq 1 again, not a duplicate of e1's and no gap in e2
  t.observe(b, 2, t0);
  CHECK(t.counts(b).highest == 2);
  CHECK(t.counts(b).missingSeqs == 0);
  CHECK(t.counts(kA).highest == 100);
  CHECK(t.due(t0 + 1h, ids).empty());
}

TEST_CASE("a gap is asked for after the grace period, once, and the refill fills it") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 5, t0);
  CHECK(t.due(t0 + 1s, ids).empty());
  auto due = t.due(t0 + 2s, ids);
  REQUIRE(due.size() == 1);
  CHECK(due[0].requestId == "r1");
  CHECK(due[0].key == kA);
  CHECK(due[0].fromSeq == 2);
  CHECK(due[0].toSeq == 4);
  CHECK(due[0].attempt == 0);
  auto ev = t.takeEvents();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == GapEvent::Kind::Opened);
  CHECK(ev[0].fromSeq == 2);
  CHECK(ev[0].toSeq == 4);
  CHECK(ev[1].kind == GapEvent::Kind::Asked);
  CHECK(t.counts(kA).openGaps == 1);
  CHECK(t.due(t0 + 5s, ids).empty());  // in flight
  CHECK(t.answer("r1", RefillAnswer::Accepted, 0, t0 + 3s));
  CHECK(t.due(t0 + 12s, ids).empty());  // ACCEPTED restarted the answer timeout
  CHECK(t.observe(kA, 3, t0 + 12s));    // resent readings arrive before DONE
  CHECK(t.answer("r1", RefillAnswer::Done, 0, t0 + 12s));
  CHECK_FALSE(t.answer("r1", RefillAnswer::Done, 0, t0 + 12s));  // answered: forgotten
  t.observe(kA, 2, t0 + 12s);
  t.observe(kA, 4, t0 + 12s);
  ev = t.takeEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == GapEvent::Kind::Closed);
  CHECK(ev[0].state == GapState::Refilled);
  CHECK(ev[0].fromSeq == 2);
  CHECK(ev[0].lostSeqs == 0);
  const auto c = t.counts(kA);
  CHECK(c.openGaps == 0);
  CHECK(c.refilledGaps == 1);
  CHECK(c.missingSeqs == 0);
  CHECK(t.due(t0 + 1h, ids).empty());
}

TEST_CASE("REFILL_UNAVAILABLE: lost for good, never asked again") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 11, t0);
  REQUIRE(t.due(t0 + 2s, ids).size() == 1);
  t.takeEvents();
  CHECK(t.answer("r1", RefillAnswer::Unavailable, 0, t0 + 3s));
  auto ev = t.takeEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == GapEvent::Kind::Closed);
  CHECK(ev[0].state == GapState::Lost);
  CHECK(ev[0].lostSeqs == 9);
  CHECK(t.counts(kA).lostSeqs == 9);
  CHECK(t.counts(kA).lostGaps == 1);
  CHECK(t.counts(kA).missingSeqs == 0);
  CHECK(t.due(t0 + 24h, ids).empty());
  CHECK_FALSE(t.observe(kA, 5, t0 + 25h));  // a late one is stored (the database decides), not a fill
}

TEST_CASE("DONE with missing: what has not come after the grace period is lost") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 6, t0);
  REQUIRE(t.due(t0 + 2s, ids).size() == 1);  // 2..5
  t.answer("r1", RefillAnswer::Done, 2, t0 + 3s);
  t.observe(kA, 4, t0 + 3s);
  t.observe(kA, 5, t0 + 3s);
  CHECK(t.due(t0 + 4s, ids).empty());
  CHECK(t.counts(kA).missingSeqs == 2);
  t.takeEvents();
  CHECK(t.due(t0 + 5s, ids).empty());
  auto ev = t.takeEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].state == GapState::Lost);
  CHECK(ev[0].lostSeqs == 2);
  CHECK(t.counts(kA).missingSeqs == 0);
}

TEST_CASE("DONE without missing but not all came: asked again after a backoff") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 4, t0);
  REQUIRE(t.due(t0 + 2s, ids).size() == 1);
  t.answer("r1", RefillAnswer::Done, 0, t0 + 3s);
  CHECK(t.due(t0 + 5s, ids).empty());  // settled: asked again after backoff (2 s)
  auto again = t.due(t0 + 7s, ids);
  REQUIRE(again.size() == 1);
  CHECK(again[0].fromSeq == 2);
  CHECK(again[0].toSeq == 3);
  CHECK(again[0].attempt == 1);
}

TEST_CASE("no answer or FAILED: asked again with exponential backoff, capped") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 3, t0);
  REQUIRE(t.due(t0 + 2s, ids).size() == 1);
  // No answer within 10 s: retried after 2 s.
  CHECK(t.due(t0 + 11s, ids).empty());
  CHECK(t.due(t0 + 12s, ids).empty());  // timed out now, backoff 2 s from here
  auto r2 = t.due(t0 + 14s, ids);
  REQUIRE(r2.size() == 1);
  CHECK(r2[0].attempt == 1);
  CHECK(t.answer(r2[0].requestId, RefillAnswer::Failed, 0, t0 + 15s));  // next in 4 s
  CHECK(t.due(t0 + 18s, ids).empty());
  auto r3 = t.due(t0 + 19s, ids);
  REQUIRE(r3.size() == 1);
  CHECK(t.answer(r3[0].requestId, RefillAnswer::Failed, 0, t0 + 19s));  // 8 s
  CHECK(t.due(t0 + 26s, ids).empty());
  auto r4 = t.due(t0 + 27s, ids);
  REQUIRE(r4.size() == 1);
  CHECK(t.answer(r4[0].requestId, RefillAnswer::Failed, 0, t0 + 27s));  // capped at 8 s
  CHECK(t.due(t0 + 34s, ids).empty());
  CHECK(t.due(t0 + 35s, ids).size() == 1);
  CHECK_FALSE(t.answer("not-ours", RefillAnswer::Done, 0, t0 + 35s));
}

TEST_CASE("a range over 100000 seqs is asked for in parts") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 250002, t0);
  auto due = t.due(t0 + 2s, ids);
  REQUIRE(due.size() == 3);
  CHECK(due[0].fromSeq == 2);
  CHECK(due[0].toSeq == 100001);
  CHECK(due[1].fromSeq == 100002);
  CHECK(due[1].toSeq == 200001);
  CHECK(due[2].fromSeq == 200002);
  CHECK(due[2].toSeq == 250001);
  for (const auto& r : due) CHECK(r.toSeq - r.fromSeq + 1 <= kMaxRefillSeqs);
  // One gap row for the whole range; it closes when its last part does.
  auto ev = t.takeEvents();
  CHECK(std::count_if(ev.begin(), ev.end(), [](const GapEvent& e) { return e.kind == GapEvent::Kind::Opened; }) == 1);
  t.answer(due[0].requestId, RefillAnswer::Unavailable, 0, t0 + 3s);
  t.answer(due[1].requestId, RefillAnswer::Unavailable, 0, t0 + 3s);
  CHECK(t.takeEvents().empty());
  t.answer(due[2].requestId, RefillAnswer::Unavailable, 0, t0 + 3s);
  ev = t.takeEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].state == GapState::Lost);
  CHECK(ev[0].lostSeqs == 250000);
}

TEST_CASE("a fill inside a requested range splits it; the answer covers both parts") {
  GapTracker t(opts());
  Ids ids;
  t.observe(kA, 1, t0);
  t.observe(kA, 10, t0);
  REQUIRE(t.due(t0 + 2s, ids).size() == 1);  // 2..9
  t.observe(kA, 5, t0 + 3s);
  t.answer("r1", RefillAnswer::Unavailable, 0, t0 + 4s);
  CHECK(t.counts(kA).lostSeqs == 7);
  CHECK(t.counts(kA).missingSeqs == 0);
  auto ev = t.takeEvents();
  REQUIRE(ev.back().kind == GapEvent::Kind::Closed);
  CHECK(ev.back().lostSeqs == 7);
}

TEST_CASE("bounded: past maxPieces the oldest missing range is given up") {
  auto o = opts();
  o.maxPieces = 3;
  GapTracker t(o);
  for (std::uint64_t s : {1, 3, 5, 7, 9}) t.observe(kA, s, t0);
  const auto c = t.counts(kA);
  CHECK(c.missingSeqs == 3);  // 4, 6, 8
  CHECK(c.lostSeqs == 1);     // 2
  auto ev = t.takeEvents();
  REQUIRE(ev.size() == 2);  // recorded as a lost gap
  CHECK(ev[1].state == GapState::Lost);
  CHECK(ev[1].fromSeq == 2);
}

TEST_CASE("restore: open gaps are asked at once, lost ones never, unknown holes after the grace") {
  GapTracker t(opts());
  Ids ids;
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> holes = {{2, 3}, {10, 12}, {20, 20}};
  const std::vector<GapTracker::KnownGap> gaps = {
      {2, 5, GapState::Open}, {10, 12, GapState::Lost}, {30, 31, GapState::Open}};
  t.restore(kA, 40, holes, gaps, t0);
  CHECK(t.counts(kA).highest == 40);
  CHECK(t.counts(kA).missingSeqs == 3);  // 2, 3 and 20
  auto ev = t.takeEvents();
  REQUIRE(ev.size() == 1);  // 30..31 was filled before the restart
  CHECK(ev[0].state == GapState::Refilled);
  CHECK(ev[0].fromSeq == 30);
  auto due = t.due(t0, ids);
  REQUIRE(due.size() == 1);
  CHECK(due[0].fromSeq == 2);
  CHECK(due[0].toSeq == 3);
  due = t.due(t0 + 2s, ids);
  REQUIRE(due.size() == 1);
  CHECK(due[0].fromSeq == 20);
  t.observe(kA, 2, t0 + 3s);
  t.observe(kA, 3, t0 + 3s);
  ev = t.takeEvents();
  REQUIRE_FALSE(ev.empty());
  CHECK(ev.back().kind == GapEvent::Kind::Closed);
  CHECK(ev.back().fromSeq == 2);  // the row from before the restart
  CHECK(ev.back().toSeq == 5);
}
