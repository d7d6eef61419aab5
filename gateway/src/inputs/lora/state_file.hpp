// The frame of the LoRa input's small text state files (state_dir/lora-fcnt.state,
// lora-otaa.state, lora-fcntdown.state): a head line naming the format and its version, the
// format's own lines, and a checksum line last:
//
//   <head: format name and version>
//   <lines, each ending in '\n'>
//   crc32 <8 hex digits>      CRC-32 (IEEE) of every byte before this line, upper-case hex
//
// Each format (fcnt.hpp, join.hpp, downlink.hpp) owns its head and its lines; this file only frames
// and checks them, so the three files stay byte-identical to what they were. Pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace citygate::lora {

std::uint32_t crc32(std::string_view data);

// head + '\n' + lines + the crc32 line. `lines` is empty or ends in '\n'.
std::string frameTextState(std::string_view head, std::string_view lines);

struct TextState {
  std::string_view head;   // the first line, without its '\n'
  std::string_view lines;  // the lines between the head and the crc32 line, each with its '\n'
};

// The head's check: nullopt when the reader takes it, else why not (a version it does not read).
using TextStateHeadCheck = std::function<std::optional<std::string>(std::string_view head)>;

// Checks, in this order, so a future version says so rather than "bad CRC": at most 1 MiB, a final
// newline, the head (checkHead), the crc32 line, the CRC. nullopt with `why` on the first failure.
std::optional<TextState> unframeTextState(std::string_view text, const TextStateHeadCheck& checkHead, std::string* why);

}  // namespace citygate::lora
