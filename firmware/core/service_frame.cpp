#include "core/service_frame.hpp"

#include "core/crc.hpp"

namespace citygate::fw::service {

const char* reasonName(Reason r) {
  switch (r) {
    case Reason::None:
      return "none";
    case Reason::BadCrc:
      return "bad_crc";
    case Reason::Truncated:
      return "truncated";
    case Reason::Oversize:
      return "oversize";
    case Reason::BadLength:
      return "bad_length";
    case Reason::BadEscape:
      return "bad_escape";
    case Reason::UnknownType:
      return "unknown_type";
    case Reason::BadRecord:
      return "bad_record";
    case Reason::Invalid:
      return "invalid";
    case Reason::WrongKind:
      return "wrong_kind";
    case Reason::FlashError:
      return "flash_error";
    case Reason::Count:
      break;
  }
  return "unknown";
}

void FrameParser::reset() {
  size_ = 0;
  escaped_ = false;
  overflow_ = false;
  badEscape_ = false;
}

FrameParser::Result FrameParser::feed(uint8_t byte) {
  if (byte == kEnd) return finish();
  if (escaped_) {
    escaped_ = false;
    if (byte == kEscEnd) {
      byte = kEnd;
    } else if (byte == kEscEsc) {
      byte = kEsc;
    } else {
      badEscape_ = true;
    }
  } else if (byte == kEsc) {
    escaped_ = true;
    return Result::None;
  }
  if (size_ < kMaxFrame) {
    buffer_[size_++] = byte;
  } else {
    overflow_ = true;
  }
  return Result::None;
}

FrameParser::Result FrameParser::finish() {
  const size_t size = size_;
  const bool overflow = overflow_;
  const bool badEscape = badEscape_ || escaped_;
  reset();
  if (size == 0 && !overflow && !badEscape) return Result::None;  // END END: nothing
  Reason why = Reason::None;
  uint16_t length = 0;
  if (size >= kHeaderSize) length = static_cast<uint16_t>(buffer_[2] | buffer_[3] << 8);
  if (overflow || length > kMaxPayload) {
    why = Reason::Oversize;
  } else if (badEscape) {
    why = Reason::BadEscape;
  } else if (size < kHeaderSize + kCrcSize || size < kHeaderSize + length + kCrcSize) {
    why = Reason::Truncated;
  } else if (size > kHeaderSize + length + kCrcSize) {
    why = Reason::BadLength;
  } else {
    const uint8_t* c = buffer_ + kHeaderSize + length;
    const uint32_t crc = static_cast<uint32_t>(c[0]) | static_cast<uint32_t>(c[1]) << 8 |
                         static_cast<uint32_t>(c[2]) << 16 | static_cast<uint32_t>(c[3]) << 24;
    if (crc != crc32(buffer_, kHeaderSize + length)) why = Reason::BadCrc;
  }
  if (why != Reason::None) {
    error_ = why;
    return Result::Error;
  }
  frame_.type = buffer_[0];
  frame_.seq = buffer_[1];
  frame_.length = length;
  frame_.payload = buffer_ + kHeaderSize;
  return Result::Frame;
}

namespace {

struct Writer {
  uint8_t* out;
  size_t capacity;
  size_t size = 0;
  bool ok = true;

  void raw(uint8_t b) {
    if (size < capacity) {
      out[size++] = b;
    } else {
      ok = false;
    }
  }
  void put(uint8_t b) {
    if (b == kEnd) {
      raw(kEsc);
      raw(kEscEnd);
    } else if (b == kEsc) {
      raw(kEsc);
      raw(kEscEsc);
    } else {
      raw(b);
    }
  }
};

}  // namespace

size_t encodeFrame(uint8_t type, uint8_t seq, const uint8_t* payload, size_t size, uint8_t* out, size_t capacity) {
  if (size > kMaxPayload) return 0;
  const uint8_t header[kHeaderSize] = {type, seq, static_cast<uint8_t>(size), static_cast<uint8_t>(size >> 8)};
  const uint32_t crc = crc32(payload, size, crc32(header, kHeaderSize));
  Writer w{out, capacity};
  w.raw(kEnd);
  for (uint8_t b : header) w.put(b);
  for (size_t i = 0; i < size; ++i) w.put(payload[i]);
  for (int i = 0; i < 4; ++i) w.put(static_cast<uint8_t>(crc >> (8 * i)));
  w.raw(kEnd);
  return w.ok ? w.size : 0;
}

}  // namespace citygate::fw::service
