// The node byte formats (proto/citygate/v1/node_format.hpp): the README's worked examples both
// ways, round trips, every decode error, the encoder's refusals and the fixed-point helpers.
// The gateway's view of the same bytes (readings) is tested in inputs/lora/codecs_test.cpp.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "citygate/v1/node_format.hpp"

namespace nf = citygate::node_format;

namespace {

std::vector<std::uint8_t> hex(const std::string& s) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<std::uint8_t> encodeAir(const nf::air::Frame& f) {
  std::vector<std::uint8_t> out(nf::air::kMaxBytes);
  const nf::Encoded e = nf::air::encode(f, out.data(), out.size());
  REQUIRE(e.status == nf::Status::Ok);
  out.resize(e.size);
  return out;
}

std::vector<std::uint8_t> encodeTraffic(const nf::traffic::Frame& f) {
  std::vector<std::uint8_t> out(nf::traffic::kMaxBytes);
  const nf::Encoded e = nf::traffic::encode(f, out.data(), out.size());
  REQUIRE(e.status == nf::Status::Ok);
  out.resize(e.size);
  return out;
}

nf::Status decodeAir(const std::string& h) {
  const auto b = hex(h);
  nf::air::Frame f;
  return nf::air::decode(b.data(), b.size(), f);
}

nf::Status decodeTraffic(const std::string& h) {
  const auto b = hex(h);
  nf::traffic::Frame f;
  return nf::traffic::decode(b.data(), b.size(), f);
}

constexpr const char* kAirExample = "010c1a007b00cd00d20721157c";
constexpr const char* kTrafficExample = "01012c020107002a1901e5820b00117834";

}  // namespace

TEST_CASE("citygate-air v1: the README's worked example, encoded and decoded") {
  using F = nf::air::Field;
  nf::air::Frame f;
  set(f, F::Pm25, nf::toRaw(nf::air::layout(F::Pm25), 123, 10));
  set(f, F::Pm10, nf::toRaw(nf::air::layout(F::Pm10), 205, 10));
  set(f, F::No2, nf::toRaw(nf::air::layout(F::No2), 21, 1));
  set(f, F::Temperature, nf::toRaw(nf::air::layout(F::Temperature), 18250, 1000));
  set(f, F::RelativeHumidity, nf::toRaw(nf::air::layout(F::RelativeHumidity), 55, 1));
  CHECK(encodeAir(f) == hex(kAirExample));

  const auto b = hex(kAirExample);
  nf::air::Frame d;
  REQUIRE(nf::air::decode(b.data(), b.size(), d) == nf::Status::Ok);
  CHECK(d.mask == 0x0C1A);
  CHECK(d.raw[static_cast<int>(F::Pm25)] == 123);
  CHECK(d.raw[static_cast<int>(F::Temperature)] == 1825);
  CHECK(nf::scaledNumerator(nf::air::layout(F::Temperature), 1825) == 1825);  // / 100 = 18.25 °C
  CHECK(d.raw[static_cast<int>(F::RelativeHumidity)] == 5500);
  CHECK_FALSE(has(d, F::Pm1));
  CHECK(std::string(nf::air::describe(nf::Status::Ok)) == "air");
}

TEST_CASE("citygate-traffic v1: the README's worked example, encoded and decoded") {
  using F = nf::traffic::Field;
  nf::traffic::Frame f;
  f.periodS = 300;
  f.laneCount = 2;
  f.lanes[0].id = 1;
  set(f.lanes[0], F::Intensity, 42);
  set(f.lanes[0], F::Occupancy, nf::toRaw(nf::traffic::layout(F::Occupancy), 125, 1000));
  set(f.lanes[0], F::AverageVehicleSpeed, 485);
  f.lanes[1].id = 2;
  f.lanes[1].congested = true;
  set(f.lanes[1], F::Intensity, 17);
  set(f.lanes[1], F::Occupancy, 120);
  set(f.lanes[1], F::AverageVehicleLength, 52);
  CHECK(encodeTraffic(f) == hex(kTrafficExample));

  const auto b = hex(kTrafficExample);
  nf::traffic::Frame d;
  REQUIRE(nf::traffic::decode(b.data(), b.size(), d) == nf::Status::Ok);
  CHECK(d.periodS == 300);
  REQUIRE(d.laneCount == 2);
  CHECK(d.lanes[0].id == 1);
  CHECK_FALSE(d.lanes[0].congested);
  CHECK(d.lanes[0].raw[1] == 25);  // 12.5 % = 25 / 200
  CHECK(d.lanes[1].congested);
  CHECK(d.lanes[1].raw[3] == 52);
  CHECK_FALSE(has(d.lanes[1], F::AverageVehicleSpeed));
}

