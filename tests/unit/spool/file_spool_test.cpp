// The file spool: the shared contract suite, then what only a file spool has (restarts after a
// crash or a power cut, segment rotation and deletion, the byte cap with headers, locking).
#include "spool/file_spool.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

#include "spool/file_spool_support.hpp"
#include "spool/segment.hpp"
#include "spool/spool_contract.hpp"
#include "spool/sync_worker.hpp"

using namespace file_spool_support;
using spool_contract::drain;
using spool_contract::range;
using spool_contract::readInto;
using spool_contract::record;

namespace {

struct FileFactory {
  static constexpr bool kDurable = true;
  static std::string& dir() {
    static std::string d;
    return d;
  }
  static void reset() {
    if (!dir().empty()) std::filesystem::remove_all(dir());
    dir() = tempDir("contract");
  }
  static std::unique_ptr<Spool> make(std::uint64_t maxBytes, pb::SpoolConfig::WhenFull w) {
    return openOk(options(dir(), maxBytes, w));
  }
  static void settle(Spool& s) { file_spool_support::settle(dynamic_cast<FileSpool&>(s)); }
  // The acknowledged head of the oldest segment stays on disk until the segment is fully
  // acknowledged: at most one segment beyond the cap.
  static std::uint64_t slack() { return 16 * 1024; }
  static std::unique_ptr<Spool> restart(std::unique_ptr<Spool> s, std::uint64_t maxBytes, pb::SpoolConfig::WhenFull w,
                                        bool crash) {
    if (crash) {
      dynamic_cast<FileSpool&>(*s).abandon();
    } else {
      s->close();
    }
    s.reset();
    return make(maxBytes, w);
  }
};

std::string onlySegment(const std::string& dir) {
  std::string found;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".cgs") {
      REQUIRE(found.empty());
      found = e.path().string();
    }
  }
  REQUIRE(!found.empty());
  return found;
}

}  // namespace

CITYGATE_SPOOL_CONTRACT(FileFactory)

