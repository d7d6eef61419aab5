// SeqStore: the gateway-wide reading sequence number, persisted so it never repeats across
// restarts. A durable spool knows the next seq exactly (its newest record); without one, the
// store reserves blocks ahead on disk, so a crash skips at most one block and never repeats.
//
// Threading: executor only. The file writes are small, atomic (write + fsync + rename) and rare.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace citygate::core {

class SeqStore {
 public:
  static constexpr std::uint64_t kBlock = 4096;

  // `path` empty: nothing persisted (tests).
  SeqStore(std::string path, bool reserveBlocks);

  // Reads the stored value; next() starts at max(stored, floor, 1).
  Status open(std::uint64_t floor);

  std::uint64_t next();
  std::uint64_t peek() const { return next_; }

  // Writes the exact next value (clean shutdown).
  Status close();

 private:
  Status write(std::uint64_t value);

  std::string path_;
  bool reserveBlocks_;
  std::uint64_t next_ = 1;
  std::uint64_t reservedUpTo_ = 0;
};

// Writes `data` to `path` atomically: a temporary file in the same directory, fsync, rename,
// fsync of the directory. `mode` is applied to the new file.
Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);

}  // namespace citygate::core
