// RTU framing: which bytes on an RTU line answer the one request outstanding. One engine for
// serial RTU and RTU over TCP (serial device servers); the bytes come from a ByteLink.
//
// An RTU answer carries no transaction id: a late answer to an earlier request looks like the
// answer to the next one. So an answer is tied to its request by its content AND by the silence
// around it:
//  * Before every request the line must have been silent for the inter-frame gap (t3.5 from the
//    baud rate; a small fixed guard over TCP, where timing is blurred). Anything that arrives
//    meanwhile is discarded and counted.
//  * Frames are delimited by length (from the function code and the byte count). A frame is taken
//    only when it matches the request: unit, function or its exception form, byte count for the
//    quantity asked, CRC. A complete frame that does not match (another unit, another function,
//    another quantity) is skipped, counted, and the wait goes on: the real answer may follow.
//    Bytes that cannot be framed are dropped up to the next silence. A damaged frame with this
//    request's header fails the request at once (BadFrame).
//  * A matching frame followed by more bytes within the gap is ambiguous (a late answer with the
//    real one right behind it): discarded and counted, never taken.
//  * Only a late answer with the same unit and function as a request can pass for its answer. So
//    after a request to a unit fails (timeout, no matching answer), that unit and function are
//    UNSETTLED: the next such request waits until the line has been quiet for the settle period
//    (the request's response timeout, capped at RtuTiming::maxSettle; given up, with BadFrame,
//    when the line is not quiet within three settle periods), and its matching answer must be
//    followed by a settle period of silence before it is taken; that answer settles them again.
//    An exchange that meets stray bytes or a discarded frame is treated the same way. Other
//    units' requests are not slowed down by a dead or late device: a late frame of another unit
//    can never match them (a scan of 247 units costs no settle periods). An unsettled unit and
//    function is forgotten after RtuTiming::forgetAfter.
//
// What this buys: a device that answers once late (800 ms against a 300 ms timeout, requests
// queueing behind it) has its late answer either drained before its next request, discarded as
// foreign in another unit's exchange, or seen as one of two frames within a settle period, and
// never published as another request's answer; the device is read again at the next poll. The
// limit, which no RTU master can remove: an answer later than its request's timeout plus two
// settle periods, with the same unit and function as the request then outstanding, and the real
// answer to that one later than a settle period behind it.
//
// Blocking; runs on the bus worker thread. The pure helpers are exposed for tests and the fuzz
// targets.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "inputs/modbus/link.hpp"
#include "inputs/modbus/transport.hpp"

