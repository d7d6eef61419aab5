// The SPS30 and SHT3x drivers against the simulated devices (ports/host/air_sim_sensors.hpp):
// values, the datasheet conversions in integer maths, and a bad CRC or a NACK counted and never
// turned into a number.
#include "nodes/air/sensors.hpp"
#include "core/check.hpp"
#include "core/crc.hpp"
#include "ports/host/air_sim_sensors.hpp"

namespace air = citygate::fw::air;
namespace host = citygate::fw::host;

FW_TEST("sensors: Sensirion words carry a CRC-8 each") {
  const uint16_t w[2] = {0xBEEF, 0x0000};
  uint8_t b[6];
  air::sensirionWords(w, 2, b);
  FW_CHECK_EQ(b[2], 0x92);  // the datasheet's example
  FW_CHECK_EQ(b[5], 0x81);
  uint16_t back[2] = {};
  FW_CHECK(air::sensirionUnpack(b, 2, back));
  FW_CHECK_EQ(back[0], 0xBEEF);
  b[4] ^= 0x10;
  FW_CHECK(!air::sensirionUnpack(b, 2, back));
}

FW_TEST("sensors: IEEE-754 bits to tenths, integer maths") {
  int32_t t = -1;
  FW_CHECK(air::floatBitsToTenths(0x41450000u, t));  // 12.3125
  FW_CHECK_EQ(t, 123);
  FW_CHECK(air::floatBitsToTenths(0x00000000u, t));
  FW_CHECK_EQ(t, 0);
  FW_CHECK(air::floatBitsToTenths(0x3F800000u, t));  // 1.0
  FW_CHECK_EQ(t, 10);
  FW_CHECK(air::floatBitsToTenths(0x3D4CCCCDu, t));  // 0.05 -> 0.1 (half up; 0.05f is a hair above)
  FW_CHECK_EQ(t, 1);
  FW_CHECK(air::floatBitsToTenths(0x447A0000u, t));  // 1000.0
  FW_CHECK_EQ(t, 10000);
  FW_CHECK(air::floatBitsToTenths(0x00000001u, t));  // the smallest subnormal
  FW_CHECK_EQ(t, 0);
  FW_CHECK(air::floatBitsToTenths(0x7F7FFFFFu, t));  // the largest float: saturated
  FW_CHECK_EQ(t, 0x7FFFFFFF);
  FW_CHECK(!air::floatBitsToTenths(0xBF800000u, t));  // -1.0
  FW_CHECK(!air::floatBitsToTenths(0x7FC00000u, t));  // NaN
  FW_CHECK(!air::floatBitsToTenths(0x7F800000u, t));  // +inf
  FW_CHECK(air::floatBitsToTenths(0x80000000u, t));   // -0
  FW_CHECK_EQ(t, 0);
}

FW_TEST("sensors: SHT3x conversions as in the datasheet") {
  FW_CHECK_EQ(air::Sht3x::temperatureRaw(0), -4500);
  FW_CHECK_EQ(air::Sht3x::temperatureRaw(65535), 13000);
  FW_CHECK_EQ(air::Sht3x::temperatureRaw(0x6666), 2500);  // 26214: -45 + 175 x 0.4 = 25.00
  FW_CHECK_EQ(air::Sht3x::humidityRaw(65535), 10000);
  FW_CHECK_EQ(air::Sht3x::humidityRaw(0x8000), 5000);  // 50.0008 %
  FW_CHECK_EQ(air::Sht3x::humidityRaw(0), 0);
}

