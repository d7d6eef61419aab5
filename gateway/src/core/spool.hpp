// Spool: the durable FIFO between the normaliser and the sink. Every reading enters it with its
// seq; a reading leaves it only when the batch that carried it was acknowledged.
// The interface is core's (the pipeline drives it, like Sink); spool/ implements it (FileSpool,
// MemorySpool), so core never includes spool/.
//
// Threading: every method is called on the executor. Implementations may use workers of their
// own (the file spool syncs on one) but never block the caller beyond a bounded write().
//
// Records, not payloads: the spool stores each record (a serialized Reading) with its seq and hands
// the records out to a RecordVisitor; each sink frames its own payload from them (core/sink.hpp,
// core/wire.hpp). The spool knows no batch format.
//
// Cursor model: one read cursor per reader (a reader is one sink; reader 0 always exists, more are
// added with addReader() before the first read). For each reader the records are
// [acked | in flight | unread]: readBatch(reader) hands out that reader's unread records and moves
// its cursor; rewindReader(reader, afterSeq) moves it back to the first record above afterSeq
// (after that sink lost its link). acknowledge(seq) deletes every record up to seq: the caller
// (core's SinkFanout) passes the lowest seq every reader has delivered, so a record leaves the
// spool only when every sink has it. A reader that does not read (its sink is down) holds records
// in the spool but never stops another reader; when the spool fills, its policy (DROP_OLDEST,
// BLOCK_SOURCES) applies as with one reader, and a dropped record is skipped by every cursor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "citygate/v1/config.pb.h"
#include "citygate/v1/status.pb.h"

namespace citygate::core {

namespace pb = citygate::v1;

enum class AppendResult : std::uint8_t {
  Ok,
  OkDroppedOldest,  // stored; older records were dropped (DROP_OLDEST) and counted
  Full,             // no room (BLOCK_SOURCES at the cap, or DROP_OLDEST making room on a full disk):
                    // not stored, the caller keeps the record; the readable callback says when
  Error,            // I/O error: not stored; stats().lastError says why (retry later)
  Refused,          // this record can never be stored (too large, seq out of order): do not retry
};

struct ReadResult {
  std::uint32_t count = 0;
  std::uint64_t firstSeq = 0;
  std::uint64_t lastSeq = 0;
};

struct SpoolStats {
  std::uint64_t bytes = 0;               // on disk (or in memory), headers included
  std::uint64_t readings = 0;            // records not yet acknowledged
  std::uint64_t unread = 0;              // records not yet handed out (to the reader furthest behind)
  std::uint64_t oldestSeq = 0;           // 0 when empty
  std::uint64_t dropped = 0;             // by DROP_OLDEST, since start
  std::uint64_t replayed = 0;            // records handed out again after a rewind or a restart
  std::uint64_t bytesWritten = 0;        // since start
  std::uint64_t bytesWrittenPerDay = 0;  // over the last 24 h (extrapolated while younger)
  std::uint64_t notStored = 0;           // accepted, then lost other than by DROP_OLDEST (FallbackSpool)
  std::uint64_t corruptRecords = 0;      // damage found: stretches of records, headers, whole files
  std::uint64_t corruptReadings = 0;     // readings lost to that damage, by seq range (FORMAT.md)
  std::uint64_t maxBytes = 0;
  bool blocked = false;
  // The durable spool could not be opened: a bounded memory buffer stands in (FallbackSpool).
  bool unavailable = false;
  // ACK_DRIVEN (TieredSpool): readings only in RAM, readings moved to the storage since start,
  // and whether new readings are synced before they are published (the broker was slow or away).
  bool ackDriven = false;
  std::uint64_t ramReadings = 0;
  std::uint64_t movedToStorage = 0;
  bool syncing = false;
  std::string lastError;
};

// What setAside() did with a rejected batch.
struct SetAsideResult {
  std::uint64_t kept = 0;  // records written where `where` says
  std::string where;       // e.g. the file
  std::string why;         // when none was kept
};

// Receives the records a read hands out, oldest first. `record` is valid for the call only.
class RecordVisitor {
 public:
  virtual void record(std::uint64_t seq, std::string_view record) = 0;

 protected:
  ~RecordVisitor() = default;
};

using ReaderId = std::uint32_t;

class Spool {
 public:
  virtual ~Spool() = default;

  virtual AppendResult append(std::uint64_t seq, std::string_view record) = 0;

  // A new read cursor at the oldest unacknowledged record; call before the first read. Reader 0
  // exists from the start.
  virtual ReaderId addReader() = 0;
  // The number of readers (1 + the addReader() calls).
  virtual std::size_t readers() const = 0;

  // Hands `reader`'s next unread records to `to`, oldest first: up to maxRecords, and at most
  // about maxBytes of records (always at least one when any is unread).
  virtual ReadResult readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) = 0;

  // Every reader has delivered every record with seq <= lastSeq: they may go.
  virtual void acknowledge(std::uint64_t lastSeq) = 0;

  // `reader` reads again from the first unacknowledged record above afterSeq (0: the oldest).
  virtual void rewindReader(ReaderId reader, std::uint64_t afterSeq) = 0;
  // Every reader reads again from the oldest unacknowledged record.
  void rewind() {
    for (std::size_t r = 0; r < readers(); ++r) rewindReader(static_cast<ReaderId>(r), 0);
  }

  // Keeps the unacknowledged records firstSeq..lastSeq (a batch a sink rejected: the dead letters)
  // where a person can look at them, outside the FIFO; the caller acknowledges them in their turn
  // as usual.
  virtual SetAsideResult setAside(std::uint64_t /*firstSeq*/, std::uint64_t /*lastSeq*/) {
    return SetAsideResult{0, {}, "this spool keeps no rejected batches"};
  }

  // Records readable by `reader` and not handed out to it yet.
  virtual std::uint64_t unreadBy(ReaderId reader) const = 0;
  std::uint64_t unread() const { return unreadBy(0); }
  // stats().unread: the reader furthest behind.
  virtual SpoolStats stats() const = 0;

  // The seq after the highest one ever appended (recovered across restarts by durable spools;
  // 0 when unknown).
  virtual std::uint64_t recoveredNextSeq() const = 0;

  // Changes when the store behind the spool was replaced by one that holds records older than some
  // already handed out and acknowledged (spool/fallback_spool.hpp: the spool directory took over
  // with an earlier run's backlog). "Delivered up to seq N" does not cover those older records any
  // more: the fan-out starts its cursors again at the oldest record (core/fanout.hpp).
  virtual std::uint64_t generation() const { return 0; }

  // Called (on the executor) whenever records become readable, e.g. after a group commit.
  virtual void setReadableCallback(std::function<void()> cb) = 0;

  // Flush and sync everything (clean shutdown).
  virtual void close() = 0;
};

}  // namespace citygate::core
