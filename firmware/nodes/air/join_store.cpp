#include "nodes/air/join_store.hpp"

#include <string.h>

#include "core/crc.hpp"

namespace citygate::fw::air {

namespace {

constexpr uint8_t kMagic[4] = {'C', 'G', 'J', 'S'};
constexpr uint32_t kCrcAt = JoinStore::kRecordBytes - 4;

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

// 0 magic | 4 seq | 8 nonce limit u32 | 12 flags (bit 0: session) | 13 DLSettings | 14 RxDelay |
// 15 0 | 16 DevAddr | 20 fcntBase | 24 NwkSKey | 40 AppSKey | 56 CFList | 72 identity | 76 CRC-32.
void encode(uint32_t seq, uint32_t limit, const OtaaSession& s, uint8_t (&r)[JoinStore::kRecordBytes]) {
  memset(r, 0, sizeof r);
  memcpy(r, kMagic, 4);
  put32(r + 4, seq);
  put32(r + 8, limit);
  r[12] = s.valid ? 1 : 0;
  if (s.valid) {
    r[13] = s.dlSettings;
    r[14] = s.rxDelay;
    put32(r + 16, s.devAddr);
    put32(r + 20, s.fcntBase);
    memcpy(r + 24, s.nwkSKey, kKeyBytes);
    memcpy(r + 40, s.appSKey, kKeyBytes);
    memcpy(r + 56, s.cfList, 16);
    put32(r + 72, s.identity);
  }
  put32(r + kCrcAt, crc32(r, kCrcAt));
}

bool decode(const uint8_t (&r)[JoinStore::kRecordBytes], uint32_t& seq, uint32_t& limit, OtaaSession& s) {
  if (memcmp(r, kMagic, 4) != 0 || crc32(r, kCrcAt) != get32(r + kCrcAt)) return false;
  if (r[12] > 1 || get32(r + 8) > 0x10000u) return false;
  seq = get32(r + 4);
  limit = get32(r + 8);
  s = OtaaSession{};
  s.valid = r[12] == 1;
  if (s.valid) {
    s.dlSettings = r[13];
    s.rxDelay = r[14] == 0 || r[14] > 15 ? 1 : r[14];
    s.devAddr = get32(r + 16);
    s.fcntBase = get32(r + 20);
    memcpy(s.nwkSKey, r + 24, kKeyBytes);
    memcpy(s.appSKey, r + 40, kKeyBytes);
    memcpy(s.cfList, r + 56, 16);
    s.identity = get32(r + 72);
  }
  return true;
}

bool erased(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0xFF) return false;
  }
  return true;
}

}  // namespace

bool JoinStore::start() {
  started_ = false;
  stats_ = Stats{};
  session_ = OtaaSession{};
  if (flash_.sectorCount() < kFirstSector + kSectors || flash_.sectorSize() < 2 * kRecordBytes) return false;
  slots_ = flash_.sectorSize() / kRecordBytes;
  bool found = false;
  uint32_t bestEnd = 0;
  for (uint32_t sec = 0; sec < kSectors; ++sec) {
    uint32_t lastWritten = 0;
    bool hasBest = false;
    for (uint32_t s = 0; s < slots_; ++s) {
      uint8_t r[kRecordBytes];
      if (!flash_.read((kFirstSector + sec) * flash_.sectorSize() + s * kRecordBytes, r, kRecordBytes)) return false;
      if (erased(r, kRecordBytes)) continue;
      lastWritten = s + 1;
      uint32_t seq = 0;
      uint32_t limit = 0;
      OtaaSession session;
      if (!decode(r, seq, limit, session)) {
        ++stats_.badRecords;
        continue;
      }
      ++stats_.records;
      if (!found || seq > seq_) {
        found = true;
        seq_ = seq;
        nonceLimit_ = limit;
        session_ = session;
        hasBest = true;
        newest_ = sec;
      }
    }
    if (hasBest) bestEnd = lastWritten;
  }
  if (found) {
    sector_ = newest_;
    slot_ = bestEnd;  // may be == slots_: the next record erases the other sector
  } else {
    seq_ = 0;
    nonceLimit_ = 0;
    newest_ = kSectors;
    sector_ = kSectors - 1;  // a blank area: the first record erases sector 0 of the pair
    slot_ = slots_;
  }
  nextNonce_ = nonceLimit_;
  started_ = true;
  return true;
}

bool JoinStore::append(uint32_t nonceLimit, const OtaaSession& session) {
  uint8_t r[kRecordBytes];
  encode(seq_ + 1, nonceLimit, session, r);
  for (uint32_t attempt = 0; attempt < 4; ++attempt) {
    if (slot_ >= slots_) {
      const uint32_t other = (sector_ + 1) % kSectors;
      if (other == newest_) {  // writes kept failing in the newest record's sector: keep it
        ++stats_.writeErrors;
        return false;
      }
      ++stats_.erases;
      uint8_t check[kRecordBytes];
      if (!flash_.erase(kFirstSector + other) ||
          !flash_.read((kFirstSector + other) * flash_.sectorSize(), check, kRecordBytes) ||
          !erased(check, kRecordBytes)) {
        ++stats_.writeErrors;
        return false;
      }
      sector_ = other;
      slot_ = 0;
    }
    const uint32_t offset = (kFirstSector + sector_) * flash_.sectorSize() + slot_ * kRecordBytes;
    ++slot_;
    uint8_t back[kRecordBytes];
    ++stats_.writes;
    if (flash_.write(offset, r, kRecordBytes) && flash_.read(offset, back, kRecordBytes) &&
        memcmp(r, back, kRecordBytes) == 0) {
      ++seq_;
      newest_ = sector_;
      return true;
    }
    ++stats_.writeErrors;
  }
  return false;
}

bool JoinStore::takeDevNonce(uint16_t& devNonce) {
  if (!started_ || nextNonce_ > 0xFFFFu) return false;
  if (nextNonce_ >= nonceLimit_) {
    uint32_t limit = nextNonce_ + kNonceBlock;
    if (limit > 0x10000u) limit = 0x10000u;
    if (!append(limit, session_)) return false;
    nonceLimit_ = limit;
  }
  devNonce = static_cast<uint16_t>(nextNonce_++);
  return true;
}

bool JoinStore::saveSession(const OtaaSession& session) {
  if (!started_) return false;
  OtaaSession s = session;
  s.valid = true;
  if (!append(nonceLimit_, s)) return false;
  session_ = s;
  return true;
}

}  // namespace citygate::fw::air
