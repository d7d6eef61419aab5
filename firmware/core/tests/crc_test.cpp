// The checksums against their catalogue check values and the peers' own examples, at run time
// (crc.hpp checks the same at compile time): the same binary runs on the host and under qemu.
#include "core/crc.hpp"
#include "core/check.hpp"

namespace fw = citygate::fw;

namespace {
const uint8_t kNine[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
}

FW_TEST("crc16Modbus: check value and a Modbus request") {
  FW_CHECK_EQ(fw::crc16Modbus(kNine, sizeof kNine), 0x4B37);
  // Read holding registers, slave 1, address 0, count 10: 01 03 00 00 00 0A C5 CD on the wire.
  const uint8_t request[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
  const uint16_t crc = fw::crc16Modbus(request, sizeof request);
  FW_CHECK_EQ(crc & 0xFF, 0xC5);
  FW_CHECK_EQ(crc >> 8, 0xCD);
  const uint8_t frame[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD};
  FW_CHECK_EQ(fw::crc16Modbus(frame, sizeof frame), 0);  // a frame with its CRC checks to 0
}

FW_TEST("crc8Sensirion: datasheet example and the empty word") {
  const uint8_t beef[] = {0xBE, 0xEF};
  FW_CHECK_EQ(fw::crc8Sensirion(beef, 2), 0x92);
  const uint8_t zero[] = {0x00, 0x00};
  FW_CHECK_EQ(fw::crc8Sensirion(zero, 2), 0x81);
}

FW_TEST("crc32: check value, pieces and the empty input") {
  FW_CHECK_EQ(fw::crc32(kNine, sizeof kNine), 0xCBF43926u);
  FW_CHECK_EQ(fw::crc32(kNine + 4, 5, fw::crc32(kNine, 4)), 0xCBF43926u);
  FW_CHECK_EQ(fw::crc32(kNine, 0), 0u);
}