TEST_CASE("citygate-air v1: every field at its limits and as a fault round-trips") {
  for (std::size_t i = 0; i < nf::air::kFieldCount; ++i) {
    const nf::FieldLayout& l = nf::air::kFields[i];
    INFO(l.name);
    for (const std::int32_t raw : {nf::minRaw(l), nf::maxRaw(l), nf::faultRaw(l), std::int32_t{0}}) {
      nf::air::Frame f;
      set(f, static_cast<nf::air::Field>(i), raw);
      const auto bytes = encodeAir(f);
      CHECK(bytes.size() == 5);
      nf::air::Frame d;
      REQUIRE(nf::air::decode(bytes.data(), bytes.size(), d) == nf::Status::Ok);
      CHECK(d.raw[i] == raw);
      CHECK(nf::isFault(l, d.raw[i]) == (raw == nf::faultRaw(l)));
    }
  }
  nf::air::Frame f;
  setFault(f, nf::air::Field::Temperature);
  setFault(f, nf::air::Field::Pm25);
  CHECK(encodeAir(f) == hex("010402ffff8000"));
}

TEST_CASE("citygate-traffic v1: eight lanes with every field round-trip at the largest size") {
  nf::traffic::Frame f;
  f.periodS = 65535;
  f.laneCount = 8;
  for (std::uint8_t l = 0; l < 8; ++l) {
    nf::traffic::Lane& lane = f.lanes[l];
    lane.id = static_cast<std::uint8_t>(8 - l);  // any order
    lane.congested = (l % 2) == 0;
    for (std::size_t i = 0; i < nf::traffic::kFieldCount; ++i) {
      const nf::FieldLayout& fl = nf::traffic::kFields[i];
      set(lane, static_cast<nf::traffic::Field>(i), l == 3 ? nf::faultRaw(fl) : nf::maxRaw(fl) - l);
    }
  }
  const auto bytes = encodeTraffic(f);
  CHECK(bytes.size() == nf::traffic::kMaxBytes);
  nf::traffic::Frame d;
  REQUIRE(nf::traffic::decode(bytes.data(), bytes.size(), d) == nf::Status::Ok);
  REQUIRE(d.laneCount == 8);
  for (std::size_t l = 0; l < 8; ++l) {
    CHECK(d.lanes[l].id == f.lanes[l].id);
    CHECK(d.lanes[l].congested == f.lanes[l].congested);
    CHECK(d.lanes[l].mask == 0x3F);
    for (std::size_t i = 0; i < nf::traffic::kFieldCount; ++i) CHECK(d.lanes[l].raw[i] == f.lanes[l].raw[i]);
  }
  // Every shorter prefix is refused.
  for (std::size_t n = 0; n < bytes.size(); ++n) CHECK(nf::traffic::decode(bytes.data(), n, d) != nf::Status::Ok);
}

TEST_CASE("citygate-air v1: malformed frames, with the gateway's descriptions") {
  CHECK(decodeAir("020002007b") == nf::Status::BadVersion);
  CHECK(decodeAir("018002007b0000") == nf::Status::ReservedBits);
  CHECK(decodeAir("010000") == nf::Status::NoField);
  CHECK(decodeAir("01000200") == nf::Status::LengthMismatch);
  CHECK(decodeAir("010002007b00") == nf::Status::LengthMismatch);
  CHECK(decodeAir("0100") == nf::Status::TooShort);
  CHECK(decodeAir("") == nf::Status::TooShort);
  CHECK(std::string(nf::air::describe(nf::Status::LengthMismatch)) == "air frame length does not match its mask");
}

TEST_CASE("citygate-traffic v1: malformed frames, each with its own status") {
  CHECK(decodeTraffic("01012c010100") == nf::Status::Ok);  // lane 1, congested flag only
  CHECK(decodeTraffic("010000010100") == nf::Status::BadPeriod);
  CHECK(decodeTraffic("01012c00") == nf::Status::BadLaneCount);
  CHECK(decodeTraffic("01012c09") == nf::Status::BadLaneCount);
  CHECK(decodeTraffic("01012c0109") == nf::Status::TruncatedLaneHeader);
  CHECK(decodeTraffic("01012c010900") == nf::Status::BadLaneId);
  CHECK(decodeTraffic("01012c011100") == nf::Status::ReservedLaneBits);
  CHECK(decodeTraffic("01012c010140") == nf::Status::ReservedFieldBits);
  CHECK(decodeTraffic("01012c0201000100") == nf::Status::LaneRepeated);
  CHECK(decodeTraffic("01012c010101") == nf::Status::TruncatedLaneRecord);
  CHECK(decodeTraffic("01012c01010000") == nf::Status::TrailingBytes);
  CHECK(decodeTraffic("02012c010100") == nf::Status::BadVersion);
  CHECK(decodeTraffic("01012c") == nf::Status::TooShort);
  CHECK(std::string(nf::traffic::describe(nf::Status::LaneRepeated)) == "lane repeated");
}

