// FileSpool: the durable Spool. Records go to append-only segment files (segment.hpp, FORMAT.md)
// in `dir`; a worker thread makes them durable by group commit (sync_worker.hpp). A record is
// handed to readBatch() only once it is durable, so a seq the platform has seen can never be
// lost in a power cut and reused for another reading (FORMAT.md, "When a record is readable").
// With `durable = false` (the young tier of a TieredSpool, on tmpfs) nothing is synced and a
// record is readable as soon as it is appended.
//
// Readers (one per sink, Spool's cursor model): each has its own position, read buffer and ledger of
// batches handed out; the acknowledged position is shared (the lowest every sink has delivered).
// After a restart every reader starts at the acknowledged position.
//
// Memory: an index of segments (not of records) plus one read buffer per reader; recovery reads
// one segment at a time.
//
// Capacity: stats().bytes is what the spool occupies on disk (segment headers, frames, the ack
// file). The cap counts the same bytes minus the acknowledged head of the oldest segment, which
// is deleted as soon as it is fully acknowledged: the disk therefore holds at most max_bytes plus
// less than one segment. DROP_OLDEST deletes the oldest whole segment and counts every
// unacknowledged record in it; records of it that were in flight and are acknowledged later are
// taken off the count again (they did arrive). BLOCK_SOURCES returns Full.
//
// Threading: every method on the executor. append() costs one bounded pwrite() (plus, on
// rotation, creating a file); fsync, the ack file and deletions happen on the worker. The
// readable callback runs on the executor after each group commit that made records readable.
//
// Failure: open() refuses a directory holding a segment or ack file of a newer format version
// (left untouched) and a directory locked by another process. Damaged data never stops it:
// torn tails are cut, damaged frames skipped and counted (corruptRecords), unreadable segments
// renamed to *.corrupt and counted.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "spool/names.hpp"
#include "spool/segment.hpp"
#include "spool/sync_worker.hpp"

namespace spdlog {
class logger;
}

namespace citygate::spool {

class FileHandle;
class SyncWorker;

struct FileSpoolOptions {
  std::string dir;
  std::uint64_t maxBytes = 256ULL << 20;
  pb::SpoolConfig::WhenFull whenFull = pb::SpoolConfig::DROP_OLDEST;
  std::uint64_t segmentBytes = 4ULL << 20;  // clamped to [4096, 64 MiB] and to maxBytes / 4
  std::chrono::milliseconds durability{100};
  std::chrono::milliseconds ackInterval{1000};  // at most one ack-file write per interval...
  std::uint64_t ackEveryRecords = 4096;         // ...unless this many were acknowledged since
  // false: nothing is ever synced and a record is readable as soon as it is appended (a spool in
  // RAM, on tmpfs: it survives a crash of the process, never a power cut; TieredSpool's young tier).
  bool durable = true;
};

class FileSpool final : public Spool {
 public:
  static constexpr std::uint64_t kMaxSegmentBytes = 64ULL << 20;
  static constexpr std::uint64_t kMaxRejectedBytes = 1ULL << 20;
  static constexpr const char* kRejectedFile = "rejected.cgs";

  enum class OpenFailure : std::uint8_t {
    Refused,      // a segment or ack file of a newer format, or another process holds the lock
    Unavailable,  // the directory cannot be used (read-only, no permission, full, I/O error)
  };

  // Recovers `dir` (created if missing): blocking, before the daemon reports READY. On failure
  // `*failure` (when given) says which kind it was.
  static Result<std::unique_ptr<FileSpool>> open(boost::asio::any_io_executor executor, FileSpoolOptions options,
                                                 std::shared_ptr<spdlog::logger> log, OpenFailure* failure = nullptr);

  // The next seq the spool in `dir` implies (what recovery would find: the newest record, an
  // empty newest segment, the ack file, an unreadable newest segment's bound; 0: empty), read
  // without creating, changing or locking anything, so it works on a read-only directory.
  static Result<std::uint64_t> probeNextSeq(const std::string& dir);
  ~FileSpool() override;
  FileSpool(const FileSpool&) = delete;
  FileSpool& operator=(const FileSpool&) = delete;

