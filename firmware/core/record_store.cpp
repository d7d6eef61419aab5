#include "core/record_store.hpp"

#include "core/crc.hpp"

namespace citygate::fw {

namespace {

uint32_t getU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

void putU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

// Newer in serial-number order (a generation never wraps in a node's life, but the compare is
// right across it).
bool newer(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) > 0;
}

}  // namespace

RecordStore::Copy RecordStore::inspect(uint32_t slot) {
  Copy c;
  const uint32_t sectorSize = flash_.sectorSize();
  if (first_ + slot >= flash_.sectorCount() || sectorSize < kHeaderSize) return c;
  const uint32_t base = (first_ + slot) * sectorSize;
  uint8_t header[kHeaderSize];
  if (!flash_.read(base, header, sizeof header)) return c;
  if (getU32(header) != kMagic) return c;
  const uint16_t length = static_cast<uint16_t>(header[8] | header[9] << 8);
  if (length > kMaxPayload || length > sectorSize - kHeaderSize) return c;
  uint32_t crc = crc32(header, 12);
  uint8_t chunk[32];
  for (uint32_t done = 0; done < length;) {
    const uint32_t n = length - done < sizeof chunk ? length - done : static_cast<uint32_t>(sizeof chunk);
    if (!flash_.read(static_cast<uint32_t>(base + kHeaderSize + done), chunk, n)) return c;
    crc = crc32(chunk, n, crc);
    done += n;
  }
  if (crc != getU32(header + 12)) return c;
  c.valid = true;
  c.generation = getU32(header + 4);
  c.length = length;
  return c;
}

int RecordStore::newest(Copy (&copies)[2]) {
  copies[0] = inspect(0);
  copies[1] = inspect(1);
  if (copies[0].valid && copies[1].valid) return newer(copies[1].generation, copies[0].generation) ? 1 : 0;
  if (copies[0].valid) return 0;
  if (copies[1].valid) return 1;
  return -1;
}

RecordStore::Status RecordStore::load(uint8_t* out, size_t capacity, size_t& size) {
  size = 0;
  Copy copies[2];
  const int slot = newest(copies);
  generation_ = slot < 0 ? 0 : copies[slot].generation;
  if (slot < 0) return Status::Empty;
  const Copy& c = copies[slot];
  if (c.length > capacity) return Status::TooLarge;
  const uint32_t base = (first_ + static_cast<uint32_t>(slot)) * flash_.sectorSize();
  if (c.length > 0 && !flash_.read(base + kHeaderSize, out, c.length)) return Status::FlashError;
  // Checked again as it is handed out: what inspect() summed is what the caller gets.
  uint8_t header[kHeaderSize];
  if (!flash_.read(base, header, sizeof header)) return Status::FlashError;
  if (crc32(out, c.length, crc32(header, 12)) != getU32(header + 12)) return Status::FlashError;
  size = c.length;
  return Status::Ok;
}

RecordStore::Status RecordStore::save(const uint8_t* payload, size_t size) {
  const uint32_t sectorSize = flash_.sectorSize();
  if (size > kMaxPayload || size > sectorSize - kHeaderSize) return Status::TooLarge;
  if (first_ + 2 > flash_.sectorCount()) return Status::FlashError;
  Copy copies[2];
  const int current = newest(copies);
  const uint32_t slot = current == 0 ? 1 : 0;  // the older (or damaged) copy; the first save: 0
  const uint32_t generation = current < 0 ? 1 : copies[current].generation + 1;

  uint8_t header[kHeaderSize];
  putU32(header, kMagic);
  putU32(header + 4, generation);
  header[8] = static_cast<uint8_t>(size);
  header[9] = static_cast<uint8_t>(size >> 8);
  header[10] = 0;
  header[11] = 0;
  putU32(header + 12, crc32(payload, size, crc32(header, 12)));

  const uint32_t base = (first_ + slot) * sectorSize;
  if (!flash_.erase(first_ + slot)) return Status::FlashError;
  if (size > 0 && !flash_.write(base + kHeaderSize, payload, size)) return Status::FlashError;
  if (!flash_.write(base, header, sizeof header)) return Status::FlashError;
  const Copy written = inspect(slot);
  if (!written.valid || written.generation != generation || written.length != size) return Status::VerifyFailed;
  generation_ = generation;
  return Status::Ok;
}

const char* RecordStore::statusText(Status s) {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::Empty:
      return "no valid record";
    case Status::TooLarge:
      return "record too large";
    case Status::FlashError:
      return "flash error";
    case Status::VerifyFailed:
      return "flash read-back does not match";
  }
  return "?";
}

}  // namespace citygate::fw
