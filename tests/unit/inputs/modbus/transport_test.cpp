#include <doctest/doctest.h>

#include <vector>

#include "inputs/modbus/transport.hpp"

using namespace citygate::modbus;

namespace {
std::uint16_t crcOf(std::vector<std::uint8_t> v) {
  return crc16(v);
}
}  // namespace

TEST_CASE("CRC-16/MODBUS check value and published frames (M1-M6)") {
  const std::string check = "123456789";
  CHECK(crc16(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(check.data()), check.size())) ==
        0x4B37);
  // A whole frame including its CRC (low byte first) has residue 0.
  CHECK(crcOf({0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A}) == 0);
  CHECK(crcOf({0x01, 0x03, 0x02, 0x00, 0x01, 0x79, 0x84}) == 0);
  CHECK(crcOf({0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD}) == 0);
  CHECK(crcOf({0x01, 0x10, 0x30, 0x03, 0x00, 0x01, 0x02, 0x00, 0x01, 0x57, 0xA0}) == 0);
  CHECK(crcOf({0x01, 0x10, 0x30, 0x03, 0x00, 0x01, 0xFE, 0xC9}) == 0);
  CHECK(crcOf({0x01, 0x03, 0x30, 0x03, 0x00, 0x01, 0x7B, 0x0A}) == 0);
}

TEST_CASE("RTU read responses: complete, partial, exception, garbage") {
  std::vector<std::uint16_t> out(1);
  ReadError err;
  const std::vector<std::uint8_t> m2{0x01, 0x03, 0x02, 0x00, 0x01, 0x79, 0x84};
  CHECK(parseRtuReadResponse(m2, 1, 0x03, 1, out, err) == 7);
  CHECK(err.ok());
  CHECK(out[0] == 1);

  err = {};
  CHECK(parseRtuReadResponse(std::span(m2).first(4), 1, 0x03, 1, out, err) == 0);  // need more
  CHECK(err.ok());

  std::vector<std::uint8_t> exc{0x01, 0x83, 0x02, 0, 0};
  const auto c = crc16(std::span(exc).first(3));
  exc[3] = static_cast<std::uint8_t>(c);
  exc[4] = static_cast<std::uint8_t>(c >> 8);
  err = {};
  parseRtuReadResponse(exc, 1, 0x03, 1, out, err);
  CHECK(err.kind == ErrorKind::Exception);
  CHECK(err.exception == 2);

  auto bad = m2;
  bad[4] ^= 0x10;
  err = {};
  parseRtuReadResponse(bad, 1, 0x03, 1, out, err);
  CHECK(err.kind == ErrorKind::BadFrame);

  err = {};
  parseRtuReadResponse(m2, 2, 0x03, 1, out, err);  // another unit's answer (a foreign frame)
  CHECK(err.kind == ErrorKind::BadFrame);
}

TEST_CASE("RTU coil responses unpack LSB first") {
  std::vector<std::uint8_t> f{0x05, 0x01, 0x02, 0b10100101, 0b00000001, 0, 0};
  const auto c = crc16(std::span(f).first(5));
  f[5] = static_cast<std::uint8_t>(c);
  f[6] = static_cast<std::uint8_t>(c >> 8);
  std::vector<std::uint16_t> out(9);
  ReadError err;
  CHECK(parseRtuReadResponse(f, 5, 0x01, 9, out, err) == 7);
  CHECK(out == std::vector<std::uint16_t>{1, 0, 1, 0, 0, 1, 0, 1, 1});
}
