// Spool: the durable FIFO between the normaliser and the sink. Every reading enters it with its
// seq; a reading leaves it only when the batch that carried it was acknowledged.
// The interface is core's (the pipeline drives it, like Sink); spool/ implements it (FileSpool,
// MemorySpool), so core never includes spool/.
//
// Threading: every method is called on the executor. Implementations may use workers of their
// own (the file spool syncs on one) but never block the caller beyond a bounded write().
//
// Cursor model: records are [acked | in flight | unread]. readBatch() hands out unread records
// and moves the read cursor; acknowledge(seq) deletes every record up to seq; rewind() moves the
// read cursor back to the oldest unacknowledged record (after a lost connection).
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
  std::uint64_t unread = 0;              // records not yet handed out
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
  std::string lastError;
};

// What setAside() did with a rejected batch.
struct SetAsideResult {
  std::uint64_t kept = 0;  // records written where `where` says
  std::string where;       // e.g. the file
  std::string why;         // when none was kept
};

// The framing of one record inside a ReadingBatch payload: field 3 (readings), length-delimited.
void appendBatchRecord(std::string& out, std::string_view record);

class Spool {
 public:
  virtual ~Spool() = default;

  virtual AppendResult append(std::uint64_t seq, std::string_view record) = 0;

  // Appends up to maxRecords unread records (and at most about maxBytes) to `out`, each framed
  // by appendBatchRecord(), oldest first.
  virtual ReadResult readBatch(std::size_t maxRecords, std::size_t maxBytes, std::string& out) = 0;

  // Every record with seq <= lastSeq has been delivered.
  virtual void acknowledge(std::uint64_t lastSeq) = 0;

  // Hand out every unacknowledged record again, from the oldest.
  virtual void rewind() = 0;

  // Keeps the unacknowledged records firstSeq..lastSeq (a batch the sink rejected) where a person
  // can look at them, outside the FIFO; the caller acknowledges them in their turn as usual.
  virtual SetAsideResult setAside(std::uint64_t /*firstSeq*/, std::uint64_t /*lastSeq*/) {
    return SetAsideResult{0, {}, "this spool keeps no rejected batches"};
  }

  virtual std::uint64_t unread() const = 0;
  virtual SpoolStats stats() const = 0;

  // The seq after the highest one ever appended (recovered across restarts by durable spools;
  // 0 when unknown).
  virtual std::uint64_t recoveredNextSeq() const = 0;

  // Called (on the executor) whenever records become readable, e.g. after a group commit.
  virtual void setReadableCallback(std::function<void()> cb) = 0;

  // Flush and sync everything (clean shutdown).
  virtual void close() = 0;
};

}  // namespace citygate::core