TEST_CASE("the encoders refuse what the decoders would refuse, and never overrun the buffer") {
  nf::air::Frame a;
  std::uint8_t buf[nf::traffic::kMaxBytes] = {};
  CHECK(nf::air::encode(a, buf, sizeof buf).status == nf::Status::NoField);
  a.mask = nf::air::kReservedMask;
  CHECK(nf::air::encode(a, buf, sizeof buf).status == nf::Status::ReservedBits);
  a = {};
  set(a, nf::air::Field::Co2, 70000);
  CHECK(nf::air::encode(a, buf, sizeof buf).status == nf::Status::ValueOutOfRange);
  set(a, nf::air::Field::Co2, 415);
  CHECK(nf::air::encode(a, buf, 4).status == nf::Status::BufferTooSmall);
  CHECK(nf::air::encode(a, buf, 5).size == 5);

  nf::traffic::Frame t;
  t.periodS = 60;
  CHECK(nf::traffic::encode(t, buf, sizeof buf).status == nf::Status::BadLaneCount);
  t.laneCount = 2;
  t.lanes[0].id = 3;
  t.lanes[1].id = 3;
  CHECK(nf::traffic::encode(t, buf, sizeof buf).status == nf::Status::LaneRepeated);
  t.lanes[1].id = 9;
  CHECK(nf::traffic::encode(t, buf, sizeof buf).status == nf::Status::BadLaneId);
  t.lanes[1].id = 4;
  t.lanes[1].mask = 0x40;
  CHECK(nf::traffic::encode(t, buf, sizeof buf).status == nf::Status::ReservedFieldBits);
  t.lanes[1].mask = 0;
  set(t.lanes[1], nf::traffic::Field::Occupancy, -1);
  CHECK(nf::traffic::encode(t, buf, sizeof buf).status == nf::Status::ValueOutOfRange);
  set(t.lanes[1], nf::traffic::Field::Occupancy, 200);
  t.periodS = 0;
  CHECK(nf::traffic::encode(t, buf, sizeof buf).status == nf::Status::BadPeriod);
  t.periodS = 60;
  CHECK(nf::traffic::encode(t, buf, 8).status == nf::Status::BufferTooSmall);  // needs 4 + 2 + 3
  CHECK(nf::traffic::encode(t, buf, 9).size == 9);
}

TEST_CASE("fixed point: rounding to the nearest step and saturation below the fault value") {
  const nf::FieldLayout& temp = nf::air::layout(nf::air::Field::Temperature);  // i16, 0.01 °C
  CHECK(nf::toRaw(temp, 18250, 1000) == 1825);
  CHECK(nf::toRaw(temp, 18254, 1000) == 1825);
  CHECK(nf::toRaw(temp, 18255, 1000) == 1826);  // halves away from zero
  CHECK(nf::toRaw(temp, -18255, 1000) == -1826);
  CHECK(nf::toRaw(temp, -5, 1) == -500);
  CHECK(nf::toRaw(temp, -400, 1) == -32767);  // never the fault value -32768
  CHECK(nf::toRaw(temp, 400, 1) == 32767);
  const nf::FieldLayout& co = nf::air::layout(nf::air::Field::Co);  // u16, 0.001 ppm
  CHECK(nf::toRaw(co, 1234, 1000) == 1234);
  CHECK(nf::toRaw(co, -1, 1) == 0);
  CHECK(nf::toRaw(co, 66, 1) == 65534);                                             // never the fault value 0xFFFF
  const nf::FieldLayout& occ = nf::traffic::layout(nf::traffic::Field::Occupancy);  // u8, 1/200
  CHECK(nf::toRaw(occ, 6, 10) == 120);                                              // 60 %
  CHECK(nf::toRaw(occ, 1, 1) == 200);                                               // 100 %
  CHECK(nf::faultRaw(occ) == 0xFF);
  CHECK(nf::maxRaw(occ) == 0xFE);
}