  AppendResult append(std::uint64_t seq, std::string_view record) override;
  ReaderId addReader() override;
  std::size_t readers() const override { return readers_.size(); }
  ReadResult readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) override;
  void acknowledge(std::uint64_t lastSeq) override;
  void rewindReader(ReaderId reader, std::uint64_t afterSeq) override;
  // Appends the records to `rejected.cgs` in the directory (segment format, mode 0600, at most
  // kMaxRejectedBytes; FORMAT.md) and syncs it, so they survive their acknowledgement.
  SetAsideResult setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) override;
  // Durable records not yet handed out (records still waiting for their group commit are not
  // readable yet and not counted here; stats().readings counts them).
  std::uint64_t unreadBy(ReaderId reader) const override;
  // Records not yet handed out to `reader`, durable or not.
  std::uint64_t pendingFor(ReaderId reader) const;
  SpoolStats stats() const override;
  std::uint64_t recoveredNextSeq() const override { return recoveredNextSeq_; }
  void setReadableCallback(std::function<void()> cb) override { readable_ = std::move(cb); }
  // Final group commit, ack file, pending deletions; joins the worker. Appends then fail.
  void close() override;

  // Every appended record is durable (tests wait for this instead of sleeping).
  bool settled() const { return !options_.durable || durableOrd_ == endOrd_; }
  // Records not yet acknowledged, and the bytes the cap charges for (cheaper than stats()).
  std::uint64_t held() const { return endOrd_ > ack_.ord ? endOrd_ - ack_.ord : 0; }
  std::uint64_t heldBytes() const { return chargedBytes(); }
  // The highest seq appended (0: none).
  std::uint64_t lastSeq() const { return segs_.empty() ? 0 : segs_.back().lastSeq; }
  // Ask the worker to commit now rather than at the end of the durability window.
  void syncNow();
  // Stop the way kill -9 would: no final sync, no ack-file write (tests).
  void abandon();
  std::uint64_t segmentBytes() const { return segmentBytes_; }
  std::size_t segmentCount() const { return segs_.size(); }

 private:
  struct Segment {
    std::uint64_t name = 0;  // the first seq in its file name
    std::string path;
    std::uint64_t size = 0;  // bytes in the file, header included
    std::uint64_t firstOrd = 0;
    std::uint64_t count = 0;  // intact records
    std::uint64_t firstSeq = 0;
    std::uint64_t lastSeq = 0;
    std::vector<segment::CorruptSpan> spans;
    std::shared_ptr<FileHandle> fd;
    std::uint64_t endOrd() const { return firstOrd + count; }
  };
  // A place in the spool: a segment (by name), a byte offset in it and the ordinal of the record
  // there. Ordinals number records across segments and restarts of this process.
  struct Pos {
    std::uint64_t seg = kNoSegment;
    std::uint64_t off = 0;
    std::uint64_t ord = 0;
    std::uint64_t prevSeq = 0;  // seq of the record just before (frames after it must be higher)
  };
  static constexpr std::uint64_t kNoSegment = ~0ULL;
  struct Handed {  // one readBatch(), until acknowledged
    std::uint64_t lastSeq;
    Pos end;
  };
  struct Range {
    std::uint64_t lo;
    std::uint64_t hi;
  };
  struct ReadBuffer {
    std::uint64_t seg = ~0ULL;
    std::uint64_t off = 0;
    std::string data;
  };
  // One read cursor (a sink's): where it reads, its own read buffer (two readers far apart do not
  // evict each other's), its batches until acknowledged.
  struct Reader {
    Pos read;
    ReadBuffer buf;
    std::deque<Handed> ledger;
    std::uint64_t maxHandedOrd = 0;
  };
  enum class Step : std::uint8_t { Record, Skipped, End };

  FileSpool(boost::asio::any_io_executor executor, FileSpoolOptions options, std::shared_ptr<spdlog::logger> log);
  Status recover();
  Status openAckFile(std::uint64_t& generation);
  Status prepareAckFile();
  void startWorker(std::uint64_t ackGeneration);
  void onSynced(const SyncWorker::Result& r);

  std::size_t indexOf(const Segment& s) const;
  Segment* find(std::uint64_t name);
  const Segment* find(std::uint64_t name) const;
  static Pos startOf(const Segment& s) {
    return Pos{s.name, segment::kHeaderSize, s.firstOrd, s.firstSeq > 0 ? s.firstSeq - 1 : 0};
  }
  static Pos endOf(const Segment& s, std::uint64_t prevSeq) {
    return Pos{s.name, s.size, s.endOrd(), s.lastSeq > 0 ? s.lastSeq : prevSeq};
  }
  void resolve(Pos& p) const;
  bool openForRead(Segment& s);
  Step readFrame(Segment& s, std::uint64_t& off, std::uint64_t afterSeq, segment::Frame& f, ReadBuffer& rb,
                 std::size_t chunk);
  bool fill(Segment& s, std::uint64_t off, std::size_t want, ReadBuffer& rb, std::size_t chunk);
  Pos locate(std::uint64_t seq, Pos from);
  void updateOldest();
  // ack_ and every reader's position (fixed up when segments go).
  std::vector<Pos*> positions();
  // Read buffers holding segment `seg` (deleted, or cut after a failed write) are stale.
  void forgetBuffers(std::uint64_t seg);

  std::uint64_t chargedBytes() const;
  bool dropOldest();
  AppendResult rotate(std::uint64_t seq);
  void deleteSegmentFront();
  void applyAck(const Pos& target, std::uint64_t seq);
  // lastError; logged when `log` and new (append errors are logged by the caller, rate-limited).
  void setError(std::string what, bool log = true);
  bool makeRoom();
  void sampleWear();

  boost::asio::any_io_executor executor_;
  FileSpoolOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::uint64_t segmentBytes_;
  std::shared_ptr<FileHandle> dirFd_;
  std::shared_ptr<FileHandle> ackFd_;
  std::shared_ptr<FileHandle> lockFd_;
  std::unique_ptr<SyncWorker> worker_;
  std::shared_ptr<int> alive_;  // posted completions check it (the spool may be gone)
  std::chrono::steady_clock::time_point opened_;

  std::deque<Segment> segs_;
  bool activeOpen_ = false;  // segs_.back() takes appends
  std::uint64_t bytes_ = 0;  // segment files + the ack file

  Pos ack_;
  std::vector<Reader> readers_{1};
  std::uint64_t ackedSeq_ = 0;         // highest seq acknowledged
  std::uint64_t settledSeq_ = 0;       // every seq <= this is acknowledged or dropped (the ack file)
  std::uint64_t ackedSinceWrite_ = 0;  // records acknowledged since the last ack-file request
  std::uint64_t endOrd_ = 0;
  std::uint64_t durableOrd_ = 0;
  // Records below this ordinal may be handed out: the durable ones, or all when !options_.durable.
  std::uint64_t readableOrd() const { return options_.durable ? durableOrd_ : endOrd_; }
  std::deque<Range> droppedInFlight_;
  ReadBuffer statBuf_;
  std::uint64_t oldestSeq_ = 0;

  std::uint64_t recoveredNextSeq_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t replayed_ = 0;
  std::uint64_t bytesWritten_ = 0;
  // (time, bytesWritten) once an hour, for the per-day figure.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> wear_;
  std::uint64_t corrupt_ = 0;          // damaged stretches, headers and files
  std::uint64_t corruptReadings_ = 0;  // readings they cost (by seq range)
  bool blocked_ = false;
  bool closed_ = false;
  bool refused_ = false;  // recover() failed for a reason that is not I/O
  int lastErrno_ = 0;     // of the last failed write
  std::uint64_t unlinksSubmitted_ = 0;
  std::optional<std::uint64_t> roomAfterUnlinks_;  // makeRoom() waits for this many unlinks
  std::optional<std::chrono::steady_clock::time_point> lastRoomLine_;
  std::string lastError_;
  std::function<void()> readable_;
  std::string scratch_;
};

}  // namespace citygate::spool
