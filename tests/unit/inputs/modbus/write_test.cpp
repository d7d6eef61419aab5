// Writes: the reverse encodings (every type and word order, with scale, offset and unit
// conversion, checked against the decoder), every refusal reason of the policy, and the per-device
// rate limit on manual time.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "inputs/modbus/decode.hpp"
#include "inputs/modbus/write.hpp"

using namespace citygate;
using namespace citygate::modbus;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

PointRead reg(pb::DataType type, pb::WordOrder order, pb::RegisterTable table = pb::HOLDING_REGISTER) {
  PointRead r;
  r.table = table;
  r.type = type;
  r.order = order;
  r.count = registerCount(type);
  return r;
}

core::PointSpec scaled(double scale, double offset, double factor = 1.0, double convOffset = 0.0) {
  core::PointSpec p;
  p.name = "period";
  p.scale = scale;
  p.offset = offset;
  p.conversion.factor = factor;
  p.conversion.offset = convOffset;
  return p;
}

double roundTrip(const PointRead& rd, const core::PointSpec& ps, double v) {
  auto e = encodeValue(rd, ps, v);
  REQUIRE_FALSE(e.refusal.has_value());
  REQUIRE(e.registers.size() == rd.count);
  auto back = decodeValue(rd, ps, e.registers);
  REQUIRE(back.has_value());
  return *back;
}

const pb::WordOrder kOrders[] = {pb::ABCD, pb::CDAB, pb::BADC, pb::DCBA};

}  // namespace

TEST_CASE("every numeric type in every word order round-trips through the decoder") {
  const core::PointSpec plain = scaled(1.0, 0.0);
  for (auto o : kOrders) {
    CAPTURE(o);
    CHECK(roundTrip(reg(pb::INT16, o), plain, -1234) == -1234);
    CHECK(roundTrip(reg(pb::INT16, o), plain, 32767) == 32767);
    CHECK(roundTrip(reg(pb::INT16, o), plain, -32768) == -32768);
    CHECK(roundTrip(reg(pb::UINT16, o), plain, 65535) == 65535);
    CHECK(roundTrip(reg(pb::UINT16, o), plain, 258) == 258);
    CHECK(roundTrip(reg(pb::INT32, o), plain, -123456789) == -123456789);
    CHECK(roundTrip(reg(pb::UINT32, o), plain, 4171510507.0) == 4171510507.0);
    CHECK(roundTrip(reg(pb::FLOAT32, o), plain, 123456.0) == 123456.0);
    // A float reads back as its shortest decimal: 0.1, not 0.10000000149011612 (float noise).
    CHECK(roundTrip(reg(pb::FLOAT32, o), plain, 0.1) == 0.1);
    CHECK(roundTrip(reg(pb::FLOAT32, o), plain, 28.4) == 28.4);
    CHECK(roundTrip(reg(pb::INT64, o), plain, -9007199254740991.0) == -9007199254740991.0);
    CHECK(roundTrip(reg(pb::UINT64, o), plain, 9007199254740993.0) == 9007199254740993.0);
    CHECK(roundTrip(reg(pb::FLOAT64, o), plain, 3.141592653589793) == 3.141592653589793);
  }
}

TEST_CASE("the word orders put the words where the decoder's vectors have them") {
  const core::PointSpec plain = scaled(1.0, 0.0);
  // libmodbus unit-test vectors for 123456.0f (decode.hpp)
  CHECK(encodeValue(reg(pb::FLOAT32, pb::ABCD), plain, 123456.0).registers ==
        std::vector<std::uint16_t>{0x47F1, 0x2000});
  CHECK(encodeValue(reg(pb::FLOAT32, pb::CDAB), plain, 123456.0).registers ==
        std::vector<std::uint16_t>{0x2000, 0x47F1});
  CHECK(encodeValue(reg(pb::FLOAT32, pb::BADC), plain, 123456.0).registers ==
        std::vector<std::uint16_t>{0xF147, 0x0020});
  CHECK(encodeValue(reg(pb::FLOAT32, pb::DCBA), plain, 123456.0).registers ==
        std::vector<std::uint16_t>{0x0020, 0xF147});
  CHECK(encodeValue(reg(pb::UINT16, pb::BADC), plain, 0x0102).registers == std::vector<std::uint16_t>{0x0201});
}

