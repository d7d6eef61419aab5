// Why a datagram, an rxpk or a frame was not turned into a reading: one bounded enum, so every
// counter table is a fixed array (no map that a hostile sender could grow). The names are the
// keys of GatewayHealth.lora.rejected and DeviceHealth.frames_rejected.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace citygate::lora {

enum class Reason : std::uint8_t {
  // datagram
  DatagramTooShort,
  BadVersion,
  UnknownPacketType,
  UnexpectedPacketType,  // a server-to-gateway type (PUSH_ACK, PULL_ACK, PULL_RESP) sent to us
  BadJson,
  BadPushData,  // JSON, but not {"rxpk":[...],"stat":{...}}
  BadPullData,  // PULL_DATA longer than its 12 bytes
  BadStat,
  // rxpk
  BadRxpk,    // a required field missing or of the wrong type / range
  CrcFailed,  // stat != 1
  BadBase64,
  Oversize,      // more than 255 bytes of PHYPayload
  SizeMismatch,  // "size" differs from the decoded data
  RxpkLimit,     // more rxpk in one datagram than we take
  // frame
  TruncatedFrame,
  BadMajor,
  NotDataUplink,  // join request, downlink, proprietary: not for a gateway-local decoder
  FOptsWithPort0,
  UnknownDevAddr,
  MicFailed,
  Replay,          // a frame counter at or below the last accepted one
  Retransmission,  // the last accepted frame again, after the dedup window
  FcntGap,         // the counter jumped further than max_fcnt_gap
  UnknownPort,     // authentic, but the codec has no decoder for this FPort
  CodecError,      // authentic, but the payload does not decode
  CryptoError,
  kCount
};

inline constexpr std::size_t kReasonCount = static_cast<std::size_t>(Reason::kCount);

inline constexpr std::array<std::string_view, kReasonCount> kReasonNames{
    "datagram_too_short",
    "bad_version",
    "unknown_packet_type",
    "unexpected_packet_type",
    "bad_json",
    "bad_push_data",
    "bad_pull_data",
    "bad_stat",
    "bad_rxpk",
    "crc_failed",
    "bad_base64",
    "oversize",
    "size_mismatch",
    "rxpk_limit",
    "truncated_frame",
    "bad_major",
    "not_data_uplink",
    "fopts_with_port0",
    "unknown_dev_addr",
    "mic_failed",
    "replay",
    "retransmission",
    "fcnt_gap",
    "unknown_port",
    "codec_error",
    "crypto_error",
};

inline std::string_view reasonName(Reason r) {
  return kReasonNames[static_cast<std::size_t>(r)];
}

using ReasonCounters = std::array<std::uint64_t, kReasonCount>;

}  // namespace citygate::lora

namespace citygate::lora {
static_assert(!kReasonNames.back().empty(), "every Reason needs a name");
}  // namespace citygate::lora
