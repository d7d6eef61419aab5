// OTAA joins, LoRaWAN 1.0.x (the gateway answers as the network and join server would). Pure: no
// sockets, no files, no clock; the FrameProcessor takes the decisions, the LoRa source does the I/O.
//
//   join-request  MHDR(0x00) | JoinEUI(8 LE) | DevEUI(8 LE) | DevNonce(2 LE) | MIC(4)           23 bytes
//   join-accept   MHDR(0x20) | JoinNonce(3 LE) | NetID(3 LE) | DevAddr(4 LE) | DLSettings | RxDelay
//                 [| CFList(16)] | MIC(4), MIC = CMAC(AppKey, all before it)[0..3]; everything after
//                 the MHDR is then AES-128-ECB *decrypted* with the AppKey (the device encrypts it
//                 back), so the device needs no AES decryption.
//   NwkSKey = AES(AppKey, 0x01 | JoinNonce | NetID | DevNonce | 0-pad), AppSKey the same with 0x02.
//
// The joins' state file (state_dir/lora-otaa.state, mode 0600, written atomically like the frame
// counters) holds no key material: a session is stored as the values it was derived from
// (JoinNonce, NetID, DevNonce) and re-derived from the AppKey at start. Text, one line per
// device that has joined:
//
//   citygate-lora-otaa 1
//   join_nonce <next JoinNonce, decimal>                 JoinNonces are never reused (24-bit, increasing)
//   device <id> <DevEUI> <AppKey check value> <DevAddr> <JoinNonce> <NetID> <DevNonce> <used DevNonces>
//   crc32 <8 hex digits>                                 CRC-32 (IEEE) of every byte before this line
//                                                        (the frame: state_file.hpp)
//
// <used DevNonces> is a comma-separated list of 4-hex-digit nonces, oldest first, at most
// kMaxDevNonces (the session's own included): a join-request with one of them is refused as
// join_dev_nonce_replay. The AppKey check value (AES(AppKey, 0)[0..3]) makes a record of a device
// whose AppKey changed void (it must join again; its nonce history goes with the old key).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inputs/lora/crypto.hpp"

namespace citygate::lora {

inline constexpr std::size_t kJoinRequestLength = 23;
// DevNonces remembered per device: a join-request reusing one of the last 64 is refused. A replay
// of an older one would get a join-accept the sender cannot use (it has no AppKey) and end the
// device's session, which then joins again: a nuisance, never a way in.
inline constexpr std::size_t kMaxDevNonces = 64;

enum class JoinParseError : std::uint8_t {
  None,
  NotJoinRequest,  // MType is not 000
  BadMajor,        // not LoRaWAN R1
  BadLength,       // not exactly 23 bytes
};

struct JoinRequest {
  std::uint64_t joinEui = 0;  // as printed (the wire is little-endian)
  std::uint64_t devEui = 0;
  std::uint16_t devNonce = 0;              // as printed
  std::uint32_t mic = 0;                   // first byte most significant
  std::span<const std::uint8_t> micInput;  // MHDR .. DevNonce
};

JoinParseError parseJoinRequest(std::span<const std::uint8_t> phy, JoinRequest& out);

// DLSettings and RxDelay as the device is told them; EU868 CFList frequencies in MHz (at most 5).
struct JoinAcceptFields {
  std::uint32_t joinNonce = 0;  // 24 bits
  std::uint32_t netId = 0;      // 24 bits
  std::uint32_t devAddr = 0;
  std::uint8_t rx1DrOffset = 0;       // 0..7
  std::uint8_t rx2DataRate = 0;       // 0..15
  std::uint8_t rxDelay = 1;           // seconds, 1..15 (0 on the wire means 1)
  std::vector<std::uint32_t> cflist;  // frequencies in units of 100 Hz (8671000 = 867.1 MHz)
};

// The over-the-air join-accept (17 or 33 bytes); nullopt when OpenSSL fails or a field is out of range.
std::optional<std::vector<std::uint8_t>> buildJoinAccept(Crypto& crypto, const Key& appKey, const JoinAcceptFields& f);

struct SessionKeys {
  Key nwkSKey;
  Key appSKey;
};
std::optional<SessionKeys> deriveSessionKeys(Crypto& crypto, const Key& appKey, std::uint32_t joinNonce,
                                             std::uint32_t netId, std::uint16_t devNonce);

// The EU868 default extra channels 867.1, 867.3, 867.5, 867.7, 867.9 MHz (100 Hz units).
std::vector<std::uint32_t> eu868DefaultCflist();

// The DevAddr for a joining device: `current` if it is in [first, last] and free (a rejoin keeps
// its address), else the lowest address of the range that `taken` (sorted) does not hold; nullopt
// when the range is full. `taken` holds every address in use by another session.
std::optional<std::uint32_t> allocateDevAddr(std::uint32_t first, std::uint32_t last,
                                             std::optional<std::uint32_t> current,
                                             std::span<const std::uint32_t> taken);

// ---- the joins' state file ----
struct OtaaRecord {
  std::string id;
  std::uint64_t devEui = 0;
  std::uint32_t appKeyCheck = 0;
  std::uint32_t devAddr = 0;
  std::uint32_t joinNonce = 0;
  std::uint32_t netId = 0;
  std::uint16_t devNonce = 0;
  std::vector<std::uint16_t> usedNonces;  // oldest first, at most kMaxDevNonces
};

struct OtaaState {
  std::uint32_t nextJoinNonce = 0;
  std::vector<OtaaRecord> records;
};

std::string encodeOtaaState(const OtaaState& state);
// nullopt with `why` (never echoing the text) for anything but a complete, checksummed version-1 file.
std::optional<OtaaState> decodeOtaaState(std::string_view text, std::string* why);

}  // namespace citygate::lora
