// Transport: the seam over one Modbus link (a serial port, a TCP endpoint, or RTU framing over
// TCP). Blocking; used only on its bus worker thread. Unit tests replace it with a fake (or put a
// fake ByteLink under the real framing engines).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "citygate/v1/config.pb.h"

namespace citygate::modbus {

namespace pb = citygate::v1;

enum class ErrorKind : std::uint8_t {
  None,
  Timeout,     // no (complete) answer in time
  Exception,   // the device answered with an exception code
  BadFrame,    // only answers that do not match the request, or damaged or ambiguous ones
  Connection,  // the link itself failed (refused, reset, port gone)
};

struct ReadError {
  ErrorKind kind = ErrorKind::None;
  int exception = 0;  // Modbus exception code when kind == Exception
  std::string message;

  bool ok() const { return kind == ErrorKind::None; }
};

const char* errorKindName(ErrorKind k);
std::string exceptionName(int code);
// The PDU of a write (function code, then the bytes after it): 05 for one coil (0/1), 06 for one
// holding register, 16 for several (at most 123). The device's answer echoes the first four bytes
// after the function code. nullopt for a request that cannot be written. Pure; MBAP and RTU frame it.
struct WritePdu {
  std::uint8_t function = 0;
  std::vector<std::uint8_t> data;
  std::array<std::uint8_t, 4> echo() const { return {data[0], data[1], data[2], data[3]}; }
};
std::optional<WritePdu> encodeWritePdu(pb::RegisterTable table, std::uint16_t address,
                                       std::span<const std::uint16_t> values);

// "unit 3 on bus 'b': no answer within 500 ms" (exception, bad answer, link failed), for people.
std::string describeError(const ReadError& e, std::uint32_t unit, const std::string& bus,
                          std::chrono::milliseconds timeout);

// Frames received on a link and not taken as an answer: late answers drained before a request,
// stale transaction ids, frames from another unit or with another function or quantity, damaged
// frames, ambiguous frames. Counted by the unit they came from (the frame's own unit id when the
// frame is intact, else the unit asked), so the device that misbehaved is the one that shows it.
struct DiscardedFrames {
  std::uint8_t unit = 0;
  std::uint32_t frames = 0;
};

void addDiscarded(std::vector<DiscardedFrames>& to, std::uint8_t unit, std::uint32_t frames = 1);
std::uint64_t totalDiscarded(const std::vector<DiscardedFrames>& frames);

class Transport {
 public:
  virtual ~Transport() = default;

  // Opens the link if it is not open. Errors are ErrorKind::Connection.
  virtual ReadError connect() = 0;
  virtual void close() = 0;
  virtual bool isOpen() const = 0;

  // Reads `count` registers (or bits, one per element as 0/1, for coils and discrete inputs) and
  // returns only an answer tied to this request; the transport owns recovery after a late or
  // damaged answer (rtu_framing.hpp, mbap.hpp say how). Timeout: no answer in time; BadFrame:
  // only answers that do not match (unit, function, byte count, CRC, transaction id) or could
  // not be tied to the request; Connection: the link failed (it is closed, the next read
  // reopens it).
  virtual ReadError read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                         std::chrono::milliseconds timeout, std::span<std::uint16_t> out) = 0;

  // Writes `values` at `address`: one coil (0/1, function 05), one holding register (06) or
  // several (16). The device's echo must match the request; errors as for read(). A transport
  // that cannot write answers BadFrame "writes are not supported on ...".
  virtual ReadError write(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address,
                          std::span<const std::uint16_t> values, std::chrono::milliseconds timeout);
  // Whether write() is implemented.
  virtual bool canWrite() const { return false; }

  // Hands over, and forgets, the frames discarded since the last call.
  virtual std::vector<DiscardedFrames> takeDiscarded() { return {}; }

  // A human name for logs ("tcp 127.0.0.1:1502", "rtu /dev/ttyS1 9600 8E1").
  virtual std::string describe() const = 0;
};

// Modbus TCP: MBAP framing (mbap.hpp); serial RTU and RTU over TCP: RTU framing
// (rtu_framing.hpp), over a TCP connection or a serial port that libmodbus opens and configures.
std::unique_ptr<Transport> makeTransport(const pb::ModbusBus& bus);

// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), sent low byte first.
std::uint16_t crc16(std::span<const std::uint8_t> data);

}  // namespace citygate::modbus
