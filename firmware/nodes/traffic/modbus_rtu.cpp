#include "nodes/traffic/modbus_rtu.hpp"

#include "core/crc.hpp"

namespace citygate::fw::traffic {

const char* refusalName(Refusal r) {
  switch (r) {
    case Refusal::None:
      return "none";
    case Refusal::TooShort:
      return "too_short";
    case Refusal::TooLong:
      return "too_long";
    case Refusal::BadCrc:
      return "bad_crc";
    case Refusal::Broadcast:
      return "broadcast";
    case Refusal::OtherUnit:
      return "other_unit";
    case Refusal::IllegalFunction:
      return "illegal_function";
    case Refusal::IllegalValue:
      return "illegal_value";
    case Refusal::IllegalAddress:
      return "illegal_address";
  }
  return "?";
}

Request parseRequest(const uint8_t* frame, size_t size, uint8_t unitId, uint16_t registerCount) {
  Request r{Refusal::None, 0, 0, 0, 0};
  if (size < 4) {
    r.refusal = Refusal::TooShort;
    return r;
  }
  if (size > kMaxFrame) {
    r.refusal = Refusal::TooLong;
    return r;
  }
  r.unit = frame[0];
  r.function = frame[1];
  const uint16_t crc = static_cast<uint16_t>(frame[size - 2] | (frame[size - 1] << 8));
  if (crc16Modbus(frame, size - 2) != crc) {
    r.refusal = Refusal::BadCrc;
    return r;
  }
  if (r.unit == 0) {
    r.refusal = Refusal::Broadcast;
    return r;
  }
  if (r.unit != unitId) {
    r.refusal = Refusal::OtherUnit;
    return r;
  }
  if (r.function != 0x04) {
    r.refusal = Refusal::IllegalFunction;
    return r;
  }
  if (size != kReadRequestSize) {
    r.refusal = Refusal::IllegalValue;
    return r;
  }
  r.address = static_cast<uint16_t>((frame[2] << 8) | frame[3]);
  r.quantity = static_cast<uint16_t>((frame[4] << 8) | frame[5]);
  if (r.quantity == 0 || r.quantity > kMaxReadRegisters) {
    r.refusal = Refusal::IllegalValue;
    return r;
  }
  if (static_cast<uint32_t>(r.address) + r.quantity > registerCount) {
    r.refusal = Refusal::IllegalAddress;
    return r;
  }
  return r;
}

size_t buildReply(const Request& request, const uint16_t* registers, uint16_t registerCount, uint8_t* out,
                  size_t capacity) {
  if (!request.reply()) return 0;
  size_t n = 0;
  if (request.refusal != Refusal::None) {
    if (capacity < 5) return 0;
    out[n++] = request.unit;
    out[n++] = static_cast<uint8_t>(request.function | 0x80);
    out[n++] = request.exceptionCode();
  } else {
    if (request.quantity == 0 || request.quantity > kMaxReadRegisters ||
        static_cast<uint32_t>(request.address) + request.quantity > registerCount) {
      return 0;  // not a request parseRequest() accepted
    }
    const size_t need = 3u + 2u * request.quantity + 2u;
    if (capacity < need) return 0;
    out[n++] = request.unit;
    out[n++] = request.function;
    out[n++] = static_cast<uint8_t>(2 * request.quantity);
    for (uint16_t i = 0; i < request.quantity; ++i) {
      const uint16_t v = registers[request.address + i];
      out[n++] = static_cast<uint8_t>(v >> 8);
      out[n++] = static_cast<uint8_t>(v);
    }
  }
  const uint16_t crc = crc16Modbus(out, n);
  out[n++] = static_cast<uint8_t>(crc);
  out[n++] = static_cast<uint8_t>(crc >> 8);
  return n;
}

uint32_t t35Micros(uint32_t baud) {
  if (baud == 0) return 1750;
  if (baud > 19200) return 1750;
  // 3.5 characters of 11 bits: 38.5 bit times, rounded up.
  return static_cast<uint32_t>((38500000ull + baud - 1) / baud);
}

uint32_t frameGapMs(uint32_t baud) {
  return (t35Micros(baud) + 999u) / 1000u + 1u;
}

RtuSlave::RtuSlave(hal::Uart& uart, hal::Clock& clock, uint8_t unitId, const uint16_t* registers,
                   uint16_t registerCount)
    : uart_(uart),
      clock_(clock),
      unitId_(unitId),
      registers_(registers),
      registerCount_(registerCount),
      gapMs_(frameGapMs(uart.baud())) {}

void RtuSlave::endFrame() {
  ++counters_.frames;
  Request req{};
  if (overflow_) {
    req.refusal = Refusal::TooLong;
  } else {
    req = parseRequest(frame_, size_, unitId_, registerCount_);
    if (req.refusal == Refusal::BadCrc && size_ > kReadRequestSize) {
      // Another station's frame and a request to this node with a gap under the slave's
      // millisecond-rounded silence: the request is the frame's tail.
      const Request tail = parseRequest(frame_ + size_ - kReadRequestSize, kReadRequestSize, unitId_, registerCount_);
      if (tail.reply()) {
        req = tail;
        ++counters_.tailRequests;
      }
    }
  }
  ++counters_.refused[static_cast<size_t>(req.refusal)];
  size_ = 0;
  overflow_ = false;
  open_ = false;
  if (!req.reply()) return;
  uint8_t reply[kMaxFrame];
  const size_t n = buildReply(req, registers_, registerCount_, reply, sizeof reply);
  if (n == 0) return;
  if (!uart_.write(reply, n)) {
    ++counters_.sendFailures;
    return;
  }
  if (req.refusal == Refusal::None) {
    ++counters_.answered;
  } else {
    ++counters_.exceptions;
  }
}

uint32_t RtuSlave::poll() {
  uint8_t chunk[64];
  for (;;) {
    const uint32_t now = clock_.nowMs();
    if (open_ && hal::elapsed(lastByteMs_, now) >= gapMs_) {
      // The silence came before these bytes (if any): the frame so far is whole.
      endFrame();
    }
    const size_t got = uart_.read(chunk, sizeof chunk);
    if (got == 0) break;
    for (size_t i = 0; i < got; ++i) {
      if (size_ < kMaxFrame) {
        frame_[size_++] = chunk[i];
      } else {
        overflow_ = true;
      }
    }
    open_ = true;
    lastByteMs_ = now;
  }
  if (!open_) return 0;
  const uint32_t since = hal::elapsed(lastByteMs_, clock_.nowMs());
  if (since >= gapMs_) {
    endFrame();
    return 0;
  }
  return gapMs_ - since;
}

}  // namespace citygate::fw::traffic
