// Frame counters: the 32-bit reconstruction of a 16-bit FCnt (protocols.md 3.5), and the two
// copies of every device's counter that survive a restart.
//
// The storage copy (state_dir/lora-fcnt.state), text, written atomically (temp + fsync + rename)
// only when a power cut needs it:
//
//   citygate-lora-fcnt 2                              format name and version (1 still loads)
//   clean 0|1                                         1 only when written by a clean stop
//   device <id> <devaddr> <kcv> <last> <floor>        one line per device that has sent a frame
//   crc32 <8 hex digits>                              CRC-32 (IEEE) of every byte before this line
//                                                     (the frame: state_file.hpp)
//
// <last> is the last accepted counter, <floor> the counter at or below which every frame is
// refused (above <last> only after a power cut: the margin added once). Version 1 has no <floor>
// (it is <last>). <kcv> is the NwkSKey's check value (AES(key, 0)[0..3]): a re-keyed device starts
// afresh, and the file reveals nothing about the key.
//
// The RAM copy (runtime_dir/lora-fcnt-<FNV-1a of the state file's path>.ram, tmpfs), binary, little-endian: a 64-byte
// header (magic "CGLFCRAM", version u32, slot count u32, the kernel's boot id, CRC-32 of the header) and one 96-byte
// slot per configured device (CRC-32 of the slot, DevAddr, kcv, last, floor, id length, id), rewritten in place (one
// pwrite) on every accepted frame, before that frame's reading can leave. It is trusted only with the boot id of the
// running kernel: it survives a crash of citygated, never a reboot.
//
// Start-up (FrameProcessor::restore): a device's valid RAM slot of this boot resumes exactly;
// otherwise the storage copy, exactly after a clean stop, else at max(floor, last + margin) (a
// power cut). The writer keeps every device within `margin` of the storage copy's <last>, so a
// frame accepted before a power cut stays refused; <last> is kept apart from <floor>, so the
// margin is added once per power cut, never per restart. Pure functions; the I/O is done by the
// LoRa source. The guarantees are described in README.md beside this file.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inputs/lora/state_file.hpp"  // crc32, the text file's frame

namespace citygate::lora {

// ChirpStack's get_full_f_cnt_up: the full counter nearest above `nextExpected` whose low 16
// bits are `truncated`; the retransmission of the last frame maps to nextExpected - 1.
std::uint32_t fullFcnt(std::uint32_t nextExpected, std::uint16_t truncated);

inline constexpr std::uint32_t kFcntStateVersion = 2;

struct FcntRecord {
  std::string id;
  std::uint32_t devAddr = 0;
  std::uint32_t keyCheck = 0;
  std::uint32_t lastFcnt = 0;   // the last accepted counter
  std::uint32_t floorFcnt = 0;  // frames at or below it are refused (>= lastFcnt)
};

struct FcntState {
  bool clean = false;
  std::vector<FcntRecord> records;
};

std::string encodeFcntState(const FcntState& state);

// Parses a state file; nullopt with `why` for anything but a complete, checksummed version-1 or
// version-2 file (truncated tail, bad CRC, future version, bad line). Version 1: floor = last.
std::optional<FcntState> decodeFcntState(std::string_view text, std::string* why);

// ---- the RAM copy ----
inline constexpr std::uint32_t kFcntRamVersion = 1;
inline constexpr std::size_t kFcntRamHeader = 64;
inline constexpr std::size_t kFcntRamSlot = 96;
inline constexpr std::size_t kFcntRamMaxId = 64;  // config ids are at most 64 characters
using RamSlot = std::array<std::uint8_t, kFcntRamSlot>;

// What one slot says, without owning the id (no allocation on the per-frame path).
struct FcntSlotView {
  std::string_view id;  // empty: a device that has sent no frame (an empty slot)
  std::uint32_t devAddr = 0;
  std::uint32_t keyCheck = 0;
  std::uint32_t lastFcnt = 0;
  std::uint32_t floorFcnt = 0;
};

// The whole RAM image: header + one slot per entry of `slots` (empty views for unseen devices).
std::string encodeFcntRam(std::string_view bootId, const std::vector<FcntSlotView>& slots);
// One slot, as written in place at fcntRamSlotOffset(index).
void encodeFcntRamSlot(const FcntSlotView& slot, RamSlot& out);
constexpr std::size_t fcntRamSlotOffset(std::size_t index) {
  return kFcntRamHeader + index * kFcntRamSlot;
}

struct FcntRam {
  std::vector<FcntRecord> records;  // the valid, non-empty slots (clean is meaningless here)
  std::size_t damagedSlots = 0;     // slots whose CRC failed: those devices fall back to storage
};
// nullopt with `why` when the header is not a version-1 RAM copy of the boot `bootId` (another
// boot, truncated, bad CRC, future version). A damaged slot is skipped and counted.
std::optional<FcntRam> decodeFcntRam(std::string_view bytes, std::string_view bootId, std::string* why);

}  // namespace citygate::lora