TEST_CASE("scale, offset and the unit conversion are undone") {
  // A period in 0.1 s units: 30 s is 300 in the register.
  CHECK(encodeValue(reg(pb::UINT16, pb::ABCD), scaled(0.1, 0.0), 30.0).registers == std::vector<std::uint16_t>{300});
  // Raw -> (raw * 0.5 + 10) * 1.912 (ppb -> µg/m³ style): the canonical value round-trips.
  const auto ps = scaled(0.5, 10.0, 1.912, 0.0);
  CHECK(roundTrip(reg(pb::INT32, pb::CDAB), ps, (100 * 0.5 + 10) * 1.912) == doctest::Approx((100 * 0.5 + 10) * 1.912));
  CHECK(encodeValue(reg(pb::INT32, pb::ABCD), ps, (100 * 0.5 + 10) * 1.912).registers ==
        std::vector<std::uint16_t>{0, 100});
  // Celsius from Kelvin-like offset conversions.
  CHECK(roundTrip(reg(pb::FLOAT64, pb::DCBA), scaled(1.0, 0.0, 1.0, -273.15), 21.5) == doctest::Approx(21.5));
  // Integer types round to the nearest raw value.
  CHECK(encodeValue(reg(pb::UINT16, pb::ABCD), scaled(0.1, 0.0), 2.26).registers == std::vector<std::uint16_t>{23});
}

TEST_CASE("a coil takes 0 or 1") {
  const core::PointSpec plain = scaled(1.0, 0.0);
  const auto coil = reg(pb::BOOL, pb::ABCD, pb::COIL);
  CHECK(encodeValue(coil, plain, 1).registers == std::vector<std::uint16_t>{1});
  CHECK(encodeValue(coil, plain, 0).registers == std::vector<std::uint16_t>{0});
  CHECK(decodeValue(coil, plain, std::vector<std::uint16_t>{1}) == 1.0);
  auto e = encodeValue(coil, plain, 2);
  REQUIRE(e.refusal);
  CHECK(e.refusal->reason == pb::NOT_REPRESENTABLE);
}

TEST_CASE("values a type cannot hold are refused as NOT_REPRESENTABLE") {
  const core::PointSpec plain = scaled(1.0, 0.0);
  for (auto [type, value] :
       std::vector<std::pair<pb::DataType, double>>{{pb::INT16, 32768},
                                                    {pb::INT16, -32769},
                                                    {pb::UINT16, -1},
                                                    {pb::UINT16, 65536},
                                                    {pb::INT32, 2147483648.0},
                                                    {pb::UINT32, -0.6},
                                                    {pb::UINT64, -1},
                                                    {pb::INT64, 9.3e18},
                                                    {pb::FLOAT32, 1e39},
                                                    {pb::FLOAT64, std::numeric_limits<double>::quiet_NaN()},
                                                    {pb::FLOAT32, std::numeric_limits<double>::infinity()}}) {
    CAPTURE(type);
    CAPTURE(value);
    auto e = encodeValue(reg(type, pb::ABCD), plain, value);
    REQUIRE(e.refusal);
    CHECK(e.refusal->reason == pb::NOT_REPRESENTABLE);
  }
}

TEST_CASE("a bit inside a register and STRING points are UNSUPPORTED") {
  auto bit = reg(pb::BOOL, pb::ABCD);
  bit.bitInRegister = true;
  bit.bit = 3;
  auto e = encodeValue(bit, scaled(1, 0), 1);
  REQUIRE(e.refusal);
  CHECK(e.refusal->reason == pb::UNSUPPORTED);
  auto s = reg(pb::STRING, pb::ABCD);
  e = encodeValue(s, scaled(1, 0), 1);
  REQUIRE(e.refusal);
  CHECK(e.refusal->reason == pb::UNSUPPORTED);
}

