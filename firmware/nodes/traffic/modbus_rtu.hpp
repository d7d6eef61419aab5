// The node's Modbus RTU slave: frames delimited by 3.5 characters of silence on the UART, one
// table (input registers 0..count-1, FC 0x04). Modbus over Serial Line V1.02 and the Application
// Protocol V1.1b3 (protocols.md 4.5, 5):
//
// - a frame with a bad CRC, for another unit, or broadcast (unit 0: reads are never broadcast)
//   gets no reply; one shorter than 4 bytes or longer than 256 neither;
// - any function but 0x04 -> exception 01 (the node has no coils, discrete inputs or holding
//   registers: 0x03 included);
// - FC 0x04 whose PDU is not 5 bytes -> exception 03; a quantity of 0 or over 125 -> 03;
//   start + quantity past the table -> 02 (checked in that order, as the specification's state
//   diagram does).
// Each refusal has its own counter. The slave's clock counts milliseconds, so it waits t3.5
// rounded up plus 1 ms: a master that leaves exactly t3.5 between another station's frame and a
// request to this node can run them together. A frame whose CRC fails is therefore also tried
// for a read request in its last 8 bytes (counted in tailRequests): a request for this unit
// with a good CRC there is answered.
//
// parseRequest() and buildReply() are pure functions over bytes (tests/fuzz/fw_traffic_modbus.cpp).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::traffic {

enum class Refusal : uint8_t {
  None = 0,
  TooShort,         // < 4 bytes: no reply
  TooLong,          // > 256 bytes: no reply
  BadCrc,           // no reply
  Broadcast,        // unit 0: no reply
  OtherUnit,        // no reply
  IllegalFunction,  // exception 01
  IllegalValue,     // exception 03: a malformed PDU, quantity 0 or > 125
  IllegalAddress,   // exception 02
};
constexpr size_t kRefusalCount = 9;
const char* refusalName(Refusal r);

constexpr size_t kMaxFrame = 256;
constexpr size_t kReadRequestSize = 8;  // unit, function, address (2), quantity (2), CRC (2)
constexpr uint16_t kMaxReadRegisters = 125;

struct Request {
  Refusal refusal;
  uint8_t unit;
  uint8_t function;
  uint16_t address;
  uint16_t quantity;
  bool reply() const {
    return refusal == Refusal::None || refusal == Refusal::IllegalFunction || refusal == Refusal::IllegalValue ||
           refusal == Refusal::IllegalAddress;
  }
  uint8_t exceptionCode() const {
    return refusal == Refusal::IllegalFunction  ? 0x01
           : refusal == Refusal::IllegalAddress ? 0x02
           : refusal == Refusal::IllegalValue   ? 0x03
                                                : 0x00;
  }
};

// One whole RTU frame (address .. CRC) against a slave with `unitId` serving `registerCount`
// input registers.
Request parseRequest(const uint8_t* frame, size_t size, uint8_t unitId, uint16_t registerCount);

// The reply to a request whose reply() is true: normal (registers[address .. address+quantity))
// or exception. Returns its size (0: no reply, or `capacity` too small).
size_t buildReply(const Request& request, const uint16_t* registers, uint16_t registerCount, uint8_t* out,
                  size_t capacity);

// t3.5 in microseconds at `baud` (11-bit characters; 1750 above 19200 baud), and the silence the
// slave waits on its millisecond clock before it takes a frame as ended: t3.5 rounded up, plus
// the clock's own millisecond (two readings 1 ms apart may be 0.0 .. 1.99 ms apart).
uint32_t t35Micros(uint32_t baud);
uint32_t frameGapMs(uint32_t baud);

struct SlaveCounters {
  uint32_t frames;        // frames delimited
  uint32_t answered;      // normal replies
  uint32_t exceptions;    // exception replies
  uint32_t sendFailures;  // the UART refused a reply
  uint32_t tailRequests;  // a request found at the end of a frame whose CRC failed (above)
  uint32_t refused[kRefusalCount];
};

class RtuSlave {
 public:
  RtuSlave(hal::Uart& uart, hal::Clock& clock, uint8_t unitId, const uint16_t* registers, uint16_t registerCount);

  // Reads what the UART has; a frame followed by the silence is answered. Returns the ms after
  // which it wants to be called again while a frame is open (0: nothing open).
  uint32_t poll();

  const SlaveCounters& counters() const { return counters_; }

 private:
  void endFrame();

  hal::Uart& uart_;
  hal::Clock& clock_;
  uint8_t unitId_;
  const uint16_t* registers_;
  uint16_t registerCount_;
  uint32_t gapMs_;
  uint8_t frame_[kMaxFrame];
  size_t size_ = 0;
  bool overflow_ = false;
  bool open_ = false;
  uint32_t lastByteMs_ = 0;
  SlaveCounters counters_{};
};

}  // namespace citygate::fw::traffic
