// ByteLink: the byte stream under a Modbus transport (a serial port or a TCP connection) and the
// clock its deadlines are measured on. The framing engines sit on top of it: RTU framing
// (rtu_framing.hpp) for serial RTU and RTU over TCP, MBAP framing (mbap.hpp) for Modbus TCP.
// Blocking with deadlines; used only on the bus worker thread. Unit tests and the fuzz target
// replace it with a scripted fake (chosen bytes at chosen times on a virtual clock).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "inputs/modbus/transport.hpp"

namespace citygate::modbus {

class ByteLink {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~ByteLink() = default;

  // Opens the link if it is closed, giving up at `until`. Errors are ErrorKind::Connection.
  virtual ReadError open(Clock::time_point until) = 0;
  virtual void close() = 0;
  virtual bool isOpen() const = 0;

  // Writes all of `bytes` (a request: a few bytes). Errors are ErrorKind::Connection; the caller
  // closes the link.
  virtual ReadError send(std::span<const std::uint8_t> bytes) = 0;

  // Waits until bytes arrive or `until` passes (returns at once when it has passed, after taking
  // whatever is already pending) and appends what arrived to `out`. Nothing appended and ok():
  // the deadline passed in silence. Errors (closed by the peer, reset, port gone) are
  // ErrorKind::Connection; the caller closes the link.
  virtual ReadError receive(std::vector<std::uint8_t>& out, Clock::time_point until) = 0;

  // The clock every deadline above is on (a fake's is virtual).
  virtual Clock::time_point now() const = 0;

  // For logs: "tcp 127.0.0.1:1502", "rtu-over-tcp 10.0.0.5:4001", "rtu /dev/ttyS1 9600 8E1".
  virtual std::string describe() const = 0;
};

// A TCP connection (Modbus TCP, RTU over TCP): non-blocking connect bounded by open()'s deadline,
// TCP_NODELAY. `kind` names it in describe().
std::unique_ptr<ByteLink> makeTcpLink(std::string host, std::uint32_t port, std::string kind);

// A serial port: libmodbus opens and configures it (termios: raw, baud, parity, data and stop
// bits; kernel RS-485 direction control when `rs485` and the port supports it); citygate reads
// and writes the file descriptor itself.
std::unique_ptr<ByteLink> makeSerialLink(const pb::SerialRtu& rtu);

// Bits on the wire per character: start + data + parity + stop.
std::uint32_t bitsPerCharacter(const pb::SerialRtu& rtu);

}  // namespace citygate::modbus
