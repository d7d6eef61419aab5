#include "spool/segment.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace citygate::spool::segment {

namespace {

void putU16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
void putU32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void putU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
std::uint16_t getU16(const char* p) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(p[0]) | (static_cast<unsigned char>(p[1]) << 8));
}
std::uint32_t getU32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::uint64_t getU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// CRC of a frame: its first 12 bytes (length and seq), then the payload.
std::uint32_t frameCrc(const char* head, std::string_view payload) {
  return crc32(payload, crc32(std::string_view(head, 12)));
}

}  // namespace

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc) {
  // zlib takes uInt lengths; feed large inputs in slices.
  const auto* p = reinterpret_cast<const Bytef*>(bytes.data());
  std::size_t left = bytes.size();
  uLong c = crc;
  while (left > 0) {
    const auto n = static_cast<uInt>(left > (1U << 30) ? (1U << 30) : left);
    c = ::crc32(c, p, n);
    p += n;
    left -= n;
  }
  return static_cast<std::uint32_t>(c);
}

const char* toString(HeaderStatus s) {
  switch (s) {
    case HeaderStatus::Ok:
      return "ok";
    case HeaderStatus::Short:
      return "shorter than a header";
    case HeaderStatus::BadMagic:
      return "not a spool segment (bad magic)";
    case HeaderStatus::BadCrc:
      return "damaged header (CRC mismatch)";
    case HeaderStatus::FutureVersion:
      return "newer format version";
  }
  return "?";
}

std::string encodeHeader(const Header& h) {
  std::string out;
  out.reserve(kHeaderSize);
  out.append(kMagic, sizeof kMagic);
  putU16(out, h.version);
  putU16(out, static_cast<std::uint16_t>(kHeaderSize));
  putU64(out, h.firstSeq);
  putU64(out, static_cast<std::uint64_t>(h.createdUnixMs));
  putU32(out, h.flags);
  putU32(out, crc32(out));
  return out;
}

HeaderStatus decodeHeader(std::string_view file, Header& out) {
  // Every version keeps bytes 0..7 (magic, version, header size) and ends its header with the
  // CRC-32 of the bytes before it, so a newer header can be recognised as intact.
  if (file.size() < 8) return HeaderStatus::Short;
  if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0) return HeaderStatus::BadMagic;
  const std::uint16_t version = getU16(file.data() + 4);
  const std::uint16_t size = getU16(file.data() + 6);
  out.version = version;  // as found, even when the CRC then fails (the caller may need it)
  if (size < 12 || file.size() < size) {
    return file.size() < kHeaderSize ? HeaderStatus::Short : HeaderStatus::BadCrc;
  }
  if (crc32(file.substr(0, size - 4)) != getU32(file.data() + size - 4)) return HeaderStatus::BadCrc;
  if (version > kVersion) return HeaderStatus::FutureVersion;
  if (version == 0 || size != kHeaderSize) return HeaderStatus::BadCrc;  // intact but not a v1 header
  out.firstSeq = getU64(file.data() + 8);
  out.createdUnixMs = static_cast<std::int64_t>(getU64(file.data() + 16));
  out.flags = getU32(file.data() + 24);
  return HeaderStatus::Ok;
}

void encodeFrame(std::string& out, std::uint64_t seq, std::string_view payload) {
  const std::size_t start = out.size();
  putU32(out, static_cast<std::uint32_t>(payload.size()));
  putU64(out, seq);
  putU32(out, 0);
  out.append(payload);
  const std::uint32_t c = frameCrc(out.data() + start, payload);
  for (int i = 0; i < 4; ++i) out[start + 12 + static_cast<std::size_t>(i)] = static_cast<char>((c >> (8 * i)) & 0xFF);
}

