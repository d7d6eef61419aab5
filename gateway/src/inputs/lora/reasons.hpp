// Why a datagram, an rxpk or a frame was not turned into a reading: one bounded enum, so every
// counter table is a fixed array (no map that a hostile sender could grow). The names are the
// keys of GatewayHealth.lora.rejected and DeviceHealth.frames_rejected (stable: add, never
// rename); the labels say the same for people (a device's last_error, citygatectl).
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
  NotDataUplink,  // downlink, join-accept, proprietary: not for a gateway-local decoder
  FOptsWithPort0,
  UnknownDevAddr,
  MicFailed,
  Replay,  // a frame counter at or below the last accepted one
  // A counter above the last accepted one but at or below the floor raised by the resume margin
  // after an unclean stop (a power cut): refused because a frame with it may have been accepted
  // before the cut; expected, not an attack. The device is accepted again once it passes the floor.
  FcntBelowResumeMargin,
  Retransmission,  // the last accepted frame again, after the dedup window
  FcntGap,         // the counter jumped further than max_fcnt_gap
  UnknownPort,     // authentic, but the codec has no decoder for this FPort
  CodecError,      // authentic, but the payload does not decode
  CryptoError,
  BadTxAck,  // TX_ACK whose JSON is not {"txpk_ack":{...}}
  // join-requests (OTAA)
  JoinUnknownDevEui,   // no OTAA device has this DevEUI
  JoinEuiMismatch,     // the device's configured join_eui differs from the one sent
  JoinMicFailed,       // the MIC does not verify with the device's AppKey
  JoinDevNonceReplay,  // a DevNonce this device has used before
  JoinNoDevAddr,       // the configured DevAddr range is full
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
    "fcnt_below_resume_margin",
    "retransmission",
    "fcnt_gap",
    "unknown_port",
    "codec_error",
    "crypto_error",
    "bad_tx_ack",
    "join_unknown_dev_eui",
    "join_eui_mismatch",
    "join_mic_failed",
    "join_dev_nonce_replay",
    "join_no_dev_addr",
};

inline std::string_view reasonName(Reason r) {
  return kReasonNames[static_cast<std::size_t>(r)];
}

// One short line per reason, for people (no key, no payload).
inline constexpr std::array<std::string_view, kReasonCount> kReasonLabels{
    "datagram shorter than the protocol header",
    "unknown protocol version",
    "unknown packet type",
    "a server-to-gateway packet type",
    "PUSH_DATA whose JSON does not parse",
    "PUSH_DATA without a valid rxpk array",
    "PULL_DATA longer than 12 bytes",
    "bad stat report",
    "rxpk with a missing or invalid field",
    "radio CRC failed",
    "rxpk data is not valid base64",
    "PHYPayload longer than 255 bytes",
    "rxpk size does not match its data",
    "too many rxpk in one datagram",
    "truncated LoRaWAN frame",
    "not LoRaWAN major R1",
    "not an uplink (downlink, join-accept, proprietary)",
    "FOpts with FPort 0",
    "DevAddr of no configured device",
    "frames fail the MIC check (wrong NwkSKey?)",
    "replay: frame counter at or below the last accepted",
    "counter below the resume margin after an unclean stop (expected)",
    "retransmission of the last accepted frame",
    "frame counter jumped more than max_fcnt_gap",
    "no decoder for this FPort",
    "payload does not decode",
    "OpenSSL failed",
    "TX_ACK whose JSON does not parse",
    "join-request from a DevEUI of no OTAA device",
    "join-request with another JoinEUI than join_eui",
    "join-requests fail the MIC check (wrong AppKey?)",
    "join-request reusing a DevNonce (replay)",
    "no free DevAddr in lora.join's range",
};

inline std::string_view reasonLabel(Reason r) {
  return kReasonLabels[static_cast<std::size_t>(r)];
}

using ReasonCounters = std::array<std::uint64_t, kReasonCount>;

}  // namespace citygate::lora

namespace citygate::lora {
static_assert(!kReasonNames.back().empty(), "every Reason needs a name");
static_assert(!kReasonLabels.back().empty(), "every Reason needs a label");
}  // namespace citygate::lora
