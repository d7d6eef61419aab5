// Control-socket framing (pure; no I/O, no allocation beyond the one frame buffer): a 4-byte
// big-endian length, then that many bytes of a serialized ControlRequest or ControlResponse.
//
// FrameDecoder takes bytes as they arrive, in chunks of any size, and yields whole frames. Its
// buffer never holds more than one frame, so a peer cannot make it grow past the limit: a length
// above the limit puts the decoder in the Oversize state for good (the stream cannot be resynced).
// The buffer grows with the bytes that arrived, not with the length announced (a header that
// announces 1 MiB costs nothing until the bytes come), in steps of at most kGrowStep; held() is
// what it holds, for the server's budget across connections.
// Used by the daemon's sessions and by citygatectl, and fuzzed (tests/fuzz/control_framing.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "citygate/v1/control.pb.h"

namespace citygate::control {

namespace pb = citygate::v1;

inline constexpr std::size_t kHeaderBytes = 4;
inline constexpr std::uint32_t kMaxRequestBytes = 1U << 20;    // 1 MiB: a config text fits
inline constexpr std::uint32_t kMaxResponseBytes = 16U << 20;  // status of a large gateway

// The 4-byte header of a frame of `length` bytes.
void encodeHeader(std::uint32_t length, std::uint8_t out[kHeaderBytes]);
std::uint32_t decodeHeader(const std::uint8_t in[kHeaderBytes]);

// Header + serialized message. Empty when the message cannot be serialized or is larger than
// `limit` (the caller answers with an error instead).
std::string frameMessage(const google::protobuf::MessageLite& message, std::uint32_t limit);

class FrameDecoder {
 public:
  enum class State : std::uint8_t { NeedMore, Ready, Oversize };

  static constexpr std::size_t kGrowStep = 64 * 1024;
  // next() lets go of a buffer larger than this (a config text must not pin 1 MiB per connection).
  static constexpr std::size_t kKeepCapacity = 4 * 1024;

  explicit FrameDecoder(std::uint32_t maxFrame) : max_(maxFrame) {}

  // Consumes bytes of `in` up to the end of the current frame; returns how many it took. Call
  // again with the rest after taking the frame. Takes nothing in the Ready and Oversize states.
  std::size_t feed(std::span<const std::uint8_t> in);

  State state() const { return state_; }
  // The complete frame's body (Ready only); valid until next().
  std::string_view frame() const { return body_; }
  // Forgets the current frame and waits for the next header.
  void next();
  // The announced length that broke the limit (Oversize only).
  std::uint32_t announced() const { return length_; }
  // Bytes of an unfinished frame held (header included): a peer that closes mid-frame.
  std::size_t pending() const { return headerHave_ + body_.size(); }
  // Memory the frame buffer holds outside the decoder (its capacity; 0 for a short frame kept
  // inside the string itself).
  std::size_t held() const { return body_.capacity() > kInline ? body_.capacity() : 0; }
  // Back to the state of a new decoder, letting go of the buffer (a connection that is dropped).
  void reset();

 private:
  std::uint32_t max_;
  State state_ = State::NeedMore;
  std::uint8_t header_[kHeaderBytes] = {};
  std::size_t headerHave_ = 0;
  std::uint32_t length_ = 0;
  std::string body_;
  static inline const std::size_t kInline = std::string().capacity();
};

// Parses one request frame. On failure, `error` says why (for the BAD_REQUEST reply). A string
// field that is not UTF-8 is found before protobuf's parser sees it (which would log a line per
// request on its own).
bool parseRequest(std::string_view frame, pb::ControlRequest& out, std::string& error);

// A request that parsed but cannot be served as sent (no command, fields out of range); empty when
// it is well formed. Pure; the handlers rely on it.
std::string checkRequest(const pb::ControlRequest& request);

// A response carrying only an error.
pb::ControlResponse errorResponse(std::uint64_t id, pb::ControlError::Code code, std::string message);

}  // namespace citygate::control
