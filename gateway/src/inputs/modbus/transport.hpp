// Transport: the seam over one Modbus link (a serial port, a TCP endpoint, or RTU framing over
// TCP). Blocking; used only on its bus worker thread. Unit tests replace it with a fake.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "citygate/v1/config.pb.h"

namespace citygate::modbus {

namespace pb = citygate::v1;

enum class ErrorKind : std::uint8_t {
  None,
  Timeout,     // no (complete) answer in time
  Exception,   // the device answered with an exception code
  BadFrame,    // CRC error, garbage, wrong unit/function, stale transaction id
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

class Transport {
 public:
  virtual ~Transport() = default;

  // Opens the link if it is not open. Errors are ErrorKind::Connection.
  virtual ReadError connect() = 0;
  virtual void close() = 0;
  virtual bool isOpen() const = 0;

  // Reads `count` registers (or bits, one per element as 0/1, for coils and discrete inputs).
  virtual ReadError read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                         std::chrono::milliseconds timeout, std::span<std::uint16_t> out) = 0;

  // Discards whatever is pending on the link (after garbage or a late answer).
  virtual void flush() = 0;

  // A human name for logs ("tcp 127.0.0.1:1502", "rtu /dev/ttyS1 9600 8E1").
  virtual std::string describe() const = 0;
};

// libmodbus for TCP and serial RTU; citygate's own framing for RTU over TCP (libmodbus 3.1 has
// none).
std::unique_ptr<Transport> makeTransport(const pb::ModbusBus& bus);

// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), sent low byte first.
std::uint16_t crc16(std::span<const std::uint8_t> data);

// Parses an RTU response to a read request. Returns the number of bytes consumed (the whole
// frame) or 0 when more bytes are needed; sets `err` when the bytes cannot be a valid answer.
// Exposed for the fuzz target and unit tests.
std::size_t parseRtuReadResponse(std::span<const std::uint8_t> in, std::uint8_t unit, std::uint8_t function,
                                 std::uint16_t count, std::span<std::uint16_t> out, ReadError& err);

}  // namespace citygate::modbus