namespace citygate::modbus {

struct RtuRequest {
  std::uint8_t unit = 1;
  std::uint8_t function = 0x03;
  std::uint16_t address = 0;
  std::uint16_t count = 1;
  // A write (05, 06, 16): its answer is the unit, the function and these four bytes of the
  // request echoed (address, and value or quantity), then the CRC.
  bool write = false;
  std::array<std::uint8_t, 4> echo{};
};

std::uint8_t functionFor(pb::RegisterTable table);
std::array<std::uint8_t, 8> encodeRtuRequest(const RtuRequest& request);
// Data bytes of the answer to a read `request` (registers: 2 per register; bits: 8 per byte).
std::size_t answerDataBytes(const RtuRequest& request);
// The whole answer frame to `request`, CRC included (a write's echo: 8 bytes).
std::size_t answerBytes(const RtuRequest& request);
// The RTU frame of a write: unit, the PDU (transport.hpp), CRC.
std::vector<std::uint8_t> encodeRtuWrite(std::uint8_t unit, const WritePdu& pdu);

enum class FrameVerdict : std::uint8_t {
  NeedMore,   // not enough bytes to decide
  Answer,     // a complete frame that answers the request
  Exception,  // a complete exception frame for the request's unit and function
  Foreign,    // a complete, intact frame that does not answer the request (skip `length` bytes)
  Damaged,    // bytes that cannot be framed, or a frame whose CRC fails (drop up to a silence)
};

struct FrameCheck {
  FrameVerdict verdict = FrameVerdict::NeedMore;
  std::size_t length = 0;  // Answer, Exception, Foreign
  int exception = 0;       // Exception
  bool ours = false;       // Damaged: the header is this request's (its answer, hurt on the wire)
  std::string why;         // Foreign, Damaged
};

// Examines the frame at the start of `in` against `request`. Pure.
FrameCheck checkRtuFrame(std::span<const std::uint8_t> in, const RtuRequest& request);

// The registers (or bits, one per element as 0/1) of an Answer frame into out[0..count).
void decodeRtuAnswer(std::span<const std::uint8_t> frame, const RtuRequest& request, std::span<std::uint16_t> out);

struct RtuTiming {
  std::chrono::microseconds gap{1750};    // silence that ends a frame and precedes a request
  std::chrono::microseconds charTime{0};  // wire time of one character (0 over TCP)
  std::chrono::milliseconds maxSettle{2000};
  std::chrono::seconds forgetAfter{60};  // an unsettled unit and function, when not asked again
};

// t3.5 from the baud rate (1.75 ms above 19200 baud, as the serial line spec fixes it).
RtuTiming serialRtuTiming(std::uint32_t baud, std::uint32_t bitsPerChar);
// RTU over TCP: timing is blurred by the network; a fixed guard.
RtuTiming rtuOverTcpTiming();

class RtuTransport final : public Transport {
 public:
  RtuTransport(std::unique_ptr<ByteLink> link, RtuTiming timing);
  ~RtuTransport() override;

  ReadError connect() override;
  void close() override;
  bool isOpen() const override;
  ReadError read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds timeout, std::span<std::uint16_t> out) override;
  // A write is one more exchange: the same silence before it, the same rules for its answer (the
  // echo must match, else it is a foreign frame), the same settle treatment after a failure.
  ReadError write(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address,
                  std::span<const std::uint16_t> values, std::chrono::milliseconds timeout) override;
  bool canWrite() const override { return true; }
  std::vector<DiscardedFrames> takeDiscarded() override { return std::exchange(discarded_, {}); }
  std::string describe() const override;

  // Whether the next request to `unit` with `function` gets the settle treatment (see above).
  bool unsettled(std::uint8_t unit, std::uint8_t function) const;

 private:
  using Clock = ByteLink::Clock;

  struct Unsettled {
    std::uint8_t unit = 0;
    std::uint8_t function = 0;
    Clock::time_point since;
  };

  // One request and its answer, with the unsettled bookkeeping around exchange().
  ReadError transact(const RtuRequest& req, std::span<const std::uint8_t> frame, std::chrono::milliseconds timeout,
                     std::span<std::uint16_t> out);
  ReadError exchange(const RtuRequest& req, std::span<const std::uint8_t> frame, std::chrono::milliseconds timeout,
                     std::span<std::uint16_t> out);
  ReadError waitForQuiet(Clock::duration settle, std::uint8_t asked);
  ReadError skipToSilence(Clock::time_point hardDeadline);
  ReadError receiveOrSilence(std::vector<std::uint8_t>& into, Clock::time_point until);
  void discardOne(std::string why, std::uint8_t unit);
  ReadError linkFailed(ReadError e);

  std::unique_ptr<ByteLink> link_;
  RtuTiming timing_;
  std::vector<Unsettled> unsettled_;               // a few entries: units whose request failed lately
  bool careful_ = false;                           // this exchange: settle periods before and after the answer
  std::optional<Clock::time_point> lastActivity_;  // last byte seen or sent; none since the link opened
  std::vector<std::uint8_t> rx_;
  std::vector<std::uint8_t> scratch_;
  std::vector<DiscardedFrames> discarded_;
  std::uint64_t discardedInRead_ = 0;
  std::string lastDiscard_;
};

}  // namespace citygate::modbus
