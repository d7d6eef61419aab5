#include "nodes/air/fcnt_store.hpp"

#include <string.h>

#include "core/crc.hpp"

namespace citygate::fw::air {

namespace {

constexpr uint8_t kMagic[4] = {'C', 'G', 'F', 'C'};

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

void encode(uint32_t value, uint8_t (&r)[FcntStore::kRecordBytes]) {
  memcpy(r, kMagic, 4);
  put32(r + 4, value);
  put32(r + 8, ~value);
  put32(r + 12, crc32(r, 12));
}

bool decode(const uint8_t (&r)[FcntStore::kRecordBytes], uint32_t& value) {
  if (memcmp(r, kMagic, 4) != 0 || crc32(r, 12) != get32(r + 12)) return false;
  value = get32(r + 4);
  return get32(r + 8) == ~value;
}

bool erased(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0xFF) return false;
  }
  return true;
}

}  // namespace

FcntStore::FcntStore(hal::Flash& flash, uint32_t margin) : flash_(flash), margin_(margin == 0 ? 1 : margin) {}

uint32_t FcntStore::sectorOffset(uint32_t ring) const {
  return (kFirstSector + ring) * flash_.sectorSize();
}

bool FcntStore::start() {
  started_ = false;
  stats_ = Stats{};
  if (flash_.sectorCount() < kFirstSector + kSectors || flash_.sectorSize() < 2 * kRecordBytes) return false;
  slots_ = flash_.sectorSize() / kRecordBytes;
  bool found = false;
  uint32_t best = 0;
  uint32_t bestRing = 0;
  uint32_t bestEnd = 0;  // the slot after the last written one in the best record's sector
  for (uint32_t ring = 0; ring < kSectors; ++ring) {
    uint32_t lastWritten = 0;  // 1 + index of the last slot that is not erased
    bool sectorHasBest = false;
    for (uint32_t s = 0; s < slots_; ++s) {
      uint8_t r[kRecordBytes];
      if (!flash_.read(sectorOffset(ring) + s * kRecordBytes, r, kRecordBytes)) return false;
      if (erased(r, kRecordBytes)) continue;
      lastWritten = s + 1;
      uint32_t value = 0;
      if (!decode(r, value)) {
        ++stats_.badRecords;
        continue;
      }
      ++stats_.records;
      if (!found || value > best) {
        found = true;
        best = value;
        sectorHasBest = true;
      }
    }
    if (sectorHasBest) {
      bestRing = ring;
      bestEnd = lastWritten;
    }
  }
  next_ = limit_ = found ? best : 0;
  newest_ = found ? bestRing : kSectors;
  if (found) {
    ring_ = bestRing;
    slot_ = bestEnd;  // may be == slots_: the next record erases the next sector
  } else {
    ring_ = kSectors - 1;  // a blank area: the first record erases the ring's sector 0
    slot_ = slots_;
  }
  started_ = true;
  return true;
}

bool FcntStore::writeRecord(uint32_t offset, uint32_t value) {
  uint8_t r[kRecordBytes];
  encode(value, r);
  uint8_t back[kRecordBytes];
  ++stats_.writes;
  if (!flash_.write(offset, r, kRecordBytes) || !flash_.read(offset, back, kRecordBytes) ||
      memcmp(r, back, kRecordBytes) != 0) {
    ++stats_.writeErrors;
    return false;
  }
  return true;
}

bool FcntStore::reserve(uint32_t newLimit) {
  // Up to kSectors * 2 attempts: a slot whose write failed is never written again (NOR: it may
  // hold some cleared bits now), the next one is tried.
  for (uint32_t attempt = 0; attempt < 2 * kSectors; ++attempt) {
    if (slot_ >= slots_) {
      const uint32_t nextRing = (ring_ + 1) % kSectors;
      if (nextRing == newest_) {  // writes kept failing all round the ring: keep the newest record
        ++stats_.writeErrors;
        return false;
      }
      ++stats_.erases;
      // The sector erased is the oldest of the ring: every record in it is below the newest.
      uint8_t check[kRecordBytes];
      if (!flash_.erase(kFirstSector + nextRing) || !flash_.read(sectorOffset(nextRing), check, kRecordBytes) ||
          !erased(check, kRecordBytes)) {
        ++stats_.writeErrors;
        return false;
      }
      ring_ = nextRing;
      slot_ = 0;
    }
    const uint32_t offset = sectorOffset(ring_) + slot_ * kRecordBytes;
    ++slot_;
    if (writeRecord(offset, newLimit)) {
      limit_ = newLimit;
      newest_ = ring_;
      return true;
    }
  }
  return false;
}

bool FcntStore::take(uint32_t& fcnt) {
  if (!started_) return false;
  if (next_ >= limit_) {
    uint32_t newLimit = next_ + margin_;
    if (newLimit < next_) newLimit = 0xFFFFFFFFu;  // the end of the 32-bit counter
    if (newLimit <= next_ || !reserve(newLimit)) return false;
  }
  fcnt = next_++;
  return true;
}

}  // namespace citygate::fw::air