namespace {

// A device with a writable holding register (period, 10..3600), a read-only holding register
// (serial), an input register (intensity) and a writable coil (sign).
DeviceSpec device() {
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = "counter-1";
  DeviceSpec d;
  d.profile = "test-counter";
  auto add = [&](const char* name, PointRead rd) {
    core::PointSpec p = scaled(1, 0);
    p.name = name;
    sensor->points.push_back(p);
    d.reads.push_back(rd);
  };
  PointRead period = reg(pb::UINT16, pb::ABCD);
  period.address = 100;
  period.writable = true;
  period.writeMin = 10;
  period.writeMax = 3600;
  add("period", period);
  PointRead serial = reg(pb::UINT32, pb::ABCD);
  serial.address = 200;
  add("serial", serial);
  PointRead intensity = reg(pb::UINT16, pb::ABCD, pb::INPUT_REGISTER);
  intensity.address = 0;
  intensity.writable = true;  // a profile cannot say so (spec.cpp refuses it); the policy checks again
  add("intensity", intensity);
  PointRead sign = reg(pb::BOOL, pb::ABCD, pb::COIL);
  sign.address = 5;
  sign.writable = true;
  sign.writeMin = 0;
  sign.writeMax = 1;
  add("sign", sign);
  d.sensor = sensor;
  return d;
}

pb::CommandsConfig enabled(std::vector<std::string> points = {}) {
  pb::CommandsConfig c;
  c.set_enabled(true);
  auto* a = c.add_allow();
  a->set_device("counter-1");
  for (const auto& p : points) a->add_point(p);
  return c;
}

pb::WriteRefusal reason(const std::optional<Refusal>& r) {
  return r ? r->reason : pb::WRITE_REFUSAL_UNSPECIFIED;
}

}  // namespace

TEST_CASE("every refusal of the policy has its reason") {
  const DeviceSpec d = device();
  const auto period = findPoint(d, pb::HOLDING_REGISTER, 100);
  REQUIRE(period == 0u);
  CHECK(reason(checkWrite(enabled(), &d, period, 60)) == pb::WRITE_REFUSAL_UNSPECIFIED);

  pb::CommandsConfig off = enabled();
  off.set_enabled(false);
  CHECK(reason(checkWrite(off, &d, period, 60)) == pb::COMMANDS_DISABLED);
  CHECK(reason(checkWrite(pb::CommandsConfig{}, &d, period, 60)) == pb::COMMANDS_DISABLED);
  CHECK(reason(checkWrite(enabled(), nullptr, period, 60)) == pb::UNKNOWN_DEVICE);

  pb::CommandsConfig other;
  other.set_enabled(true);
  other.add_allow()->set_device("counter-2");
  CHECK(reason(checkWrite(other, &d, period, 60)) == pb::DEVICE_NOT_ALLOWED);
  CHECK(reason(checkWrite(enabled({"sign"}), &d, period, 60)) == pb::DEVICE_NOT_ALLOWED);
  CHECK(reason(checkWrite(enabled({"sign", "period"}), &d, period, 60)) == pb::WRITE_REFUSAL_UNSPECIFIED);

  CHECK(reason(checkWrite(enabled(), &d, findPoint(d, pb::HOLDING_REGISTER, 101), 60)) == pb::UNKNOWN_POINT);
  CHECK(reason(checkWrite(enabled(), &d, findPoint(d, pb::HOLDING_REGISTER, 200), 60)) == pb::POINT_NOT_WRITABLE);
  CHECK(reason(checkWrite(enabled(), &d, findPoint(d, pb::INPUT_REGISTER, 0), 60)) == pb::READ_ONLY_TABLE);

  CHECK(reason(checkWrite(enabled(), &d, period, 9.99)) == pb::OUT_OF_RANGE);
  CHECK(reason(checkWrite(enabled(), &d, period, 3600.01)) == pb::OUT_OF_RANGE);
  CHECK(reason(checkWrite(enabled(), &d, period, 3600)) == pb::WRITE_REFUSAL_UNSPECIFIED);
  CHECK(reason(checkWrite(enabled(), &d, period, std::nan(""))) == pb::NOT_REPRESENTABLE);

  const auto sign = findPoint(d, "sign", 0, "");
  REQUIRE(sign == 3u);
  CHECK(reason(checkWrite(enabled(), &d, sign, 1)) == pb::WRITE_REFUSAL_UNSPECIFIED);
  CHECK(reason(checkWrite(enabled(), &d, sign, 2)) == pb::OUT_OF_RANGE);
}

TEST_CASE("the rate limit allows N writes per window per device, on manual time") {
  RateLimiter limit(2, 60s);
  const SteadyTime t0 = SteadyTime{} + 3600s;
  std::chrono::milliseconds retry{0};
  CHECK(limit.take("a", t0));
  CHECK(limit.take("a", t0 + 1s));
  CHECK_FALSE(limit.take("a", t0 + 2s, &retry));
  CHECK(retry == 58s);
  CHECK(limit.take("b", t0 + 2s));  // per device
  CHECK_FALSE(limit.take("a", t0 + 59999ms));
  CHECK(limit.take("a", t0 + 60s));  // the first one left the window
  CHECK_FALSE(limit.take("a", t0 + 60s + 500ms, &retry));
  CHECK(retry == 500ms);
  CHECK(limit.take("a", t0 + 61s));
}
