// The checksums the nodes use, bit-exact with the peers that check them: Modbus RTU's CRC-16
// (poly 0xA001 reflected, init 0xFFFF, sent low byte first), Sensirion's CRC-8 (poly 0x31, init
// 0xFF: every 16-bit word of an SPS30 or SHT3x), and CRC-32 (IEEE, as zlib) for flash records and
// service-UART frames. Table-free: a node has more time than flash.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace citygate::fw {

constexpr uint16_t crc16Modbus(const uint8_t* data, size_t size, uint16_t crc = 0xFFFF) {
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b)
      crc = (crc & 1) ? static_cast<uint16_t>((crc >> 1) ^ 0xA001) : static_cast<uint16_t>(crc >> 1);
  }
  return crc;
}

constexpr uint8_t crc8Sensirion(const uint8_t* data, size_t size) {
  uint8_t crc = 0xFF;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b)
      crc = (crc & 0x80) ? static_cast<uint8_t>((crc << 1) ^ 0x31) : static_cast<uint8_t>(crc << 1);
  }
  return crc;
}

// Feed in pieces: crc32(b, n, crc32(a, m)) == crc32 of a then b.
constexpr uint32_t crc32(const uint8_t* data, size_t size, uint32_t previous = 0) {
  uint32_t crc = ~previous;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

namespace crc_check {
constexpr uint8_t kNine[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
static_assert(crc16Modbus(kNine, 9) == 0x4B37);  // CRC-16/MODBUS check value
static_assert(crc32(kNine, 9) == 0xCBF43926u);   // CRC-32 check value
constexpr uint8_t kBeef[] = {0xBE, 0xEF};
static_assert(crc8Sensirion(kBeef, 2) == 0x92);  // SHT3x / SPS30 datasheet example
}  // namespace crc_check

}  // namespace citygate::fw
