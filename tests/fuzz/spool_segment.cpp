// Fuzz target: a spool segment file as the disk may hand it back after a crash, a power cut or a
// failing medium. Two paths:
//  1. the pure reader (segment::scan and friends), with invariants checked: whatever the bytes,
//     the result stays inside the file, and scanning what recovery keeps finds the same records
//     with nothing left to cut (recovery is idempotent);
//  2. the daemon's own recovery: the bytes become the newest segment of a spool directory, which
//     FileSpool::open() recovers, then every record is read, acknowledged, and one more appended.
// Neither may crash, hang or read out of bounds.
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "spool/file_spool.hpp"
#include "spool/segment.hpp"

using namespace citygate::spool;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void pureReader(std::string_view bytes, std::uint64_t ackedSeq) {
  segment::Header h;
  (void)segment::decodeHeader(bytes, h);
  for (std::size_t off = 0; off < bytes.size() && off < 256; ++off) {
    segment::Frame f;
    if (segment::decodeFrame(bytes.substr(off), f) == segment::FrameStatus::Ok) {
      check(f.size == segment::kFrameOverhead + f.payload.size() && f.size <= bytes.size() - off);
    }
  }
  const segment::ScanResult r = segment::scan(bytes, ackedSeq);
  if (r.header != segment::HeaderStatus::Ok && r.header != segment::HeaderStatus::BadCrc) {
    check(r.records == 0);
    return;
  }
  check(r.validEnd >= segment::kHeaderSize && r.validEnd <= bytes.size());
  check(r.tailBytes == bytes.size() - r.validEnd);
  check(r.acked <= r.records && r.ackEnd <= r.validEnd);
  check(r.records == 0 || (r.firstSeq <= r.lastSeq && r.firstSeq > 0));
  std::uint64_t prev = 0;
  for (const auto& s : r.spans) {
    check(s.offset >= prev && s.offset < s.resume && s.resume < r.validEnd);
    prev = s.resume;
  }
  const segment::ScanResult again = segment::scan(bytes.substr(0, r.validEnd), ackedSeq);
  check(again.records == r.records && again.lastSeq == r.lastSeq && again.tailBytes == 0);
  check(again.corruptFrames == r.corruptFrames && again.validEnd == r.validEnd);
  check(again.corruptReadings == r.corruptReadings && r.lost.size() <= r.corruptFrames);
  for (const auto& g : r.lost) check(g.count() > 0 && g.first > ackedSeq && g.last < r.lastSeq);
}

void daemonRecovery(std::string_view bytes) {
  static const std::string dir = [] {
    // tmpfs when there is one: fsync is free there, and the fuzzer runs ~50x faster.
    std::string t = std::filesystem::is_directory("/dev/shm") ? "/dev/shm/citygate-fuzz-spool-XXXXXX"
                                                              : "/tmp/citygate-fuzz-spool-XXXXXX";
    check(::mkdtemp(t.data()) != nullptr);
    return t;
  }();
  static auto log = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) std::filesystem::remove(e.path(), ec);
  { std::ofstream(dir + "/seg-00000000000000000001.cgs", std::ios::binary) << bytes; }
  boost::asio::io_context ioc;
  FileSpoolOptions o;
  o.dir = dir;
  o.maxBytes = 1 << 20;
  o.segmentBytes = 64 * 1024;
  o.durability = std::chrono::milliseconds(1);
  auto opened = FileSpool::open(ioc.get_executor(), o, log);
  if (!opened) return;  // refused (a newer version): a clear error, not a crash
  auto& s = *opened.value();
  // Every record handed out has a higher seq than the one before.
  struct SeqOrder final : citygate::core::RecordVisitor {
    void record(std::uint64_t seq, std::string_view /*record*/) override {
      ok = ok && seq > last;
      last = seq;
      ++count;
    }
    std::uint64_t last = 0;
    std::uint32_t count = 0;
    bool ok = true;
  };
  const std::uint64_t next = s.recoveredNextSeq();
  std::uint64_t last = 0;
  for (int i = 0; i < 100000; ++i) {
    SeqOrder order;
    const ReadResult r = s.readBatch(0, 64, 1 << 20, order);
    check(order.ok && order.count == r.count);
    if (r.count == 0) break;
    check(r.firstSeq > last && r.lastSeq >= r.firstSeq);
    check(next == 0 || r.lastSeq < next);
    last = r.lastSeq;
    s.acknowledge(r.lastSeq);
  }
  check(s.stats().readings == 0 || s.stats().readings == s.unread());
  if (next > 0 && next < (1ULL << 62)) check(s.append(next, "x") == AppendResult::Ok);
  s.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::uint64_t acked = 0;
  if (size >= 1) acked = data[size - 1] % 8;  // a small ack bound, to exercise the acked split
  pureReader(bytes, acked);
  pureReader(bytes, ~0ULL);
  daemonRecovery(bytes);
  return 0;
}