TEST_CASE("file spool: a record is readable only once it is durable, and the callback says when") {
  const std::string dir = tempDir();
  auto o = options(dir);
  o.durability = std::chrono::seconds(60);  // nothing commits unless asked
  auto s = openOk(o);
  int calls = 0;
  s->setReadableCallback([&] { ++calls; });
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  ioc().restart();
  ioc().poll();
  CHECK(s->unread() == 0);
  CHECK(s->stats().readings == 10);
  std::string out;
  CHECK(readInto(*s, 100, 1 << 20, out).count == 0);
  s->syncNow();
  runUntil([&] { return calls > 0; });
  CHECK(s->unread() == 10);
  CHECK(drain(*s) == range(1, 10));
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: kill -9 between write and fsync loses nothing that was written") {
  const std::string dir = tempDir();
  auto o = options(dir);
  o.durability = std::chrono::seconds(60);
  auto s = openOk(o);
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  for (std::uint64_t i = 11; i <= 20; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  CHECK(drain(*s) == range(1, 10));  // 11..20 are written, not yet synced: not handed out
  s->abandon();                      // the process dies; the page cache survives
  s.reset();
  s = openOk(o);
  CHECK(s->recoveredNextSeq() == 21);
  CHECK(drain(*s) == range(1, 20));
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: a power cut between write and fsync reuses only seqs never handed out") {
  const std::string dir = tempDir();
  auto o = options(dir);
  o.durability = std::chrono::seconds(60);
  auto s = openOk(o);
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  const std::string seg = onlySegment(dir);
  const auto durableSize = std::filesystem::file_size(seg);
  for (std::uint64_t i = 11; i <= 20; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  const auto handed = drain(*s);
  CHECK(handed == range(1, 10));
  s->abandon();
  s.reset();
  // What the power cut leaves: the synced part, then a page that was only partly written.
  std::string bytes = slurp(seg);
  REQUIRE(bytes.size() > durableSize + 40);
  bytes.resize(durableSize + 40);
  for (std::size_t i = durableSize + 20; i < bytes.size(); ++i) bytes[i] = '\0';
  spit(seg, bytes);
  s = openOk(o);
  CHECK(s->recoveredNextSeq() == 11);  // 11 was never handed out: reusing it is safe
  CHECK(s->stats().corruptRecords == 0);
  CHECK(std::filesystem::file_size(seg) == durableSize);  // the torn tail is cut
  CHECK(drain(*s) == range(1, 10));
  REQUIRE(s->append(11, record(11)) == AppendResult::Ok);
  settle(*s);
  CHECK(drain(*s) == range(11, 11));
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: segments rotate, and a segment is deleted only when fully acknowledged") {
  const std::string dir = tempDir();
  auto o = options(dir, 1 << 20);
  o.segmentBytes = 4096;
  auto s = openOk(o);
  const std::string rec = record(1, 200);
  const std::uint64_t perSegment = (4096 - segment::kHeaderSize) / segment::frameSize(rec.size());
  const std::uint64_t n = perSegment * 5;
  for (std::uint64_t i = 1; i <= n; ++i) REQUIRE(s->append(i, record(i, 200)) == AppendResult::Ok);
  settle(*s);
  CHECK(countFiles(dir, ".cgs") == 5);
  CHECK(s->segmentCount() == 5);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".cgs") CHECK(e.file_size() <= 4096);
  }
  std::vector<ReadResult> batches;
  CHECK(drain(*s, 7, &batches) == range(1, n));
  s->acknowledge(perSegment - 1);  // one record short of the first segment
  settle(*s);
  CHECK(countFiles(dir, ".cgs") == 5);
  s->acknowledge(perSegment * 3);
  s->syncNow();
  runUntil([&] { return countFiles(dir, ".cgs") == 2; });
  CHECK(s->stats().oldestSeq == perSegment * 3 + 1);
  s->acknowledge(n);  // everything: the newest segment stays (it carries the seq)
  s->syncNow();
  runUntil([&] { return countFiles(dir, ".cgs") == 1; });
  CHECK(s->stats().readings == 0);
  REQUIRE(s->append(n + 1, record(n + 1, 200)) == AppendResult::Ok);  // rotates: the old newest goes
  s->syncNow();
  runUntil([&] { return countFiles(dir, ".cgs") == 1 && s->settled(); });
  CHECK(drain(*s) == range(n + 1, n + 1));
  s->close();
  s.reset();
  s = openOk(o);
  CHECK(s->recoveredNextSeq() == n + 2);
  CHECK(drain(*s) == range(n + 1, n + 1));
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: max_bytes counts headers and the ack file, the disk holds no more") {
  for (auto policy : {pb::SpoolConfig::DROP_OLDEST, pb::SpoolConfig::BLOCK_SOURCES}) {
    CAPTURE(policy);
    const std::string dir = tempDir();
    const std::uint64_t cap = 64 * 1024;
    auto s = openOk(options(dir, cap, policy));
    CHECK(s->segmentBytes() == cap / 4);
    std::uint64_t seq = 0;
    for (int i = 0; i < 3000; ++i) {
      const auto r = s->append(seq + 1, record(seq + 1, 100 + static_cast<std::size_t>(i % 37)));
      if (r == AppendResult::Full) break;
      REQUIRE((r == AppendResult::Ok || r == AppendResult::OkDroppedOldest));
      ++seq;
    }
    settle(*s);
    s->syncNow();
    const auto st = s->stats();
    runUntil([&] { return diskBytes(dir, ".cgs") + ack::kFileSize == st.bytes; });
    CHECK(st.bytes <= cap);
    CHECK(st.bytes > cap - cap / 4 - 512);  // it does fill up
    CHECK(std::filesystem::file_size(dir + "/spool.ack") == ack::kFileSize);
    if (policy == pb::SpoolConfig::DROP_OLDEST) {
      CHECK(seq == 3000);
      CHECK(st.dropped + st.readings == seq);
      CHECK(drain(*s) == range(st.dropped + 1, seq));
    } else {
      CHECK(st.blocked);
      CHECK(st.dropped == 0);
      CHECK(drain(*s) == range(1, seq));
    }
    s->close();
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("file spool: replay after a restart is bounded by the ack interval") {
  const std::string dir = tempDir();
  auto o = options(dir);
  auto s = openOk(o);
  for (std::uint64_t i = 1; i <= 100; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  CHECK(drain(*s, 10).size() == 100);
  s->acknowledge(90);
  // The ack reaches the disk within the ack interval (20 ms here); the crash comes after it.
  s->syncNow();
  runUntil([&] { return settledOnDisk(dir) == 90; });
  s->abandon();
  s.reset();
  s = openOk(o);
  CHECK(drain(*s) == range(91, 100));
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: a torn ack slot falls back to the other one") {
  const std::string dir = tempDir();
  auto o = options(dir);
  {
    auto s = openOk(o);
    for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
    settle(*s);
    drain(*s, 1);
    s->acknowledge(3);
    s->syncNow();
    runUntil([&] { return s->settled(); });
    s->close();  // writes the slot again? only if it changed; make a second generation:
  }
  {
    auto s = openOk(o);
    drain(*s, 1);
    s->acknowledge(6);
    s->close();
  }
  // Two generations now sit in the two slots: tear the newer one.
  std::string ackFile = slurp(dir + "/spool.ack");
  ack::Slot a;
  ack::Slot b;
  REQUIRE((ack::decodeSlot(std::string_view(ackFile).substr(0, 32), a) == ack::SlotStatus::Ok));
  REQUIRE((ack::decodeSlot(std::string_view(ackFile).substr(512, 32), b) == ack::SlotStatus::Ok));
  const std::size_t newer = a.generation > b.generation ? 0 : 512;
  CHECK((newer == 0 ? a : b).settledSeq == 6);
  CHECK((newer == 0 ? b : a).settledSeq == 3);
  ackFile[newer + 20] ^= 0x40;
  spit(dir + "/spool.ack", ackFile);
  auto s = openOk(o);
  CHECK(drain(*s) == range(4, 10));  // duplicates 4..6, no gap
  CHECK(s->recoveredNextSeq() == 11);
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: a second process on the same directory is refused") {
  const std::string dir = tempDir();
  auto s = openOk(options(dir));
  auto second = FileSpool::open(ioc().get_executor(), options(dir), quietLog());
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().find("in use") != std::string::npos);
  s->close();
  s.reset();
  auto third = FileSpool::open(ioc().get_executor(), options(dir), quietLog());
  CHECK(third.ok());
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: damage that appears after start is skipped and counted when read") {
  const std::string dir = tempDir();
  auto o = options(dir);
  auto s = openOk(o);
  for (std::uint64_t i = 1; i <= 20; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  // Flip a payload byte of record 5 on disk (the medium going bad under a running daemon).
  const std::string seg = onlySegment(dir);
  std::string bytes = slurp(seg);
  const std::size_t frame = segment::frameSize(record(1).size());
  bytes[segment::kHeaderSize + 4 * frame + segment::kFrameOverhead + 3] ^= 0x01;
  spit(seg, bytes);
  CHECK(drain(*s, 3) == std::vector<std::uint64_t>{1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20});
  CHECK(s->stats().corruptRecords == 1);
  s->rewind();
  drain(*s);
  CHECK(s->stats().corruptRecords == 1);  // counted once, however often it is read
  s->close();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: bytes_written counts every byte put on the disk") {
  const std::string dir = tempDir();
  auto s = openOk(options(dir));
  const std::uint64_t before = s->stats().bytesWritten;
  CHECK(before == 0);
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  const std::uint64_t expected = segment::kHeaderSize + 10 * segment::frameSize(record(1).size());
  CHECK(s->stats().bytesWritten == expected);
  settle(*s);
  drain(*s);
  s->acknowledge(10);
  s->close();
  CHECK(s->stats().bytesWritten == expected + ack::kSlotSize);
  std::filesystem::remove_all(dir);
}

TEST_CASE("file spool: during a fast replay the ack file follows every ackEveryRecords records") {
  const std::string dir = tempDir();
  auto o = options(dir);
  o.ackInterval = std::chrono::hours(1);  // time alone would never write it here
  o.ackEveryRecords = 100;
  auto s = openOk(o);
  for (std::uint64_t i = 1; i <= 1000; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  std::vector<ReadResult> batches;
  CHECK(drain(*s, 50, &batches) == range(1, 1000));
  s->acknowledge(batches[0].lastSeq);
  runUntil([&] { return settledOnDisk(dir) == 50; });                       // the first write is never held back
  for (std::size_t b = 1; b < 10; ++b) s->acknowledge(batches[b].lastSeq);  // up to 500
  runUntil([&] { return settledOnDisk(dir) >= 400; });
  s->abandon();
  s.reset();
  s = openOk(o);
  const auto seqs = drain(*s);
  REQUIRE(!seqs.empty());
  CHECK(seqs.front() >= 401);  // at most ackEveryRecords duplicates
  CHECK(seqs == range(seqs.front(), 1000));
  s->close();
  std::filesystem::remove_all(dir);
}

// ---- issue 12 ----------------------------------------------------------------------------------

TEST_CASE("file spool: a rejected batch is set aside in rejected.cgs (segment format, 0600, bounded)") {
  const std::string dir = tempDir();
  auto s = openOk(options(dir));
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  CHECK(drain(*s, 4).size() == 10);
  const SetAsideResult r = s->setAside(5, 8);
  CHECK(r.kept == 4);
  CHECK(r.where == dir + "/rejected.cgs");
  s->acknowledge(10);
  struct stat st {};
  REQUIRE(::stat((dir + "/rejected.cgs").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const segment::ScanResult scanned = segment::scan(slurp(dir + "/rejected.cgs"));
  CHECK((scanned.header == segment::HeaderStatus::Ok));
  CHECK(scanned.records == 4);
  CHECK(scanned.firstSeq == 5);
  CHECK(scanned.lastSeq == 8);
  CHECK(scanned.tailBytes == 0);
  // Recovery ignores it; the next rejected batch is appended; the file is bounded.
  s->close();
  s.reset();
  s = openOk(options(dir));
  CHECK(s->stats().readings == 0);
  for (std::uint64_t i = 11; i <= 12; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  settle(*s);
  drain(*s);
  CHECK(s->setAside(11, 12).kept == 2);
  CHECK(segment::scan(slurp(dir + "/rejected.cgs")).records == 6);
  s->close();
  s.reset();
  std::filesystem::resize_file(dir + "/rejected.cgs", FileSpool::kMaxRejectedBytes - 10);
  s = openOk(options(dir));
  REQUIRE(s->append(14, record(14)) == AppendResult::Ok);
  settle(*s);
  drain(*s);
  const SetAsideResult full = s->setAside(14, 14);
  CHECK(full.kept == 0);
  CHECK(full.why.find("already holds") != std::string::npos);
  s->close();
  std::filesystem::remove_all(dir);
}

namespace {

// A small tmpfs, so that the file system fills up before max_bytes (root only).
struct SmallFs {
  std::string dir;
  bool mounted = false;
  explicit SmallFs(const char* size) : dir(tempDir("smallfs")) {
    if (::geteuid() != 0) return;
    const std::string cmd = std::string("mount -t tmpfs -o size=") + size + " citygate-test " + dir;
    mounted = std::system(cmd.c_str()) == 0;
  }
  ~SmallFs() {
    if (mounted) (void)std::system(("umount " + dir).c_str());
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

TEST_CASE("file spool: a file system full before max_bytes: DROP_OLDEST drops the oldest segment, not the sources") {
  SmallFs fs("128k");
  if (!fs.mounted) {
    MESSAGE("skipped: mounting a tmpfs needs root");
    return;
  }
  auto o = options(fs.dir + "/spool", 64 << 20, pb::SpoolConfig::DROP_OLDEST);  // far above the disk
  o.segmentBytes = 16 * 1024;
  auto s = openOk(o);
  int calls = 0;
  s->setReadableCallback([&] { ++calls; });
  std::uint64_t seq = 0;
  AppendResult r = AppendResult::Ok;
  while (seq < 100000) {
    r = s->append(seq + 1, record(seq + 1, 200));
    if (r != AppendResult::Ok) break;
    ++seq;
  }
  REQUIRE(r == AppendResult::Full);  // ENOSPC: no room now, and room is being made...
  CHECK(s->stats().lastError.find("No space left on device") != std::string::npos);
  CHECK(s->stats().dropped > 0);  // ...and the oldest segment went for it
  const std::uint64_t dropped = s->stats().dropped;
  // Once its deletion is done the spool says so, and the same record goes in.
  runUntil([&] { return calls > 0 && s->append(seq + 1, record(seq + 1, 200)) == AppendResult::Ok; });
  ++seq;
  settle(*s);
  const auto got = drain(*s);
  REQUIRE(!got.empty());
  CHECK(got == range(dropped + 1, seq));  // the gap is exactly `dropped`, at the oldest end
  s->close();
}

TEST_CASE("file spool: a file system full before max_bytes: BLOCK_SOURCES drops nothing") {
  SmallFs fs("128k");
  if (!fs.mounted) {
    MESSAGE("skipped: mounting a tmpfs needs root");
    return;
  }
  auto s = openOk(options(fs.dir + "/spool", 64 << 20, pb::SpoolConfig::BLOCK_SOURCES));
  std::uint64_t seq = 0;
  while (s->append(seq + 1, record(seq + 1, 200)) == AppendResult::Ok) ++seq;
  CHECK(s->stats().dropped == 0);
  CHECK(s->append(seq + 1, record(seq + 1, 200)) == AppendResult::Error);
  settle(*s);
  CHECK(drain(*s) == range(1, seq));
  s->close();
}

// Issue 12: SyncWorker took its "last ack write" for the steady clock's epoch (the boot), so on a
// machine booted less than ackInterval ago the first write waited. Run the suite as on a machine
// booted a minute ago: unshare --time --monotonic=-N --boottime=-N (N = uptime - 60).
TEST_CASE("file spool: the first ack-file write is never held back, however recently the machine booted") {
  const std::string dir = tempDir();
  auto o = options(dir);
  o.ackInterval = std::chrono::hours(24);
  auto s = openOk(o);
  REQUIRE(s->append(1, record(1)) == AppendResult::Ok);
  settle(*s);
  drain(*s);
  s->acknowledge(1);
  runUntil([&] { return settledOnDisk(dir) == 1; }, std::chrono::seconds(5));
  s->close();
  std::filesystem::remove_all(dir);
}
