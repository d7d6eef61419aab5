#include "nodes/air/sensors.hpp"

#include "citygate/v1/node_format.hpp"
#include "core/crc.hpp"

namespace citygate::fw::air {

namespace nf = citygate::node_format;

namespace {

// Counts a failed reading in the sensor's statistics; returns `s`.
SensorStatus countFailure(SensorStats& stats, SensorStatus s) {
  switch (s) {
    case SensorStatus::Nack:
      ++stats.nacks;
      break;
    case SensorStatus::CrcError:
      ++stats.crcErrors;
      break;
    case SensorStatus::NotReady:
      ++stats.notReady;
      break;
    case SensorStatus::BadValue:
      ++stats.badValues;
      break;
    case SensorStatus::Ok:
      break;
  }
  return s;
}

}  // namespace

void sensirionWords(const uint16_t* words, size_t count, uint8_t* out) {
  for (size_t i = 0; i < count; ++i) {
    out[3 * i] = static_cast<uint8_t>(words[i] >> 8);
    out[3 * i + 1] = static_cast<uint8_t>(words[i]);
    out[3 * i + 2] = crc8Sensirion(out + 3 * i, 2);
  }
}

bool sensirionUnpack(const uint8_t* in, size_t count, uint16_t* words) {
  for (size_t i = 0; i < count; ++i) {
    if (crc8Sensirion(in + 3 * i, 2) != in[3 * i + 2]) return false;
    words[i] = static_cast<uint16_t>((in[3 * i] << 8) | in[3 * i + 1]);
  }
  return true;
}

bool floatBitsToTenths(uint32_t bits, int32_t& tenths) {
  const uint32_t exponent = (bits >> 23) & 0xFF;
  const uint32_t fraction = bits & 0x7FFFFF;
  if (exponent == 0xFF) return false;  // NaN, infinity
  if ((bits >> 31) != 0) {
    if (exponent == 0 && fraction == 0) {  // -0
      tenths = 0;
      return true;
    }
    return false;
  }
  // value = mantissa x 2^(e - 150); mantissa has the hidden bit unless subnormal.
  const uint64_t mantissa = exponent == 0 ? fraction : (fraction | 0x800000u);
  const int32_t shift = (exponent == 0 ? 1 : static_cast<int32_t>(exponent)) - 150;
  const uint64_t scaled = mantissa * 10u;  // < 2^28
  uint64_t q = 0;
  if (shift >= 0) {
    if (shift > 8) {  // >= 2^28 x 2^9 > 2^31: saturate
      tenths = 0x7FFFFFFF;
      return true;
    }
    q = scaled << shift;
  } else if (shift > -40) {
    const uint32_t s = static_cast<uint32_t>(-shift);
    q = (scaled + (uint64_t{1} << (s - 1))) >> s;
  }
  tenths = q > 0x7FFFFFFFu ? 0x7FFFFFFF : static_cast<int32_t>(q);
  return true;
}

// ---- SPS30 ----

SensorStatus Sps30::count(SensorStatus s) {
  return countFailure(stats_, s);
}

SensorStatus Sps30::command(uint16_t cmd, const uint16_t* args, size_t argCount) {
  uint8_t buf[2 + 3 * 2];
  buf[0] = static_cast<uint8_t>(cmd >> 8);
  buf[1] = static_cast<uint8_t>(cmd);
  if (argCount > 2) argCount = 2;
  sensirionWords(args, argCount, buf + 2);
  return bus_.write(kAddress, buf, 2 + 3 * argCount) == hal::I2c::Result::Ok ? SensorStatus::Ok : SensorStatus::Nack;
}

SensorStatus Sps30::readWords(uint16_t cmd, uint16_t* words, size_t count) {
  if (command(cmd, nullptr, 0) != SensorStatus::Ok) return SensorStatus::Nack;
  uint8_t buf[3 * 20];
  if (count > 20) return SensorStatus::BadValue;
  if (bus_.read(kAddress, buf, 3 * count) != hal::I2c::Result::Ok) return SensorStatus::Nack;
  return sensirionUnpack(buf, count, words) ? SensorStatus::Ok : SensorStatus::CrcError;
}

SensorStatus Sps30::start() {
  const uint16_t arg = kFormatFloat;
  return count(command(kStartMeasurement, &arg, 1));
}

SensorStatus Sps30::read(Values& out) {
  ++stats_.reads;
  uint16_t ready = 0;
  SensorStatus s = readWords(kReadDataReady, &ready, 1);
  if (s != SensorStatus::Ok) return count(s);
  if ((ready & 0xFF) != 1) return count(SensorStatus::NotReady);
  // Ten big-endian floats: mass PM1.0, PM2.5, PM4.0, PM10 (ug/m3), then number concentrations
  // and the typical particle size, which the node does not send.
  uint16_t w[20];
  s = readWords(kReadValues, w, 20);
  if (s != SensorStatus::Ok) return count(s);
  int32_t tenths[4];
  for (size_t i = 0; i < 4; ++i) {
    const uint32_t bits = static_cast<uint32_t>(w[2 * i]) << 16 | w[2 * i + 1];
    if (!floatBitsToTenths(bits, tenths[i])) return count(SensorStatus::BadValue);
  }
  const auto& f = nf::air::layout(nf::air::Field::Pm1);  // the four PM fields share one layout
  out.pm1 = nf::toRaw(f, tenths[0], 10);
  out.pm25 = nf::toRaw(f, tenths[1], 10);
  out.pm4 = nf::toRaw(f, tenths[2], 10);
  out.pm10 = nf::toRaw(f, tenths[3], 10);
  return SensorStatus::Ok;
}

// ---- SHT3x ----

SensorStatus Sht3x::count(SensorStatus s) {
  return countFailure(stats_, s);
}

int32_t Sht3x::temperatureRaw(uint16_t ticks) {
  return nf::toRaw(nf::air::layout(nf::air::Field::Temperature), int64_t{175} * ticks - int64_t{45} * 65535, 65535);
}

int32_t Sht3x::humidityRaw(uint16_t ticks) {
  return nf::toRaw(nf::air::layout(nf::air::Field::RelativeHumidity), int64_t{100} * ticks, 65535);
}

SensorStatus Sht3x::trigger() {
  const uint8_t cmd[2] = {static_cast<uint8_t>(kSingleShotHigh >> 8), static_cast<uint8_t>(kSingleShotHigh)};
  return count(bus_.write(kAddress, cmd, 2) == hal::I2c::Result::Ok ? SensorStatus::Ok : SensorStatus::Nack);
}

SensorStatus Sht3x::fetch(Values& out) {
  ++stats_.reads;
  uint8_t buf[6];
  const hal::I2c::Result r = bus_.read(kAddress, buf, sizeof buf);
  // Without clock stretching the sensor NACKs its read header until the measurement is done:
  // the caller retries until its deadline and then counts a NACK.
  if (r == hal::I2c::Result::Nack) return count(SensorStatus::NotReady);
  if (r != hal::I2c::Result::Ok) return count(SensorStatus::Nack);
  uint16_t w[2];
  if (!sensirionUnpack(buf, 2, w)) return count(SensorStatus::CrcError);
  out.temperature = temperatureRaw(w[0]);
  out.humidity = humidityRaw(w[1]);
  return SensorStatus::Ok;
}

}  // namespace citygate::fw::air
