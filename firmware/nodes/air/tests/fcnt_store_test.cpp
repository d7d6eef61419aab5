// The frame counter across power cuts: a fake NOR flash loses the power at every write and erase
// a run makes (torn in several ways); after each cut the node starts again from the flash, and
// the counter it sends next must be above every counter sent before the cut (never back, never
// twice).
#include "nodes/air/fcnt_store.hpp"
#include "core/check.hpp"
#include "nodes/air/tests/fakes.hpp"

namespace air = citygate::fw::air;
using citygate::fw::test::FakeFlash;

namespace {

// Small sectors (4 records each) so a run goes round the ring of four sectors several times.
constexpr uint32_t kSector = 64;
constexpr uint32_t kSectorCount = 8;

}  // namespace

FW_TEST("fcnt store: a blank flash starts at 0, reserves in blocks of the margin, resumes at the limit") {
  FakeFlash flash(kSector, kSectorCount);
  air::FcntStore store(flash, 16);
  FW_CHECK(store.start());
  FW_CHECK_EQ(store.next(), 0u);
  uint32_t f = 99;
  FW_CHECK(store.take(f));
  FW_CHECK_EQ(f, 0u);
  FW_CHECK_EQ(store.limit(), 16u);
  FW_CHECK_EQ(flash.writes(), 1u);
  for (uint32_t i = 1; i < 16; ++i) {
    FW_CHECK(store.take(f));
    FW_CHECK_EQ(f, i);
  }
  FW_CHECK_EQ(flash.writes(), 1u);  // one record per 16 frames
  FW_CHECK(store.take(f));
  FW_CHECK_EQ(f, 16u);
  FW_CHECK_EQ(flash.writes(), 2u);
  air::FcntStore again(flash, 16);
  FW_CHECK(again.start());
  FW_CHECK_EQ(again.next(), 32u);  // a restart skips what was reserved: at most the margin
  FW_CHECK_EQ(again.stats().records, 2u);
  // Sectors 0 and 1 (provisioning) are never touched.
  for (uint32_t i = 0; i < 2 * kSector; ++i) FW_CHECK_EQ(flash.bytes()[i], 0xFF);
}

FW_TEST("fcnt store: the ring of sectors 2..5 wears evenly") {
  FakeFlash flash(kSector, kSectorCount);
  air::FcntStore store(flash, 1);  // a record per frame
  FW_CHECK(store.start());
  uint32_t f = 0;
  for (uint32_t i = 0; i < 4 * 4 * 5; ++i) {
    FW_CHECK(store.take(f));
    FW_CHECK_EQ(f, i);
  }
  FW_CHECK_EQ(store.stats().erases, 20u);  // every 4 records, the next of the 4 sectors
  FW_CHECK_EQ(store.stats().writeErrors, 0u);
  for (uint32_t i = 6 * kSector; i < 8 * kSector; ++i) FW_CHECK_EQ(flash.bytes()[i], 0xFF);
  air::FcntStore again(flash, 1);
  FW_CHECK(again.start());
  FW_CHECK_EQ(again.next(), 80u);
}

FW_TEST("fcnt store: a flash that refuses gives no counter, never a reused one") {
  FakeFlash flash(kSector, kSectorCount);
  air::FcntStore store(flash, 4);
  FW_CHECK(store.start());
  uint32_t f = 0;
  for (int i = 0; i < 4; ++i) FW_CHECK(store.take(f));
  flash.failAll(true);
  FW_CHECK(!store.take(f));
  FW_CHECK(!store.take(f));
  FW_CHECK(store.stats().writeErrors > 0);
  flash.failAll(false);
  FW_CHECK(store.take(f));
  FW_CHECK_EQ(f, 4u);
  FakeFlash tiny(kSector, 5);  // sectors 2..5 need six sectors
  air::FcntStore small(tiny, 4);
  FW_CHECK(!small.start());
  FW_CHECK(!small.take(f));
}

