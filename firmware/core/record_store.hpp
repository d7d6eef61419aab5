// The provisioning record in flash: two copies in two sectors of the node's data area (sectors 0
// and 1, firmware/README.md "Flash layout"), each with a generation counter and a CRC-32. A save
// writes the copy that is not the newest valid one, so a power cut at any point of a save leaves
// the previous record readable; load() takes the newest valid copy.
//
// A copy, at the start of its sector (little-endian):
//
//   0  magic       u32  0x31524743 ("CGR1")
//   4  generation  u32  the previous newest copy's + 1 (the first save: 1)
//   8  length      u16  payload bytes, 0..kMaxPayload
//  10  reserved    u16  0
//  12  crc         u32  CRC-32 of bytes 0..11 and the payload
//  16  payload          (the encoded NodeProvisioning)
//
// The payload is written first and the header last; the store then reads the copy back and
// checks its CRC. An erased sector (0xFF), a half-erased or half-written one fails the magic, the
// length or the CRC, and is not a record. Opaque bytes: the store knows nothing of protobuf.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw {

class RecordStore {
 public:
  static constexpr uint32_t kMagic = 0x31524743u;
  static constexpr size_t kHeaderSize = 16;
  static constexpr size_t kMaxPayload = 256;

  enum class Status : uint8_t {
    Ok,
    Empty,         // no valid copy (never provisioned, or both damaged)
    TooLarge,      // payload over kMaxPayload or the sector
    FlashError,    // the flash refused an erase, write or read
    VerifyFailed,  // written, but the read-back does not check
  };

  // `firstSector` and the one after it hold the two copies.
  explicit RecordStore(hal::Flash& flash, uint32_t firstSector = 0) : flash_(flash), first_(firstSector) {}

  // The newest valid copy's payload into `out` (at most `capacity` bytes; a longer one is Empty to
  // this caller: TooLarge). Reads the flash every time (nothing cached that a reset would lose).
  Status load(uint8_t* out, size_t capacity, size_t& size);
  // Writes `payload` as the next generation into the older copy's sector.
  Status save(const uint8_t* payload, size_t size);

  // Of the newest valid copy as the last load() or save() found it: 0 when none.
  uint32_t generation() const { return generation_; }

  static const char* statusText(Status s);

 private:
  struct Copy {
    bool valid = false;
    uint32_t generation = 0;
    uint16_t length = 0;
  };
  Copy inspect(uint32_t slot);
  // The slot of the newest valid copy, or -1.
  int newest(Copy (&copies)[2]);

  hal::Flash& flash_;
  uint32_t first_;
  uint32_t generation_ = 0;
};

}  // namespace citygate::fw
