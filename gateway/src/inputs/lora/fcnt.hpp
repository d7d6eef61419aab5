// Frame counters: the 32-bit reconstruction of a 16-bit FCnt (protocols.md 3.5), and the state
// file that keeps the last accepted counter of every device across restarts.
//
// State file (state_dir/lora-fcnt.state), text, written atomically (temp + fsync + rename):
//
//   citygate-lora-fcnt 1                      format name and version
//   clean 0|1                                 1 only when written by a clean stop
//   device <id> <devaddr> <kcv> <last_fcnt>   one line per device that has sent a frame
//   crc32 <8 hex digits>                      CRC-32 (IEEE) of every byte before this line
//
// <kcv> is the NwkSKey's check value (AES(key, 0)[0..3]): a re-keyed device starts afresh, and
// the file reveals nothing about the key. After an unclean stop (clean 0) the counters resume
// `margin` above the stored values: the writer guarantees that no device ever runs more than
// `margin` above the file, so a frame accepted after the last write can never be replayed.
// Pure functions; the I/O is done by the LoRa source. The file and its guarantees are described in
// README.md beside this file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::lora {

// ChirpStack's get_full_f_cnt_up: the full counter nearest above `nextExpected` whose low 16
// bits are `truncated`; the retransmission of the last frame maps to nextExpected - 1.
std::uint32_t fullFcnt(std::uint32_t nextExpected, std::uint16_t truncated);

inline constexpr std::uint32_t kFcntStateVersion = 1;

struct FcntRecord {
  std::string id;
  std::uint32_t devAddr = 0;
  std::uint32_t keyCheck = 0;
  std::uint32_t lastFcnt = 0;
};

struct FcntState {
  bool clean = false;
  std::vector<FcntRecord> records;
};

std::string encodeFcntState(const FcntState& state);

// Parses a state file; nullopt with `why` for anything but a complete, checksummed version-1
// file (truncated tail, bad CRC, future version, bad line).
std::optional<FcntState> decodeFcntState(std::string_view text, std::string* why);

std::uint32_t crc32(std::string_view data);

}  // namespace citygate::lora
