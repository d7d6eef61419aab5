// The provisioning record store against a flash that loses power at every byte of a save.
#include <string.h>

#include "core/check.hpp"
#include "core/record_store.hpp"
#include "fakes.hpp"

namespace {

using citygate::fw::RecordStore;
using Flash = citygate::fw::test::FakeFlash;
constexpr uint32_t kSector = 256;
constexpr uint32_t kSectors = 4;

void fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
}

bool holds(RecordStore& store, const uint8_t* expected, size_t n) {
  uint8_t out[RecordStore::kMaxPayload];
  size_t size = 0;
  return store.load(out, sizeof out, size) == RecordStore::Status::Ok && size == n && memcmp(out, expected, n) == 0;
}

}  // namespace

FW_TEST("record store: a blank flash holds no record") {
  Flash flash(kSector, kSectors);
  RecordStore store(flash);
  uint8_t out[16];
  size_t size = 1;
  FW_CHECK(store.load(out, sizeof out, size) == RecordStore::Status::Empty);
  FW_CHECK_EQ(size, 0u);
  FW_CHECK_EQ(store.generation(), 0u);
}

FW_TEST("record store: saves alternate between the two sectors, the newest wins") {
  Flash flash(kSector, kSectors);
  RecordStore store(flash);
  uint8_t a[40], b[60], c[10];
  fill(a, sizeof a, 1);
  fill(b, sizeof b, 2);
  fill(c, sizeof c, 3);
  FW_CHECK(store.save(a, sizeof a) == RecordStore::Status::Ok);
  FW_CHECK_EQ(store.generation(), 1u);
  FW_CHECK(holds(store, a, sizeof a));
  FW_CHECK(store.save(b, sizeof b) == RecordStore::Status::Ok);
  FW_CHECK_EQ(store.generation(), 2u);
  FW_CHECK(store.save(c, sizeof c) == RecordStore::Status::Ok);
  FW_CHECK_EQ(store.generation(), 3u);
  // Generation 3 in sector 0, 2 in sector 1, sectors 2 and 3 untouched.
  FW_CHECK_EQ(flash.bytes()[4], 3);
  FW_CHECK_EQ(flash.bytes()[256 + 4], 2);
  FW_CHECK_EQ(flash.bytes()[512], 0xFF);
  RecordStore after(flash);  // a reset
  FW_CHECK(holds(after, c, sizeof c));
  FW_CHECK_EQ(after.generation(), 3u);
}

FW_TEST("record store: a damaged newest copy falls back to the previous one") {
  Flash flash(kSector, kSectors);
  RecordStore store(flash);
  uint8_t a[40], b[40];
  fill(a, sizeof a, 1);
  fill(b, sizeof b, 2);
  FW_CHECK(store.save(a, sizeof a) == RecordStore::Status::Ok);
  FW_CHECK(store.save(b, sizeof b) == RecordStore::Status::Ok);
  flash.bytes()[256 + 16 + 5] = static_cast<uint8_t>(flash.bytes()[256 + 16 + 5] & 0x0F);  // a bit of b's payload
  FW_CHECK(holds(store, a, sizeof a));
  FW_CHECK_EQ(store.generation(), 1u);
  // The next save goes to the damaged sector, not over the good one.
  FW_CHECK(store.save(b, sizeof b) == RecordStore::Status::Ok);
  FW_CHECK_EQ(store.generation(), 2u);
  FW_CHECK(holds(store, b, sizeof b));
  flash.bytes()[0] = 0x00;    // a's magic
  flash.bytes()[256] = 0x00;  // b's magic
  uint8_t out[64];
  size_t size = 0;
  FW_CHECK(store.load(out, sizeof out, size) == RecordStore::Status::Empty);
}

FW_TEST("record store: refuses what does not fit and reports a refusing flash") {
  Flash flash(kSector, kSectors);
  RecordStore store(flash);
  uint8_t big[RecordStore::kMaxPayload + 1] = {};
  FW_CHECK(store.save(big, sizeof big) == RecordStore::Status::TooLarge);
  uint8_t a[50];
  fill(a, sizeof a, 9);
  FW_CHECK(store.save(a, sizeof a) == RecordStore::Status::Ok);
  uint8_t small[10];
  size_t size = 0;
  FW_CHECK(store.load(small, sizeof small, size) == RecordStore::Status::TooLarge);
  flash.cutAtByte(0);
  FW_CHECK(store.save(a, sizeof a) == RecordStore::Status::FlashError);
  Flash tiny(kSector, kSectors);  // a store placed past the end of the flash
  RecordStore outside(tiny, 3);
  FW_CHECK(outside.save(a, sizeof a) == RecordStore::Status::FlashError);
}

// The power is cut after every possible number of byte operations of a save, for a first save
// and for saves over one and over two existing copies. After the cut (a reset), load gives the
// previous record or the new one, never anything else, and never nothing when there was a
// record; a save reported Ok is the new one. A save after the cut works.
FW_TEST("record store: a power cut at any byte of a save keeps the previous record") {
  uint8_t previous[RecordStore::kMaxPayload], next[RecordStore::kMaxPayload];
  fill(previous, 120, 11);
  fill(next, 90, 77);
  for (int existing = 0; existing <= 2; ++existing) {
    // How many byte operations a whole save takes here.
    Flash probe(kSector, kSectors);
    RecordStore ps(probe);
    for (int i = 0; i < existing; ++i) ps.save(previous, 120);
    const uint32_t before = probe.byteOps();
    ps.save(next, 90);
    const uint32_t total = probe.byteOps() - before;
    FW_CHECK(total >= 256 + 90 + 16);
    int failures = 0;
    for (uint32_t cut = 0; cut <= total; ++cut) {
      Flash flash(kSector, kSectors);
      RecordStore store(flash);
      for (int i = 0; i < existing; ++i) store.save(previous, 120);
      flash.cutAtByte(cut);
      const RecordStore::Status st = store.save(next, 90);
      flash.powerOn();
      RecordStore after(flash);
      uint8_t out[RecordStore::kMaxPayload];
      size_t size = 0;
      const RecordStore::Status loaded = after.load(out, sizeof out, size);
      const bool isNext = loaded == RecordStore::Status::Ok && size == 90 && memcmp(out, next, 90) == 0;
      const bool isPrevious = loaded == RecordStore::Status::Ok && size == 120 && memcmp(out, previous, 120) == 0;
      bool ok = isNext || isPrevious || (existing == 0 && loaded == RecordStore::Status::Empty);
      if (st == RecordStore::Status::Ok) ok = ok && isNext;
      if (cut < total) ok = ok && st != RecordStore::Status::Ok;
      // And the store works again after the reset.
      ok = ok && after.save(next, 90) == RecordStore::Status::Ok && holds(after, next, 90);
      if (!ok) ++failures;
    }
    FW_CHECK_EQ(failures, 0);
  }
}
