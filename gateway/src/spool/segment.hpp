// Segment file format of the file spool: pure encoding and decoding, no I/O (FORMAT.md beside
// this file is the normative description; keep the two in step).
//
//   segment = header (32 bytes) , { frame }
//   header  = "CGSP" | u16 version | u16 header size | u64 first seq | i64 created (Unix ms)
//             | u32 flags | u32 CRC-32 of the 28 bytes before it
//   frame   = u32 payload length | u64 seq | u32 CRC-32 of (length, seq, payload) | payload
//
// All integers little-endian; CRC-32 is zlib's (ISO-HDLC, poly 0x04C11DB7 reflected).
//
// Every function here is total: any byte string, however damaged, yields a status, never a
// crash or an out-of-bounds read. The fuzz target tests/fuzz/spool_segment.cpp holds us to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::spool::segment {

inline constexpr char kMagic[4] = {'C', 'G', 'S', 'P'};
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::size_t kFrameOverhead = 16;
// A reading is a few hundred bytes; anything claiming more is damage, not data.
inline constexpr std::uint32_t kMaxPayload = 1U << 20;
// Resynchronisation accepts a frame only if its seq is within this distance of the last good one.
inline constexpr std::uint64_t kMaxSeqStep = 1ULL << 32;

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0);

struct Header {
  std::uint16_t version = kVersion;
  std::uint64_t firstSeq = 0;
  std::int64_t createdUnixMs = 0;
  std::uint32_t flags = 0;
};

enum class HeaderStatus : std::uint8_t {
  Ok,
  Short,          // fewer bytes than a header: a file whose creation was torn
  BadMagic,       // not a spool segment
  BadCrc,         // damaged header (magic present, CRC wrong)
  FutureVersion,  // intact header of a newer format: refuse, never touch
};

const char* toString(HeaderStatus s);

std::string encodeHeader(const Header& h);
HeaderStatus decodeHeader(std::string_view file, Header& out);

enum class FrameStatus : std::uint8_t {
  Ok,
  Truncated,  // the frame runs past the end of the bytes given
  Corrupt,    // length out of range or CRC mismatch
};

struct Frame {
  std::uint64_t seq = 0;
  std::string_view payload;
  std::size_t size = 0;  // kFrameOverhead + payload.size()
};

void encodeFrame(std::string& out, std::uint64_t seq, std::string_view payload);
inline std::size_t frameSize(std::size_t payload) {
  return kFrameOverhead + payload;
}

// Decodes the frame at the start of `bytes`.
FrameStatus decodeFrame(std::string_view bytes, Frame& out);

// The first offset > `from` where an intact frame with afterSeq < seq <= afterSeq + kMaxSeqStep
// starts, or npos. Used to step over a damaged frame whose length cannot be trusted.
std::size_t resync(std::string_view bytes, std::size_t from, std::uint64_t afterSeq);

// A damaged stretch inside a segment: frames resume at `resume` (an intact frame).
struct CorruptSpan {
  std::uint64_t offset = 0;
  std::uint64_t resume = 0;
};

// Seqs first..last (inclusive) that damage made unreadable; first 0: none (seqs start at 1).
struct SeqRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t count() const { return first == 0 || last < first ? 0 : last - first + 1; }
};

// The seqs strictly between two intact neighbours (`before` and `after`), less those already
// acknowledged (<= ackedSeq, delivered before the damage mattered). Empty when none is missing.
SeqRange lostBetween(std::uint64_t before, std::uint64_t after, std::uint64_t ackedSeq);

// What recovery learns from one whole segment file.
struct ScanResult {
  HeaderStatus header = HeaderStatus::Short;
  Header hdr;
  std::uint64_t records = 0;        // intact frames
  std::uint64_t firstSeq = 0;       // of the first intact frame (0: none)
  std::uint64_t lastSeq = 0;        // of the last intact frame (0: none)
  std::uint64_t validEnd = 0;       // offset just past the last intact frame (>= header size)
  std::uint64_t corruptFrames = 0;  // damaged stretches followed by intact frames
  std::vector<CorruptSpan> spans;   // where they are (the first kMaxSpans)
  // Readings those stretches cost, by seq: the seqs between the intact frames around each
  // stretch that are above ackedSeq (the first kMaxSpans ranges are listed).
  std::uint64_t corruptReadings = 0;
  std::vector<SeqRange> lost;
  std::uint64_t tailBytes = 0;  // bytes after validEnd: a torn or damaged tail, to be cut
  // Records with seq <= this bound are counted in `acked` and locate `ackEnd`.
  std::uint64_t acked = 0;
  std::uint64_t ackEnd = 0;  // offset of the first frame with seq > ackedSeq (or validEnd)
};

inline constexpr std::size_t kMaxSpans = 1024;

// Scans a whole segment file. Frames are only looked at when the header is Ok or BadCrc (then the
// header's first seq is not trusted). `ackedSeq` splits the records into acknowledged and not.
// `nameSeq` (the first seq in the file's name, 0: unknown) stands in for a damaged header's first
// seq when damage before the first intact frame is counted; it never decides what is accepted.
ScanResult scan(std::string_view file, std::uint64_t ackedSeq = 0, std::uint64_t nameSeq = 0);

}  // namespace citygate::spool::segment