FrameStatus decodeFrame(std::string_view bytes, Frame& out) {
  if (bytes.size() < kFrameOverhead) return FrameStatus::Truncated;
  const std::uint32_t len = getU32(bytes.data());
  if (len > kMaxPayload) return FrameStatus::Corrupt;
  if (bytes.size() - kFrameOverhead < len) return FrameStatus::Truncated;
  const std::string_view payload = bytes.substr(kFrameOverhead, len);
  if (frameCrc(bytes.data(), payload) != getU32(bytes.data() + 12)) return FrameStatus::Corrupt;
  out.seq = getU64(bytes.data() + 4);
  out.payload = payload;
  out.size = kFrameOverhead + len;
  return FrameStatus::Ok;
}

std::size_t resync(std::string_view bytes, std::size_t from, std::uint64_t afterSeq) {
  if (bytes.size() < kFrameOverhead) return std::string_view::npos;
  for (std::size_t y = from + 1; y + kFrameOverhead <= bytes.size(); ++y) {
    // Cheap plausibility first (length fits, seq moves forward by a sane step), CRC last.
    const std::uint32_t len = getU32(bytes.data() + y);
    if (len > kMaxPayload || len > bytes.size() - y - kFrameOverhead) continue;
    const std::uint64_t seq = getU64(bytes.data() + y + 4);
    if (seq <= afterSeq || seq - afterSeq > kMaxSeqStep) continue;
    Frame f;
    if (decodeFrame(bytes.substr(y), f) == FrameStatus::Ok) return y;
  }
  return std::string_view::npos;
}

SeqRange lostBetween(std::uint64_t before, std::uint64_t after, std::uint64_t ackedSeq) {
  SeqRange r;
  if (after <= before || after - before == 1 || ackedSeq >= after - 1) return r;  // none between, or all acked
  r.first = std::max(before + 1, ackedSeq + 1);
  r.last = after - 1;
  if (r.first > r.last) return SeqRange{};
  return r;
}

ScanResult scan(std::string_view file, std::uint64_t ackedSeq, std::uint64_t nameSeq) {
  ScanResult r;
  r.header = decodeHeader(file, r.hdr);
  if (r.header != HeaderStatus::Ok && r.header != HeaderStatus::BadCrc) return r;
  if (file.size() < kHeaderSize) {
    r.header = HeaderStatus::Short;
    return r;
  }
  std::uint64_t lastSeq = 0;
  if (r.header == HeaderStatus::Ok && r.hdr.firstSeq > 0) lastSeq = r.hdr.firstSeq - 1;
  std::size_t pos = kHeaderSize;
  r.validEnd = pos;
  r.ackEnd = pos;
  while (pos < file.size()) {
    Frame f;
    const FrameStatus st = decodeFrame(file.substr(pos), f);
    if (st == FrameStatus::Ok && f.seq > lastSeq) {
      ++r.records;
      if (r.firstSeq == 0) r.firstSeq = f.seq;
      r.lastSeq = f.seq;
      lastSeq = f.seq;
      pos += f.size;
      r.validEnd = pos;
      if (f.seq <= ackedSeq) {
        ++r.acked;
        r.ackEnd = pos;
      }
      continue;
    }
    const std::size_t next = resync(file, pos, lastSeq);
    if (next == std::string_view::npos) break;  // nothing intact follows: a torn tail
    ++r.corruptFrames;
    if (r.spans.size() < kMaxSpans) r.spans.push_back(CorruptSpan{pos, next});
    // What the stretch cost: the seqs between the intact frames around it. Before the first
    // intact frame of a segment with a damaged header, the file's name says where it started.
    Frame resumed;
    (void)decodeFrame(file.substr(next), resumed);  // intact: resync() checked it
    std::uint64_t before = lastSeq;
    if (before == 0 && nameSeq > 0) before = nameSeq - 1;
    if (before == 0 && r.header != HeaderStatus::Ok) {
      ++r.corruptReadings;  // where the segment started is unknown: at least one
    } else {
      const SeqRange gone = lostBetween(before, resumed.seq, ackedSeq);
      r.corruptReadings += gone.count();
      if (gone.count() > 0 && r.lost.size() < kMaxSpans) r.lost.push_back(gone);
    }
    pos = next;
  }
  r.tailBytes = file.size() - r.validEnd;
  return r;
}

}  // namespace citygate::spool::segment
