// The air node's OTAA state across power cuts (firmware/README.md "Flash layout": sectors 6 and 7
// of the node's data area), on NOR flash through hal::Flash: the DevNonce reservation and the
// session of the last join.
//
// A join-request must never carry a DevNonce the node sent before (the gateway refuses it as a
// replay: join_dev_nonce_replay). The DevNonce counts up from 0 (LoRaWAN 1.0.4) and is reserved
// as the frame counter is (fcnt_store.hpp): the flash holds a limit L such that no DevNonce >= L
// was ever sent; when the next one reaches L, a record with L' = next + kNonceBlock is written and
// read back *before* the join-request goes out. At start the limit is the next DevNonce: a power
// cut costs at most kNonceBlock - 1 values, and a record is written every kNonceBlock joins.
//
// The session of an accepted join (DevAddr, NwkSKey, AppSKey, DLSettings, RxDelay, the CFList and
// the FCnt store's counter at the join, `fcntBase`: FCntUp = FcntStore counter - fcntBase, so the
// new session starts at 0 while the store's counter only grows) is in the same record, so a reset
// keeps it (no rejoin) and a torn write leaves the previous record: the old session, or none.
//
// Records (80 bytes: magic "CGJS", sequence, the fields, CRC-32 of the first 76) are appended,
// never rewritten; the newest valid one (highest sequence) wins. When a sector is full the records
// move to the other one, which is erased first; the sector holding the newest valid record is
// never erased. A record whose CRC fails (a torn write) is skipped and its slot not written again.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"
#include "nodes/air/lorawan.hpp"

namespace citygate::fw::air {

struct OtaaSession {
  bool valid = false;
  uint32_t devAddr = 0;
  uint32_t fcntBase = 0;  // FcntStore's counter at the join: FCntUp 0
  uint8_t dlSettings = 0;
  uint8_t rxDelay = 1;
  uint8_t nwkSKey[kKeyBytes] = {};
  uint8_t appSKey[kKeyBytes] = {};
  uint8_t cfList[16] = {};  // all 0: none (the three default channels only)
  uint32_t identity = 0;    // of the DevEUI, JoinEUI and AppKey that joined (identityOf()): another
                            // provisioning does not run this session
};

class JoinStore {
 public:
  static constexpr uint32_t kFirstSector = 6;
  static constexpr uint32_t kSectors = 2;
  static constexpr uint32_t kRecordBytes = 80;
  static constexpr uint32_t kNonceBlock = 8;

  struct Stats {
    uint32_t records = 0;      // valid records found at start
    uint32_t badRecords = 0;   // written slots whose CRC failed (torn writes) found at start
    uint32_t writes = 0;       // records written since start
    uint32_t erases = 0;       // sectors erased since start
    uint32_t writeErrors = 0;  // writes or erases that failed or did not read back
  };

  explicit JoinStore(hal::Flash& flash) : flash_(flash) {}

  // Reads the sectors: the newest valid record gives the DevNonce limit and the session. False
  // when the flash is too small (needs sectors 6, 7 of at least 2 records) or unreadable.
  bool start();

  // The DevNonce for the next join-request, reserved on the flash if needed; false (and no
  // DevNonce) when the reservation could not be written or the 16-bit DevNonce is used up.
  bool takeDevNonce(uint16_t& devNonce);

  // Stores the session of an accepted join; false when it could not be written (the node then
  // runs it, but a reset joins again).
  bool saveSession(const OtaaSession& session);

  const OtaaSession& session() const { return session_; }
  uint32_t nextDevNonce() const { return nextNonce_; }
  uint32_t nonceLimit() const { return nonceLimit_; }
  const Stats& stats() const { return stats_; }

 private:
  bool append(uint32_t nonceLimit, const OtaaSession& session);

  hal::Flash& flash_;
  OtaaSession session_;
  uint32_t nextNonce_ = 0;   // up to 0x10000: used up
  uint32_t nonceLimit_ = 0;  // DevNonces below it are reserved on the flash
  uint32_t seq_ = 0;         // of the newest valid record
  uint32_t sector_ = 0;      // 0..1: where the next record goes
  uint32_t slot_ = 0;
  uint32_t slots_ = 0;
  uint32_t newest_ = kSectors;  // the sector of the newest valid record (kSectors: none)
  bool started_ = false;
  Stats stats_;
};

}  // namespace citygate::fw::air
