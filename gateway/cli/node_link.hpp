// citygatectl's side of a sensor node's service UART (firmware/README.md "Service UART"): the
// frames (SLIP-delimited, type, seq, length, payload, CRC-32), the serial port (termios raw, 8N1,
// 115200 baud by default) and one request/reply exchange with a timeout. The node's own
// implementation is firmware/core/service_frame.*; the two are written apart and meet in the
// integration test (tests/integration/test_firmware_node_cli.py).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::cli::node {

inline constexpr std::uint32_t kServiceBaud = 115200;
inline constexpr std::size_t kMaxPayload = 256;

enum class Type : std::uint8_t { Show = 0x01, Provision = 0x02, Reset = 0x03, Counters = 0x04, Error = 0xFF };
inline constexpr std::uint8_t kReplyBit = 0x80;

// The node's reasons for an ERROR reply, by code ("bad_crc", "invalid", ...; "reason 42" when
// unknown to this citygatectl).
std::string reasonName(std::uint8_t code);

std::uint32_t crc32(std::string_view bytes);

// One frame as sent: END, the escaped frame, END.
std::string encodeFrame(std::uint8_t type, std::uint8_t seq, std::string_view payload);

struct Frame {
  std::uint8_t type = 0;
  std::uint8_t seq = 0;
  std::string payload;
};

// Incremental: feed() any piece of the byte stream; every END that closes a frame gives a frame,
// or an error saying what was wrong with the bytes ("CRC does not match", ...). END END gives
// nothing.
class FrameDecoder {
 public:
  struct Event {
    std::optional<Frame> frame;
    std::string error;  // when there is no frame
  };
  std::vector<Event> feed(std::string_view bytes);

 private:
  Event finish();
  std::string buffer_;
  bool escaped_ = false;
  bool badEscape_ = false;
};

// An ERROR reply's payload: reason and text.
struct NodeError {
  std::uint8_t reason = 0;
  std::string text;
};
NodeError parseError(std::string_view payload);

// The outcome of one exchange.
struct Exchange {
  enum class Outcome : std::uint8_t {
    Reply,         // `reply` is the node's answer (its type may be Error: the node refused)
    Timeout,       // nothing (or nothing for us) within the timeout
    FrameRefused,  // the node could not read our frame (its ERROR with seq 0: `reply`)
    BadReply,      // bytes came back that are no frame (`detail`)
    Interrupted,   // Ctrl-C
    IoError,       // read/write failed (`detail`)
  };
  Outcome outcome = Outcome::Timeout;
  Frame reply;
  std::string detail;
};

class SerialPort {
 public:
  SerialPort() = default;
  ~SerialPort();
  SerialPort(const SerialPort&) = delete;
  SerialPort& operator=(const SerialPort&) = delete;

  // Opens `path` raw at `baud` 8N1 (no flow control, no modem lines). On failure: false, `error`
  // one line, `exitCode` (4 permission, 5 no such port, 1 otherwise: not a terminal, bad baud).
  bool open(const std::string& path, std::uint32_t baud, std::string& error, int& exitCode);
  // Sends `type` with `payload` and waits up to `timeout` for the reply of the same seq.
  Exchange exchange(Type type, std::string_view payload, std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::uint8_t seq_ = 0;
};

}  // namespace citygate::cli::node