namespace {

// One scenario: from a flash in some state, the node runs `frames` uplinks with the power cut at
// operation `cutAt` (torn with `tear`), then starts again. Checks that the first counter after the
// restart is above every counter taken before the cut; returns false when the cut never happened
// (the run needed fewer operations).
bool cutOnce(FakeFlash& flash, uint32_t margin, uint32_t frames, uint32_t cutAt, FakeFlash::Tear tear,
             uint32_t tearBytes, uint32_t& highestSent, bool& anySent) {
  air::FcntStore store(flash, margin);
  if (!store.start()) {
    FW_CHECK(false);
    return false;
  }
  if (anySent) FW_CHECK(store.next() > highestSent);
  flash.cutAt(cutAt, tear, tearBytes);
  for (uint32_t i = 0; i < frames && !flash.off(); ++i) {
    uint32_t f = 0;
    if (!store.take(f)) break;  // the power went during the reservation: nothing sent
    if (anySent) FW_CHECK(f > highestSent);
    highestSent = f;
    anySent = true;
  }
  const bool cut = flash.off();
  flash.powerOn();
  return cut;
}

void tortureRun(uint32_t margin, FakeFlash::Tear tear, uint32_t tearBytes) {
  // For every operation k of a run: start from a flash that has seen some history, cut at k,
  // restart, go on, cut again at k, ... so cuts land at every write and erase position of the
  // ring, including the erase of the next sector and the first record in it.
  for (uint32_t k = 1; k <= 40; ++k) {
    FakeFlash flash(kSector, kSectorCount);
    uint32_t highest = 0;
    bool any = false;
    int cuts = 0;
    for (int round = 0; round < 12; ++round) {
      if (cutOnce(flash, margin, 45 * margin, k, tear, tearBytes, highest, any)) ++cuts;
    }
    // The last start after all the cuts: still above everything sent.
    air::FcntStore store(flash, margin);
    FW_CHECK(store.start());
    if (any) FW_CHECK(store.next() > highest);
    FW_CHECK_EQ(cuts, 12);  // every round lost the power at its k-th operation
  }
}

}  // namespace

FW_TEST("fcnt store: a power cut at any write or erase, nothing written, never reuses a counter") {
  tortureRun(1, FakeFlash::Tear::Nothing, 0);
  tortureRun(3, FakeFlash::Tear::Nothing, 0);
  tortureRun(16, FakeFlash::Tear::Nothing, 0);
}

FW_TEST("fcnt store: a power cut tearing a record after any byte never reuses a counter") {
  for (uint32_t bytes = 1; bytes < air::FcntStore::kRecordBytes; ++bytes) {
    tortureRun(1, FakeFlash::Tear::Prefix, bytes);
    tortureRun(5, FakeFlash::Tear::Prefix, bytes);
  }
}

FW_TEST("fcnt store: a power cut half-programming a record's bits never reuses a counter") {
  tortureRun(1, FakeFlash::Tear::EvenBits, 0);
  tortureRun(2, FakeFlash::Tear::EvenBits, 0);
}

FW_TEST("fcnt store: a torn erase (part of the sector back to 0xFF) never reuses a counter") {
  for (uint32_t bytes = 0; bytes <= kSector; bytes += 8) tortureRun(1, FakeFlash::Tear::Prefix, bytes);
}

FW_TEST("fcnt store: failing writes never erase the sector that holds the newest record") {
  FakeFlash flash(kSector, kSectorCount);
  air::FcntStore store(flash, 1);
  FW_CHECK(store.start());
  uint32_t f = 0;
  FW_CHECK(store.take(f));
  FW_CHECK(store.take(f));  // limit 2 in sector 2, slot 1
  // Writes fail but erases work: the store goes on to fresh slots and sectors, and must stop
  // before it comes round to sector 2 again.
  for (int i = 0; i < 20; ++i) {
    flash.failWrites(true);
    FW_CHECK(!store.take(f));
  }
  flash.failWrites(false);
  air::FcntStore again(flash, 1);
  FW_CHECK(again.start());
  FW_CHECK_EQ(again.next(), 2u);
}

FW_TEST("fcnt store: a torn record is skipped, the next one goes to an erased slot") {
  FakeFlash flash(kSector, kSectorCount);
  uint32_t highest = 0;
  bool any = false;
  // The third operation: the erase of sector 2, record 0, then record 1 torn half way.
  FW_CHECK(cutOnce(flash, 1, 10, 3, FakeFlash::Tear::Prefix, 8, highest, any));
  air::FcntStore store(flash, 1);
  FW_CHECK(store.start());
  FW_CHECK_EQ(store.stats().badRecords, 1u);
  FW_CHECK_EQ(store.next(), 1u);  // counter 0 was sent; 1 was being reserved, never sent
  uint32_t f = 0;
  FW_CHECK(store.take(f));
  FW_CHECK_EQ(f, 1u);
  FW_CHECK_EQ(store.stats().writeErrors, 0u);  // written to slot 2, not over the torn slot 1
}