FW_TEST("sensors: SPS30 start, data ready, float values as node_format raw") {
  host::SimAirBus bus;
  air::Sps30 sps(bus);
  air::Sps30::Values v;
  FW_CHECK(sps.read(v) == air::SensorStatus::NotReady);  // not started: flag 0
  FW_CHECK(sps.start() == air::SensorStatus::Ok);
  FW_CHECK_EQ(bus.sps30.format, 0x0300);
  FW_CHECK(sps.read(v) == air::SensorStatus::Ok);
  FW_CHECK_EQ(v.pm1, 52);
  FW_CHECK_EQ(v.pm25, 123);
  FW_CHECK_EQ(v.pm4, 150);
  FW_CHECK_EQ(v.pm10, 205);
  bus.values.pm25 = 65534;  // 6553.4: the largest value the format carries
  bus.values.pm10 = 99999;  // above it: saturated below the fault value, never 0xFFFF
  FW_CHECK(sps.read(v) == air::SensorStatus::Ok);
  FW_CHECK_EQ(v.pm25, 65534);
  FW_CHECK_EQ(v.pm10, 65534);
  FW_CHECK_EQ(bus.sps30.badCommands, 0u);
  FW_CHECK_EQ(sps.stats().crcErrors + sps.stats().nacks, 0u);
}

FW_TEST("sensors: SPS30 bad CRC and NACK are counted, no value") {
  host::SimAirBus bus;
  air::Sps30 sps(bus);
  FW_CHECK(sps.start() == air::SensorStatus::Ok);
  air::Sps30::Values v;
  v.pm25 = 4242;
  bus.sps30.fault = host::SimFault::BadCrc;
  FW_CHECK(sps.read(v) == air::SensorStatus::CrcError);
  FW_CHECK_EQ(sps.stats().crcErrors, 1u);
  FW_CHECK_EQ(v.pm25, 4242);  // untouched
  bus.sps30.fault = host::SimFault::Absent;
  FW_CHECK(sps.read(v) == air::SensorStatus::Nack);
  FW_CHECK(sps.start() == air::SensorStatus::Nack);
  FW_CHECK_EQ(sps.stats().nacks, 2u);
  bus.sps30.fault = host::SimFault::NotReady;
  FW_CHECK(sps.read(v) == air::SensorStatus::NotReady);
  FW_CHECK_EQ(sps.stats().notReady, 1u);
  bus.sps30.fault = host::SimFault::None;
  FW_CHECK(sps.read(v) == air::SensorStatus::Ok);
  FW_CHECK_EQ(v.pm25, 123);
}

FW_TEST("sensors: SHT3x single shot: NACK while measuring, then T and RH") {
  host::SimAirBus bus;
  bus.sht3x.busyReads = 2;
  air::Sht3x sht(bus);
  air::Sht3x::Values v;
  FW_CHECK(sht.trigger() == air::SensorStatus::Ok);
  FW_CHECK(sht.fetch(v) == air::SensorStatus::NotReady);
  FW_CHECK(sht.fetch(v) == air::SensorStatus::NotReady);
  FW_CHECK(sht.fetch(v) == air::SensorStatus::Ok);
  FW_CHECK_EQ(v.temperature, 1825);
  FW_CHECK_EQ(v.humidity, 5500);
  bus.values.temperatureCenti = -1234;
  bus.values.humidityCenti = 9999;
  bus.sht3x.busyReads = 0;
  FW_CHECK(sht.trigger() == air::SensorStatus::Ok);
  FW_CHECK(sht.fetch(v) == air::SensorStatus::Ok);
  FW_CHECK_EQ(v.temperature, -1234);
  FW_CHECK_EQ(v.humidity, 9999);
  FW_CHECK_EQ(bus.sht3x.badCommands, 0u);
}

FW_TEST("sensors: SHT3x bad CRC and absent sensor are counted, no value") {
  host::SimAirBus bus;
  bus.sht3x.busyReads = 0;
  air::Sht3x sht(bus);
  air::Sht3x::Values v;
  v.temperature = 77;
  bus.sht3x.fault = host::SimFault::BadCrc;
  FW_CHECK(sht.trigger() == air::SensorStatus::Ok);
  FW_CHECK(sht.fetch(v) == air::SensorStatus::CrcError);
  FW_CHECK_EQ(sht.stats().crcErrors, 1u);
  FW_CHECK_EQ(v.temperature, 77);
  bus.sht3x.fault = host::SimFault::Absent;
  FW_CHECK(sht.trigger() == air::SensorStatus::Nack);
  FW_CHECK_EQ(sht.stats().nacks, 1u);
  sht.noAnswer();
  FW_CHECK_EQ(sht.stats().nacks, 2u);
}
