// The air node's uplink frame counter across power cuts (firmware/README.md "Flash layout":
// sectors 2..5 of the node's data area), on NOR flash through hal::Flash.
//
// Reservation: the flash holds a limit L such that no counter >= L has ever been sent. The node
// sends counter f only once the flash says L > f; when f reaches L, a new record with
// L' = f + margin is written and read back *before* f is used. At start the highest valid L is
// the next counter. A power cut at any moment therefore leaves either the new record (valid CRC)
// or only the older ones, whose L is still above every counter sent: the counter never goes back
// and no value is sent twice. The cost of a power cut is at most `margin` - 1 counters skipped,
// and one flash record every `margin` frames.
//
// What the gateway accepts (gateway/src/inputs/lora/README.md): any counter above the last one it
// accepted, by at most max_fcnt_gap (16384): a skip of up to `margin` after a power cut is
// accepted as long as margin < 16384 (AirConfig keeps it in 1..10000). The gateway's own
// fcnt_resume_margin (16) concerns its storage, not the node: a node that skips ahead is always
// above the gateway's floor.
//
// Records are appended (16 bytes: magic, L, ~L, CRC-32 of the first 12), never rewritten; a
// sector is erased only when the records move on to it, the next one in a ring of four: the
// erases are spread over the four sectors (wear levelling). A record whose CRC fails (a torn
// write) is skipped, and the next record goes to the first fully erased slot after it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::air {

class FcntStore {
 public:
  static constexpr uint32_t kFirstSector = 2;
  static constexpr uint32_t kSectors = 4;
  static constexpr uint32_t kRecordBytes = 16;

  struct Stats {
    uint32_t records = 0;      // valid records found at start
    uint32_t badRecords = 0;   // written slots whose CRC failed (torn writes) found at start
    uint32_t writes = 0;       // records written since start
    uint32_t erases = 0;       // sectors erased since start
    uint32_t writeErrors = 0;  // writes or erases that failed or did not read back
  };

  FcntStore(hal::Flash& flash, uint32_t margin);
  void setMargin(uint32_t margin) { margin_ = margin == 0 ? 1 : margin; }

  // Reads the sectors: the next counter is the highest valid limit (0 on a blank flash).
  // False when the flash is too small (needs sectors 2..5 of at least 32 bytes) or unreadable.
  bool start();

  // The counter for the next uplink, reserved on the flash if needed; false (and no counter)
  // when the reservation could not be written: the uplink must not be sent.
  bool take(uint32_t& fcnt);

  uint32_t next() const { return next_; }    // the counter take() gives next
  uint32_t limit() const { return limit_; }  // counters below it are reserved on the flash
  const Stats& stats() const { return stats_; }

 private:
  bool reserve(uint32_t newLimit);
  bool writeRecord(uint32_t offset, uint32_t value);
  uint32_t sectorOffset(uint32_t ring) const;

  hal::Flash& flash_;
  uint32_t margin_;
  uint32_t next_ = 0;
  uint32_t limit_ = 0;
  uint32_t ring_ = 0;           // 0..3: the sector the next record goes to
  uint32_t slot_ = 0;           // the next slot in it
  uint32_t slots_ = 0;          // slots per sector
  uint32_t newest_ = kSectors;  // the sector of the newest valid record (kSectors: none), never erased
  bool started_ = false;
  Stats stats_;
};

}  // namespace citygate::fw::air
