// SeqStore: the gateway-wide reading sequence number, persisted so it never repeats across
// restarts. A spool that syncs every record before it is published (STRICT) knows the next seq
// exactly (its newest record); otherwise (ACK_DRIVEN, where a published record may be lost in a
// power cut, or no durable spool) the store reserves blocks ahead on disk, so a crash skips at
// most one block and never repeats.
//
// The file: "N" (exact, written by a clean stop) or "R from F" (a reservation: every seq handed
// out is below R, and those handed out since it was made are at least F). After an unclean stop
// on the same boot the spool's tail is exact (the kernel kept every write), and numbering goes on
// there when the spool reaches F; otherwise (a power cut, lost spool files) it goes on at R and
// skipped() says so: the platform sees a gap, never a seq twice.
//
// A damaged `seq` file (empty, not a number, unreadable) does not stop the start: open() takes
// the floor (what the spool has seen) and a complete `seq.tmp` left by an interrupted write, says
// what it found and chose in damage(), and rewrites the file.
//
// Reservations: a seq is handed out only below a reservation already durable on disk. The next
// block is reserved when half of the current one is used, on a core::FileWriter thread once
// writeOn() gave it the executor (before that, and without it, on the caller's thread), so the
// executor never waits for the disk. When a reservation cannot be made durable (a read-only or
// full disk) numbering stops when the durable block is used up: next() returns nothing,
// numberingError() says why, and every later next() or ready() asks again; numbering resumes
// by itself once a write succeeds. A seq is never handed out twice, even after a crash.
//
// The epoch: a random id (16 hex digits) kept beside the file (`<path>.epoch`) and carried in every
// ReadingBatch and GatewayStatus. open() makes a new one whenever the seq could start again: the
// seq file missing or damaged with an empty spool (a wiped state_dir, a new SD card), or the epoch
// file missing or damaged. A platform dedupes on (gateway_id, epoch, seq): readings of a new epoch are never taken
// for duplicates of an earlier one.
//
// Threading: executor only (the writes run on the writer's thread, their results come back on
// the executor). The file writes are small, atomic (write + fsync + rename) and rare.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/file_writer.hpp"
#include "core/result.hpp"

namespace citygate::core {

class SeqStore {
 public:
  static constexpr std::uint64_t kBlock = 4096;
  static constexpr std::size_t kMaxFileBytes = 64;  // "18446744073709551615\n" and then some

  // What open() found in a damaged file and what it chose instead.
  struct Damage {
    std::string found;         // "empty", "not a number: '12a4'", "unreadable: Permission denied"
    std::uint64_t chosen = 0;  // the next seq it took
    std::uint64_t floor = 0;   // what the caller knew (the spool's next seq; 0: nothing)
    std::uint64_t tmp = 0;     // a complete value in `seq.tmp` (an interrupted write), 0: none
  };

  // `path` empty: nothing persisted (tests).
  SeqStore(std::string path, bool reserveBlocks);
  ~SeqStore();

  // Later reservations are written on a FileWriter thread, their results posted to `executor`.
  // `write`: a test seam (default writeFileAtomic).
  Status writeOn(boost::asio::any_io_executor executor, FileWriter::WriteFn write = {});

  // Reads the stored value; next() starts at max(stored, floor, 1). A damaged or unreadable file
  // is replaced (damage() says what was found and chosen); in reserve mode the first block is
  // reserved at once (on this thread). Always Ok: a write that fails is in writeError(), and
  // numbering waits for a reservation that is durable (numberingError()).
  // `floorExact`: the floor is the spool's exact tail (an unclean stop on this boot, or a spool
  // that syncs before it publishes); a reservation is then not skipped when the floor reaches it.
  Status open(std::uint64_t floor, bool floorExact = false);

  // The next seq; nothing when numbering is stopped (no durable reservation left).
  std::optional<std::uint64_t> next();
  std::uint64_t peek() const { return next_; }
  // Whether next() would give a seq now; when not, asks for a reservation again.
  bool ready();
  // Why numbering is stopped (empty: it is not).
  std::string numberingError() const;

  // Numbering goes on at `floor` at least (a spool found later holds higher seqs).
  void raiseTo(std::uint64_t floor);
  // Reserve blocks ahead on disk (no durable spool) or not (the spool carries the seq).
  void setReserveBlocks(bool on);

  const std::optional<Damage>& damage() const { return damage_; }
  // This run's epoch (after open()), and why it is new ("": the stored one goes on).
  const std::string& epoch() const { return epoch_; }
  const std::string& epochRenewed() const { return epochRenewed_; }
  // open() went on at the end of a reservation above the spool's tail: seqs from..to-1 are a gap.
  struct Skip {
    std::uint64_t from = 0;
    std::uint64_t to = 0;
  };
  const std::optional<Skip>& skipped() const { return skipped_; }
  // Why the last write failed (empty: it did not).
  const std::string& writeError() const { return writeError_; }
  std::uint64_t reservedUpTo() const { return reservedUpTo_; }  // durable: seqs below it are safe

  // Writes the exact next value (clean shutdown), after any reservation in progress.
  Status close();

 private:
  bool reserving() const { return reserveBlocks_ && !path_.empty(); }
  void reserve();  // the next block, unless a reservation is in flight
  void onReserved(std::uint64_t value, const Status& st);
  Status write(const std::string& text);
  void openEpoch(bool continues);

  std::string path_;
  bool reserveBlocks_;
  std::uint64_t next_ = 1;
  std::uint64_t reservedUpTo_ = 0;  // durable
  bool reservationInFlight_ = false;
  std::optional<Damage> damage_;
  std::string epoch_;
  std::string epochRenewed_;
  std::optional<Skip> skipped_;
  std::string writeError_;
  std::unique_ptr<FileWriter> writer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for the writer's callbacks
};

// Writes `data` to `path` atomically: a temporary file in the same directory, fsync, rename,
// fsync of the directory. `mode` is applied to the new file.
Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);

// `bytes` random bytes (std::random_device) as lowercase hex: boot ids, epochs.
std::string randomHex(std::size_t bytes);

}  // namespace citygate::core
