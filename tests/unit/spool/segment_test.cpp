// The segment format, pure: encoding round trips, every way a frame or a header can be damaged.
#include "spool/segment.hpp"

#include <doctest/doctest.h>

#include "spool/file_spool_support.hpp"

#include <string>

using namespace citygate::spool::segment;

namespace {
std::string seg(std::uint64_t first, std::uint64_t last, std::size_t pad = 30) {
  Header h;
  h.firstSeq = first;
  h.createdUnixMs = 1795000000000;
  std::string s = encodeHeader(h);
  for (std::uint64_t i = first; i <= last; ++i) encodeFrame(s, i, std::string(pad, static_cast<char>('a' + i % 26)));
  return s;
}
}  // namespace

TEST_CASE("segment: CRC-32 is zlib's (check value of \"123456789\")") {
  CHECK(crc32("123456789") == 0xCBF43926U);
  CHECK(crc32("") == 0U);
  CHECK(crc32("56789", crc32("1234")) == 0xCBF43926U);
}

TEST_CASE("segment: header and frames round-trip") {
  const std::string s = seg(7, 12);
  Header h;
  REQUIRE((decodeHeader(s, h) == HeaderStatus::Ok));
  CHECK(h.version == kVersion);
  CHECK(h.firstSeq == 7);
  CHECK(h.createdUnixMs == 1795000000000);
  std::size_t pos = kHeaderSize;
  for (std::uint64_t i = 7; i <= 12; ++i) {
    Frame f;
    REQUIRE((decodeFrame(std::string_view(s).substr(pos), f) == FrameStatus::Ok));
    CHECK(f.seq == i);
    CHECK(f.payload == std::string(30, static_cast<char>('a' + i % 26)));
    CHECK(f.size == frameSize(30));
    pos += f.size;
  }
  CHECK(pos == s.size());
  const ScanResult r = scan(s, 9);
  CHECK((r.header == HeaderStatus::Ok));
  CHECK(r.records == 6);
  CHECK(r.firstSeq == 7);
  CHECK(r.lastSeq == 12);
  CHECK(r.validEnd == s.size());
  CHECK(r.tailBytes == 0);
  CHECK(r.corruptFrames == 0);
  CHECK(r.acked == 3);
  CHECK(r.ackEnd == kHeaderSize + 3 * frameSize(30));
}

TEST_CASE("segment: header damage is classified, never trusted") {
  const std::string good = seg(1, 0);
  Header h;
  CHECK((decodeHeader(good.substr(0, 7), h) == HeaderStatus::Short));
  CHECK((decodeHeader(good.substr(0, 20), h) == HeaderStatus::Short));
  std::string bad = good;
  bad[0] = 'X';
  CHECK((decodeHeader(bad, h) == HeaderStatus::BadMagic));
  bad = good;
  bad[10] ^= 1;
  CHECK((decodeHeader(bad, h) == HeaderStatus::BadCrc));
  bad = good;
  bad[6] = 8;  // a header size too small to hold a CRC-protected header
  CHECK((decodeHeader(bad, h) == HeaderStatus::BadCrc));
  // A newer version with an intact header (its own size, its CRC at the end) is recognised.
  std::string future = std::string(kMagic, 4) + std::string("\x02\x00\x28\x00", 4) + std::string(28, 'z');
  const std::uint32_t c = crc32(future);
  for (int i = 0; i < 4; ++i) future.push_back(static_cast<char>((c >> (8 * i)) & 0xFF));
  REQUIRE(future.size() == 40);
  CHECK((decodeHeader(future, h) == HeaderStatus::FutureVersion));
  CHECK(h.version == 2);
  // The same with one bit flipped is damage, not a newer version.
  future[20] ^= 1;
  CHECK((decodeHeader(future, h) == HeaderStatus::BadCrc));
  CHECK((scan(future).header == HeaderStatus::BadCrc));
}

