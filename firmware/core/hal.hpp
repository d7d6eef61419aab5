// The node's hardware layer: the only thing a port implements. The node core (firmware/core) and
// the nodes (firmware/nodes/*) see the hardware through these interfaces and nothing else, so the
// same code runs on a Cortex-M (firmware/ports/cortexm) and on the host, where it is the simulator
// (firmware/ports/host: UART = a pty, flash = a file, radio = a Semtech-UDP shim, sensors and lane
// detectors = a scenario file).
//
// Freestanding C++17: <stdint.h> and <stddef.h> only, no exceptions, no RTTI, no heap. Every call
// is non-blocking or bounded; a failure is a return value. Interfaces are abstract classes so a
// unit test passes a fake at this seam; a port's objects are statically allocated.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace citygate::fw::hal {

// Monotonic milliseconds since the node started; wraps after 49.7 days (compare with
// elapsed(), never with <).
class Clock {
 public:
  virtual uint32_t nowMs() = 0;

 protected:
  ~Clock() = default;
};

constexpr uint32_t elapsed(uint32_t since, uint32_t now) {
  return now - since;  // modular: correct across the wrap
}

// A byte stream (RS-485 for the Modbus node, the service UART of every node). read() returns
// what has arrived, never waits; write() queues the whole buffer or nothing.
class Uart {
 public:
  virtual size_t read(uint8_t* out, size_t capacity) = 0;
  virtual bool write(const uint8_t* data, size_t size) = 0;
  virtual uint32_t baud() const = 0;  // for inter-frame timing (Modbus RTU: 3.5 characters)

 protected:
  ~Uart() = default;
};

// An I2C master. Addresses are 7-bit. A transfer is one write, one read, or a write followed by
// a read with a repeated start (writeRead).
class I2c {
 public:
  enum class Result : uint8_t { Ok, Nack, BusError };
  virtual Result write(uint8_t address, const uint8_t* data, size_t size) = 0;
  virtual Result read(uint8_t address, uint8_t* out, size_t size) = 0;

 protected:
  ~I2c() = default;
};

// NOR flash as an MCU has it: erased sectors read 0xFF, a write can only clear bits, a sector is
// erased whole. Offsets are from the start of the node's data area (not the program).
class Flash {
 public:
  virtual uint32_t sectorSize() const = 0;
  virtual uint32_t sectorCount() const = 0;
  virtual bool erase(uint32_t sector) = 0;
  virtual bool write(uint32_t offset, const uint8_t* data, size_t size) = 0;
  virtual bool read(uint32_t offset, uint8_t* out, size_t size) = 0;

 protected:
  ~Flash() = default;
};

// A LoRa radio (class A node: transmit, then listen in RX1/RX2).
struct TxParams {
  uint32_t frequencyHz;
  uint8_t spreadingFactor;  // 7..12
  uint16_t bandwidthKhz;    // 125, 250
  int8_t powerDbm;
  uint32_t airtimeUs = 0;  // the frame's time on air (the node computes it): the uplink ends then
};

class Radio {
 public:
  // Starts a transmission; false when the radio is busy or the frame is too long. The frame ends
  // on air `params.airtimeUs` after the call: the node's RX windows count from there.
  virtual bool transmit(const uint8_t* frame, size_t size, const TxParams& params) = 0;
  // A frame received since the last call (0 when none, or when it does not fit `capacity`). The
  // node calls it in its RX windows (and drops what comes outside them).
  virtual size_t receive(uint8_t* out, size_t capacity) = 0;

 protected:
  ~Radio() = default;
};

// Lane detectors (inductive loops or radar behind GPIO/timer capture): the port turns the
// detector's edges into passages. On the host they come from the scenario file.
struct Passage {
  uint8_t lane;           // 1..8
  uint32_t atMs;          // Clock time the vehicle left the detector
  uint32_t occupiedMs;    // how long it occupied the detector
  uint16_t speedDecikmh;  // 0.1 km/h
  uint16_t lengthCm;
};

class LaneDetectors {
 public:
  // The next passage that has happened (atMs <= now), if any.
  virtual bool next(Passage& out) = 0;

 protected:
  ~LaneDetectors() = default;
};

// What the node's main loop may ask of the board.
class Board {
 public:
  // Sleep until an interrupt or at most maxMs (the host port: poll() on its file descriptors).
  virtual void idle(uint32_t maxMs) = 0;
  virtual void reset() = 0;  // a software reset (after provisioning)

 protected:
  ~Board() = default;
};

}  // namespace citygate::fw::hal
