// The air node's sensors on I2C (hal::I2c): a Sensirion SPS30 particulate-matter sensor and a
// Sensirion SHT3x temperature / humidity sensor. Every 16-bit word on the wire is followed by
// its CRC-8 (poly 0x31, init 0xFF: crc8Sensirion). A reply with a bad CRC or a NACK is counted
// and its values are not used: the node sends the field as the format's fault value
// (node_format: 0xFFFF, 0x8000 for the temperature), never a wrong number.
//
// Values are node_format raw values (integers): PM in 0.1 ug/m3, temperature in 0.01 degC,
// humidity in 0.01 %RH. The SPS30's floats are converted from their IEEE-754 bits with integer
// maths (no floating point on the node).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::air {

enum class SensorStatus : uint8_t { Ok, NotReady, Nack, CrcError, BadValue };

struct SensorStats {
  uint32_t reads = 0;
  uint32_t nacks = 0;
  uint32_t crcErrors = 0;
  uint32_t notReady = 0;
  uint32_t badValues = 0;  // a float that is negative, NaN or infinite
};

// Sensirion's 16-bit-word framing: out = [hi, lo, crc] per word.
void sensirionWords(const uint16_t* words, size_t count, uint8_t* out);
// Checks and strips the CRCs of `count` words of `in` (3 bytes each); false on a bad CRC.
bool sensirionUnpack(const uint8_t* in, size_t count, uint16_t* words);

// Tenths of the IEEE-754 single-precision value of `bits`, rounded half up; false for a negative
// value, a NaN or an infinity. Saturates at 0x7FFFFFFF.
bool floatBitsToTenths(uint32_t bits, int32_t& tenths);

class Sps30 {
 public:
  static constexpr uint8_t kAddress = 0x69;
  static constexpr uint16_t kStartMeasurement = 0x0010;
  static constexpr uint16_t kStopMeasurement = 0x0104;
  static constexpr uint16_t kReadDataReady = 0x0202;
  static constexpr uint16_t kReadValues = 0x0300;
  static constexpr uint16_t kFormatFloat = 0x0300;  // argument of start measurement

  struct Values {
    int32_t pm1 = 0;  // node_format raw: 0.1 ug/m3
    int32_t pm25 = 0;
    int32_t pm4 = 0;
    int32_t pm10 = 0;
  };

  explicit Sps30(hal::I2c& bus) : bus_(bus) {}
  // Starts continuous measurement with float output (the first values about 1 s later).
  SensorStatus start();
  // Reads the data-ready flag, then the values when ready.
  SensorStatus read(Values& out);
  const SensorStats& stats() const { return stats_; }

 private:
  SensorStatus command(uint16_t cmd, const uint16_t* args, size_t argCount);
  SensorStatus readWords(uint16_t cmd, uint16_t* words, size_t count);
  SensorStatus count(SensorStatus s);

  hal::I2c& bus_;
  SensorStats stats_;
};

class Sht3x {
 public:
  static constexpr uint8_t kAddress = 0x44;
  static constexpr uint16_t kSingleShotHigh = 0x2400;  // high repeatability, no clock stretching
  static constexpr uint32_t kMeasurementMs = 16;       // max. duration at high repeatability

  struct Values {
    int32_t temperature = 0;  // node_format raw: 0.01 degC
    int32_t humidity = 0;     // 0.01 %RH
  };

  explicit Sht3x(hal::I2c& bus) : bus_(bus) {}
  // Starts a single-shot measurement; fetch() after kMeasurementMs.
  SensorStatus trigger();
  // The result (a NACK while the sensor is still measuring: NotReady, retry later).
  SensorStatus fetch(Values& out);
  // The caller's deadline passed with the sensor still NACKing: counted as a NACK.
  void noAnswer() { ++stats_.nacks; }
  const SensorStats& stats() const { return stats_; }

  // The conversions of the datasheet, as node_format raw values (rounded, saturated).
  static int32_t temperatureRaw(uint16_t ticks);  // T = -45 + 175 x ticks / 65535
  static int32_t humidityRaw(uint16_t ticks);     // RH = 100 x ticks / 65535

 private:
  SensorStatus count(SensorStatus s);

  hal::I2c& bus_;
  SensorStats stats_;
};

}  // namespace citygate::fw::air
