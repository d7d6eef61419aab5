// SeqStore: the gateway-wide reading sequence number, persisted so it never repeats across
// restarts. A durable spool knows the next seq exactly (its newest record); without one, the
// store reserves blocks ahead on disk, so a crash skips at most one block and never repeats.
//
// A damaged `seq` file (empty, not a number, unreadable) does not stop the start: open() takes
// the floor (what the spool has seen) and a complete `seq.tmp` left by an interrupted write, says
// what it found and chose in damage(), and rewrites the file. A write that fails (a read-only or
// full disk) is not fatal either: writeError() says why, and the next block retries it.
//
// Threading: executor only. The file writes are small, atomic (write + fsync + rename) and rare.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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

  // Reads the stored value; next() starts at max(stored, floor, 1). A damaged or unreadable file
  // is replaced (damage() says what was found and chosen); in reserve mode the first block is
  // reserved at once. Always Ok: a write that fails is in writeError().
  Status open(std::uint64_t floor);

  std::uint64_t next();
  std::uint64_t peek() const { return next_; }

  // Numbering goes on at `floor` at least (a spool found later holds higher seqs).
  void raiseTo(std::uint64_t floor);
  // Reserve blocks ahead on disk (no durable spool) or not (the spool carries the seq).
  void setReserveBlocks(bool on);

  const std::optional<Damage>& damage() const { return damage_; }
  // Why the last write failed (empty: it did not). The caller logs it; the store goes on.
  const std::string& writeError() const { return writeError_; }

  // Writes the exact next value (clean shutdown).
  Status close();

 private:
  Status write(std::uint64_t value);

  std::string path_;
  bool reserveBlocks_;
  std::uint64_t next_ = 1;
  std::uint64_t reservedUpTo_ = 0;
  std::optional<Damage> damage_;
  std::string writeError_;
};

// Writes `data` to `path` atomically: a temporary file in the same directory, fsync, rename,
// fsync of the directory. `mode` is applied to the new file.
Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);

}  // namespace citygate::core
