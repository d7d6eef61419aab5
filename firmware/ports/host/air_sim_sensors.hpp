// The air node's sensors, simulated: a Sensirion SPS30 (0x69) and an SHT3x (0x44) on a
// simulated I2C bus (hal::I2c), answering as their datasheets specify (16-bit command pointers,
// a CRC-8 after every 16-bit word, the SHT3x NACKing reads while it measures), with values set by
// the host node's scenario file (air_main.cpp) or a unit test, and faults on request (a bad CRC,
// an absent sensor).
//
// Freestanding like the node core (no POSIX, no heap): the air node's unit tests use it on the
// host and under qemu.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::host {

struct SimAirValues {
  // 0.1 ug/m3
  int32_t pm1 = 52;
  int32_t pm25 = 123;
  int32_t pm4 = 150;
  int32_t pm10 = 205;
  int32_t temperatureCenti = 1825;  // 0.01 degC
  int32_t humidityCenti = 5500;     // 0.01 %RH
};

enum class SimFault : uint8_t {
  None,
  Absent,    // NACKs every transfer
  BadCrc,    // the CRC of a word of every reply is wrong
  NotReady,  // SPS30: data-ready flag 0; SHT3x: NACKs every read
};

// What both sensors have: the values they report, a fault to show, what they were told.
struct SimSensor {
  SimAirValues* values = nullptr;
  SimFault fault = SimFault::None;
  uint32_t commands = 0;     // accepted commands
  uint32_t badCommands = 0;  // unknown pointers, bad argument CRC
};

class SimSps30 : public SimSensor {
 public:
  static constexpr uint8_t kAddress = 0x69;
  hal::I2c::Result write(const uint8_t* data, size_t size);
  hal::I2c::Result read(uint8_t* out, size_t size);

  bool measuring = false;
  uint16_t format = 0;  // the argument of the last start measurement

 private:
  uint16_t pointer_ = 0;
};

class SimSht3x : public SimSensor {
 public:
  static constexpr uint8_t kAddress = 0x44;
  hal::I2c::Result write(const uint8_t* data, size_t size);
  hal::I2c::Result read(uint8_t* out, size_t size);

  uint8_t busyReads = 1;  // reads NACKed after a trigger (the measurement time)

  // The datasheet's conversions, inverted: the raw ticks of a value (rounded, clamped).
  static uint16_t temperatureTicks(int32_t centiDegrees);
  static uint16_t humidityTicks(int32_t centiPercent);

 private:
  bool pending_ = false;
  uint8_t busy_ = 0;
};

// The bus: the two sensors; any other address NACKs.
class SimAirBus final : public hal::I2c {
 public:
  SimAirBus();
  Result write(uint8_t address, const uint8_t* data, size_t size) override;
  Result read(uint8_t address, uint8_t* out, size_t size) override;

  SimAirValues values;
  SimSps30 sps30;
  SimSht3x sht3x;
};

}  // namespace citygate::fw::host
