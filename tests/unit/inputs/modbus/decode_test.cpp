#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "inputs/modbus/decode.hpp"

using namespace citygate::modbus;
namespace pb = citygate::v1;

namespace {
double dec(pb::DataType t, pb::WordOrder o, std::vector<std::uint16_t> regs) {
  auto v = decodeNumber(t, o, regs);
  REQUIRE(v.has_value());
  return *v;
}
}  // namespace

TEST_CASE("float32 123456.0 in the four orders (libmodbus unit-test vectors)") {
  // stephane/libmodbus tests/unit-test.h.in: 0x47F12000
  CHECK(dec(pb::FLOAT32, pb::ABCD, {0x47F1, 0x2000}) == 123456.0);
  CHECK(dec(pb::FLOAT32, pb::DCBA, {0x0020, 0xF147}) == 123456.0);
  CHECK(dec(pb::FLOAT32, pb::BADC, {0xF147, 0x0020}) == 123456.0);
  CHECK(dec(pb::FLOAT32, pb::CDAB, {0x2000, 0x47F1}) == 123456.0);
}

TEST_CASE("encode32 is the inverse of decoding, for every order") {
  for (auto o : {pb::ABCD, pb::CDAB, pb::BADC, pb::DCBA}) {
    std::uint16_t regs[2];
    encode32(0x47F12000u, o, regs);
    CHECK(dec(pb::FLOAT32, o, {regs[0], regs[1]}) == 123456.0);
    encode32(static_cast<std::uint32_t>(-123456789), o, regs);
    CHECK(dec(pb::INT32, o, {regs[0], regs[1]}) == -123456789.0);
    CHECK(dec(pb::UINT32, o, {regs[0], regs[1]}) == 4171510507.0);
  }
  std::uint16_t vaisala[2];
  encode32(0x0A0B0C0D, pb::CDAB, vaisala);  // AQT530 manual: 0x0A0B0C0D -> 0C0D, 0A0B
  CHECK(vaisala[0] == 0x0C0D);
  CHECK(vaisala[1] == 0x0A0B);
}

TEST_CASE("16-bit types") {
  CHECK(dec(pb::INT16, pb::ABCD, {0xFFD1}) == -47.0);
  CHECK(dec(pb::UINT16, pb::ABCD, {0xFFD1}) == 65489.0);
  CHECK(dec(pb::INT16, pb::BADC, {0xD1FF}) == -47.0);  // byte-swapped single register
  CHECK(dec(pb::INT16, pb::ABCD, {0x8000}) == -32768.0);
}

TEST_CASE("64-bit types in the four orders") {
  const double pi = 3.141592653589793;
  std::uint64_t bits;
  std::memcpy(&bits, &pi, 8);
  for (auto o : {pb::ABCD, pb::CDAB, pb::BADC, pb::DCBA}) {
    std::uint16_t r[4];
    encode64(bits, o, r);
    CHECK(dec(pb::FLOAT64, o, {r[0], r[1], r[2], r[3]}) == pi);
    encode64(static_cast<std::uint64_t>(-1234567890123LL), o, r);
    CHECK(dec(pb::INT64, o, {r[0], r[1], r[2], r[3]}) == -1234567890123.0);
    encode64(1234567890123ULL, o, r);
    CHECK(dec(pb::UINT64, o, {r[0], r[1], r[2], r[3]}) == 1234567890123.0);
  }
  // The explicit register layouts: 0x0102030405060708
  CHECK(assemble(std::vector<std::uint16_t>{0x0102, 0x0304, 0x0506, 0x0708}, pb::ABCD) == 0x0102030405060708ULL);
  CHECK(assemble(std::vector<std::uint16_t>{0x0708, 0x0506, 0x0304, 0x0102}, pb::CDAB) == 0x0102030405060708ULL);
  CHECK(assemble(std::vector<std::uint16_t>{0x0201, 0x0403, 0x0605, 0x0807}, pb::BADC) == 0x0102030405060708ULL);
  CHECK(assemble(std::vector<std::uint16_t>{0x0807, 0x0605, 0x0403, 0x0201}, pb::DCBA) == 0x0102030405060708ULL);
}