TEST_CASE("segment: frame damage: truncation, CRC, absurd length") {
  std::string one;
  encodeFrame(one, 5, "payload");
  Frame f;
  for (std::size_t n = 0; n < one.size(); ++n) CHECK(decodeFrame(one.substr(0, n), f) == FrameStatus::Truncated);
  for (std::size_t i = 0; i < one.size(); ++i) {
    std::string bad = one;
    bad[i] ^= 0x20;
    const auto st = decodeFrame(bad, f);
    CHECK((st != FrameStatus::Ok));  // every single-byte change is caught
  }
  std::string huge = one;
  huge[3] = 0x7F;
  CHECK((decodeFrame(huge, f) == FrameStatus::Corrupt));
}

TEST_CASE("segment: scan skips damage in the middle and cuts a torn tail") {
  std::string s = seg(1, 10);
  const std::size_t fs = frameSize(30);
  s[kHeaderSize + 3 * fs + 20] ^= 1;            // record 4's payload
  s[kHeaderSize + 6 * fs + 1] ^= 1;             // record 7's length
  s += std::string("\x22\x00\x00\x00\x0b", 5);  // the start of an 11th frame
  const ScanResult r = scan(s, 0);
  CHECK(r.records == 8);
  CHECK(r.corruptFrames == 2);
  REQUIRE(r.spans.size() == 2);
  CHECK(r.spans[0].offset == kHeaderSize + 3 * fs);
  CHECK(r.spans[0].resume == kHeaderSize + 4 * fs);
  CHECK(r.spans[1].offset == kHeaderSize + 6 * fs);
  CHECK(r.spans[1].resume == kHeaderSize + 7 * fs);
  CHECK(r.lastSeq == 10);
  CHECK(r.validEnd == kHeaderSize + 10 * fs);
  CHECK(r.tailBytes == 5);
  // What the damage cost, by seq: 4, then 7.
  CHECK(r.corruptReadings == 2);
  REQUIRE(r.lost.size() == 2);
  CHECK(r.lost[0].first == 4);
  CHECK(r.lost[0].last == 4);
  CHECK(r.lost[1].first == 7);
  CHECK(r.lost[1].last == 7);
  // Acknowledged records cost nothing when they are damaged.
  CHECK(scan(s, 5).corruptReadings == 1);
}

TEST_CASE("segment: damage before the first intact frame of a damaged header counts from the file's name") {
  std::string s = seg(21, 25);
  s[9] ^= 1;  // the header's first seq: damaged, not trusted
  const std::size_t fs = frameSize(30);
  s[kHeaderSize + fs + 20] ^= 1;  // record 22
  s[kHeaderSize + 20] ^= 1;       // record 21, the first one
  const ScanResult r = scan(s, 0, 21);
  CHECK((r.header == HeaderStatus::BadCrc));
  CHECK(r.records == 3);
  CHECK(r.corruptFrames == 1);  // one stretch: 21 and 22
  CHECK(r.corruptReadings == 2);
  REQUIRE(r.lost.size() == 1);
  CHECK(r.lost[0].first == 21);
  CHECK(r.lost[0].last == 22);
  CHECK(scan(s, 0, 0).corruptReadings == 1);  // where it began is unknown: at least one
}

TEST_CASE("segment: lostBetween is the seqs strictly between two neighbours, above the acknowledged ones") {
  CHECK(lostBetween(5, 6, 0).count() == 0);
  CHECK(lostBetween(5, 9, 0).count() == 3);
  CHECK(lostBetween(5, 9, 7).first == 8);
  CHECK(lostBetween(5, 9, 7).count() == 1);
  CHECK(lostBetween(5, 9, 9).count() == 0);
  CHECK(lostBetween(9, 5, 0).count() == 0);
  CHECK(lostBetween(2, 4, ~0ULL).count() == 0);  // no overflow at the top
  CHECK(lostBetween(~0ULL, 4, 0).count() == 0);
}

TEST_CASE("segment: resync never accepts a frame that goes backwards") {
  std::string s = seg(1, 3);
  std::string old;
  encodeFrame(old, 2, std::string(30, 'q'));  // an intact but stale frame
  s += old;
  const ScanResult r = scan(s);
  CHECK(r.records == 3);
  CHECK(r.tailBytes == old.size());
}
