#include "ports/host/air_sim_sensors.hpp"

#include <string.h>

#include "core/crc.hpp"

namespace citygate::fw::host {

namespace {

void putWord(uint8_t* p, uint16_t w) {
  p[0] = static_cast<uint8_t>(w >> 8);
  p[1] = static_cast<uint8_t>(w);
  p[2] = crc8Sensirion(p, 2);
}

// IEEE-754 single precision of tenths / 10 (the SPS30's float output format, big-endian words).
uint32_t floatBitsOfTenths(int32_t tenths) {
  const float v = static_cast<float>(tenths) / 10.0f;
  uint32_t bits = 0;
  memcpy(&bits, &v, sizeof bits);
  return bits;
}

}  // namespace

// ---- SPS30 ----

hal::I2c::Result SimSps30::write(const uint8_t* data, size_t size) {
  if (fault == SimFault::Absent || size < 2) return hal::I2c::Result::Nack;
  pointer_ = static_cast<uint16_t>(data[0] << 8 | data[1]);
  switch (pointer_) {
    case 0x0010:  // start measurement: one argument word and its CRC
      if (size != 5 || crc8Sensirion(data + 2, 2) != data[4]) {
        ++badCommands;
        return hal::I2c::Result::Nack;
      }
      format = static_cast<uint16_t>(data[2] << 8 | data[3]);
      if (format != 0x0300 && format != 0x0500) {
        ++badCommands;
        return hal::I2c::Result::Nack;
      }
      measuring = true;
      break;
    case 0x0104:  // stop measurement
      measuring = false;
      break;
    case 0x0202:  // read data-ready flag
    case 0x0300:  // read measured values
      if (size != 2) {
        ++badCommands;
        return hal::I2c::Result::Nack;
      }
      break;
    default:
      ++badCommands;
      return hal::I2c::Result::Nack;
  }
  ++commands;
  return hal::I2c::Result::Ok;
}

hal::I2c::Result SimSps30::read(uint8_t* out, size_t size) {
  if (fault == SimFault::Absent || values == nullptr) return hal::I2c::Result::Nack;
  uint8_t reply[60];
  size_t n = 0;
  if (pointer_ == 0x0202) {
    putWord(reply, (measuring && fault != SimFault::NotReady) ? 1 : 0);
    n = 3;
  } else if (pointer_ == 0x0300 && measuring) {
    // Mass PM1.0, PM2.5, PM4.0, PM10; number PM0.5..PM10; typical size (the last six: fixed).
    const int32_t tenths[10] = {values->pm1, values->pm25, values->pm4, values->pm10, 400, 450, 460, 462, 463, 6};
    if (format == 0x0500) {  // unsigned 16-bit integers: ug/m3, #/cm3, nm for the size
      for (size_t i = 0; i < 10; ++i) {
        const int32_t v = i == 9 ? 600 : (tenths[i] + 5) / 10;
        putWord(reply + 3 * i, static_cast<uint16_t>(v > 65535 ? 65535 : v));
      }
      n = 30;
    } else {  // big-endian IEEE-754 floats, two words each
      for (size_t i = 0; i < 10; ++i) {
        const uint32_t bits = floatBitsOfTenths(tenths[i]);
        putWord(reply + 6 * i, static_cast<uint16_t>(bits >> 16));
        putWord(reply + 6 * i + 3, static_cast<uint16_t>(bits));
      }
      n = 60;
    }
  } else {
    return hal::I2c::Result::Nack;
  }
  if (size > n) return hal::I2c::Result::Nack;  // the master reads at most what there is
  if (fault == SimFault::BadCrc) reply[size >= 6 ? 5 : 2] ^= 0x01;
  memcpy(out, reply, size);
  return hal::I2c::Result::Ok;
}

// ---- SHT3x ----

uint16_t SimSht3x::temperatureTicks(int32_t centi) {
  // T = -45 + 175 x ticks / 65535  ->  ticks = (T + 45) x 65535 / 175
  int64_t t = (static_cast<int64_t>(centi) + 4500) * 65535;
  t = (t + 8750) / 17500;
  return static_cast<uint16_t>(t < 0 ? 0 : (t > 65535 ? 65535 : t));
}

uint16_t SimSht3x::humidityTicks(int32_t centi) {
  int64_t t = (static_cast<int64_t>(centi) * 65535 + 5000) / 10000;
  return static_cast<uint16_t>(t < 0 ? 0 : (t > 65535 ? 65535 : t));
}

hal::I2c::Result SimSht3x::write(const uint8_t* data, size_t size) {
  if (fault == SimFault::Absent) return hal::I2c::Result::Nack;
  if (size != 2 || data[0] != 0x24 || data[1] != 0x00) {  // single shot, high repeatability, no stretching
    ++badCommands;
    return hal::I2c::Result::Nack;
  }
  ++commands;
  pending_ = true;
  busy_ = busyReads;
  return hal::I2c::Result::Ok;
}

hal::I2c::Result SimSht3x::read(uint8_t* out, size_t size) {
  if (fault == SimFault::Absent || fault == SimFault::NotReady || !pending_ || values == nullptr) {
    return hal::I2c::Result::Nack;
  }
  if (busy_ > 0) {
    --busy_;
    return hal::I2c::Result::Nack;  // still measuring: the read header is not acknowledged
  }
  uint8_t reply[6];
  putWord(reply, temperatureTicks(values->temperatureCenti));
  putWord(reply + 3, humidityTicks(values->humidityCenti));
  if (fault == SimFault::BadCrc) reply[5] ^= 0x01;
  if (size > sizeof reply) return hal::I2c::Result::Nack;
  memcpy(out, reply, size);
  pending_ = false;
  return hal::I2c::Result::Ok;
}

// ---- the bus ----

SimAirBus::SimAirBus() {
  sps30.values = &values;
  sht3x.values = &values;
}

hal::I2c::Result SimAirBus::write(uint8_t address, const uint8_t* data, size_t size) {
  if (address == SimSps30::kAddress) return sps30.write(data, size);
  if (address == SimSht3x::kAddress) return sht3x.write(data, size);
  return Result::Nack;
}

hal::I2c::Result SimAirBus::read(uint8_t address, uint8_t* out, size_t size) {
  if (address == SimSps30::kAddress) return sps30.read(out, size);
  if (address == SimSht3x::kAddress) return sht3x.read(out, size);
  return Result::Nack;
}

}  // namespace citygate::fw::host
