// The service UART's frames (firmware/README.md "Service UART"): SLIP-delimited (RFC 1055: END
// 0xC0 ends a frame, ESC 0xDB escapes END as DB DC and ESC as DB DD; a sender also starts each
// frame with END, which flushes line noise), and inside:
//
//   0  type    u8   request 0x01 SHOW, 0x02 PROVISION, 0x03 RESET, 0x04 COUNTERS;
//                   reply = request | 0x80; 0xFF ERROR
//   1  seq     u8   chosen by the requester, echoed in the reply; 0 in the ERROR reply to a frame
//                   that could not be read
//   2  length  u16  little-endian, payload bytes, 0..kMaxPayload
//   4  payload
//   .. crc     u32  little-endian CRC-32 (IEEE, as zlib) of bytes 0 .. 4+length-1
//
// FrameParser is a pure incremental function of the bytes: feed() one byte at a time; its result
// depends on the bytes since the last END only. Empty frames (END END) are ignored.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace citygate::fw::service {

constexpr uint8_t kEnd = 0xC0;
constexpr uint8_t kEsc = 0xDB;
constexpr uint8_t kEscEnd = 0xDC;
constexpr uint8_t kEscEsc = 0xDD;

constexpr size_t kHeaderSize = 4;
constexpr size_t kCrcSize = 4;
constexpr size_t kMaxPayload = 256;
constexpr size_t kMaxFrame = kHeaderSize + kMaxPayload + kCrcSize;
// A frame as sent: END, every byte escaped at worst, END.
constexpr size_t kMaxEncoded = 2 + 2 * kMaxFrame;

enum class Type : uint8_t {
  Show = 0x01,
  Provision = 0x02,
  Reset = 0x03,
  Counters = 0x04,
  Error = 0xFF,
};
constexpr uint8_t kReplyBit = 0x80;

// Why a frame or a request was refused: the first byte of an ERROR reply, and the index of the
// node's counters (COUNTERS reply). Codes are stable (citygatectl prints them by name).
enum class Reason : uint8_t {
  None = 0,
  BadCrc = 1,       // the CRC does not match (line noise, wrong baud)
  Truncated = 2,    // shorter than its header, or than its length says
  Oversize = 3,     // longer than kMaxFrame, or a length over kMaxPayload
  BadLength = 4,    // longer than its length says
  BadEscape = 5,    // ESC followed by something else than DC or DD
  UnknownType = 6,  // a type this node does not serve
  BadRecord = 7,    // PROVISION payload is not a NodeProvisioning within the node's bounds
  Invalid = 8,      // the record breaks a rule (the text says which)
  WrongKind = 9,    // the record is for another kind of node
  FlashError = 10,  // the record could not be written
  Count = 11,
};

const char* reasonName(Reason r);  // "bad_crc", "truncated", ...

struct Frame {
  uint8_t type = 0;
  uint8_t seq = 0;
  uint16_t length = 0;
  const uint8_t* payload = nullptr;  // into the parser's buffer, valid until the next feed()
};

class FrameParser {
 public:
  enum class Result : uint8_t { None, Frame, Error };

  Result feed(uint8_t byte);
  const Frame& frame() const { return frame_; }  // after Result::Frame
  Reason error() const { return error_; }        // after Result::Error
  void reset();

 private:
  Result finish();

  uint8_t buffer_[kMaxFrame] = {};
  size_t size_ = 0;
  bool escaped_ = false;
  bool overflow_ = false;
  bool badEscape_ = false;
  Frame frame_;
  Reason error_ = Reason::None;
};

// Encodes one frame (END, escaped bytes, END) into `out`; returns its size, 0 when the payload is
// over kMaxPayload or `capacity` is too small.
size_t encodeFrame(uint8_t type, uint8_t seq, const uint8_t* payload, size_t size, uint8_t* out, size_t capacity);

}  // namespace citygate::fw::service