TEST_CASE("too few registers, and types that are not numbers") {
  CHECK_FALSE(decodeNumber(pb::FLOAT32, pb::ABCD, std::vector<std::uint16_t>{0x47F1}).has_value());
  CHECK_FALSE(decodeNumber(pb::STRING, pb::ABCD, std::vector<std::uint16_t>{0x4142}).has_value());
  CHECK_FALSE(decodeNumber(pb::BOOL, pb::ABCD, std::vector<std::uint16_t>{1}).has_value());
}

TEST_CASE("strings and bits") {
  CHECK(decodeString(pb::ABCD, std::vector<std::uint16_t>{0x4151, 0x5435, 0x3330, 0x2020}) == "AQT530");
  CHECK(decodeString(pb::BADC, std::vector<std::uint16_t>{0x5141, 0x3554, 0x0033}) == "AQT53");
  // Not UTF-8 (a Latin-1 'é', a lone continuation byte): replaced, so the batch stays parseable.
  CHECK(decodeString(pb::ABCD, std::vector<std::uint16_t>{0x43E9, 0x8041}) ==
        "C\xEF\xBF\xBD\xEF\xBF\xBD"
        "A");
  CHECK(decodeString(pb::ABCD, std::vector<std::uint16_t>{0xC3A9, 0x2020}) == "\xC3\xA9");  // valid UTF-8 'é' kept
  CHECK(registerBit(0x8001, 0));
  CHECK(registerBit(0x8001, 15));
  CHECK_FALSE(registerBit(0x8001, 1));
}

TEST_CASE("NaN floats decode as NaN (the normaliser marks them BAD)") {
  CHECK(std::isnan(dec(pb::FLOAT32, pb::ABCD, {0x7FC0, 0x0000})));
}

TEST_CASE("not available: all ones for an unsigned type, the sign bit alone for a signed one, in every order") {
  for (auto o : {pb::ABCD, pb::CDAB, pb::BADC, pb::DCBA}) {
    CAPTURE(o);
    std::uint16_t r32[2];
    std::uint16_t r64[4];
    CHECK(isNotAvailable(pb::UINT16, o, std::vector<std::uint16_t>{0xFFFF}));
    CHECK_FALSE(isNotAvailable(pb::UINT16, o, std::vector<std::uint16_t>{0xFFFE}));
    CHECK(isNotAvailable(
        pb::INT16, o,
        std::vector<std::uint16_t>{o == pb::BADC || o == pb::DCBA ? std::uint16_t{0x0080} : std::uint16_t{0x8000}}));
    CHECK_FALSE(isNotAvailable(pb::INT16, o, std::vector<std::uint16_t>{0xFFFF}));  // -1 is a value
    encode32(0xFFFFFFFFU, o, r32);
    CHECK(isNotAvailable(pb::UINT32, o, std::vector<std::uint16_t>(r32, r32 + 2)));
    CHECK_FALSE(isNotAvailable(pb::INT32, o, std::vector<std::uint16_t>(r32, r32 + 2)));
    encode32(0x80000000U, o, r32);
    CHECK(isNotAvailable(pb::INT32, o, std::vector<std::uint16_t>(r32, r32 + 2)));
    CHECK_FALSE(isNotAvailable(pb::UINT32, o, std::vector<std::uint16_t>(r32, r32 + 2)));
    encode32(0xFFFFFFFEU, o, r32);
    CHECK_FALSE(isNotAvailable(pb::UINT32, o, std::vector<std::uint16_t>(r32, r32 + 2)));
    encode64(~std::uint64_t{0}, o, r64);
    CHECK(isNotAvailable(pb::UINT64, o, std::vector<std::uint16_t>(r64, r64 + 4)));
    encode64(std::uint64_t{1} << 63, o, r64);
    CHECK(isNotAvailable(pb::INT64, o, std::vector<std::uint16_t>(r64, r64 + 4)));
    CHECK_FALSE(isNotAvailable(pb::UINT64, o, std::vector<std::uint16_t>(r64, r64 + 4)));
  }
  // Not for floats, booleans or strings, nor with too few registers.
  CHECK_FALSE(isNotAvailable(pb::FLOAT32, pb::ABCD, std::vector<std::uint16_t>{0xFFFF, 0xFFFF}));
  CHECK_FALSE(isNotAvailable(pb::BOOL, pb::ABCD, std::vector<std::uint16_t>{0xFFFF}));
  CHECK_FALSE(isNotAvailable(pb::UINT32, pb::ABCD, std::vector<std::uint16_t>{0xFFFF}));
}
