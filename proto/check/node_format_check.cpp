// Check of node_format.hpp as the firmware builds it: C++17, no C++ library headers
// (-nostdinc++), no exceptions, no RTTI. The README's worked examples are checked at compile time,
// so compiling this file freestanding proves the header and the examples on a Cortex-M's terms;
// the hosted build adds encode -> decode round trips over every air presence mask and many
// traffic lane records, and exits non-zero on the first difference (ctest "schema:
// node_format_check"). The gateway's doctest suite (tests/unit/proto/) tests the same header
// in more detail.
#include "citygate/v1/node_format.hpp"

namespace {

namespace nf = citygate::node_format;

template <size_t N>
constexpr bool sameBytes(const uint8_t* a, size_t n, const uint8_t (&b)[N]) {
  if (n != N) return false;
  for (size_t i = 0; i < N; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// README: PM2.5 12.3 µg/m³, PM10 20.5 µg/m³, NO2 21.0 ppb, 18.25 °C, 55.00 % RH.
constexpr uint8_t kAirExample[] = {0x01, 0x0C, 0x1A, 0x00, 0x7B, 0x00, 0xCD, 0x00, 0xD2, 0x07, 0x21, 0x15, 0x7C};
// README: 300 s; lane 1: 42 vehicles, 12.5 %, 48.5 km/h; lane 2 congested: 17, 60 %, 5.2 m.
constexpr uint8_t kTrafficExample[] = {0x01, 0x01, 0x2C, 0x02, 0x01, 0x07, 0x00, 0x2A, 0x19,
                                       0x01, 0xE5, 0x82, 0x0B, 0x00, 0x11, 0x78, 0x34};

constexpr bool airExampleEncodes() {
  using F = nf::air::Field;
  nf::air::Frame f;
  set(f, F::Pm25, nf::toRaw(layout(F::Pm25), 123, 10));                    // 12.3 µg/m³
  set(f, F::Pm10, nf::toRaw(layout(F::Pm10), 205, 10));                    // 20.5 µg/m³
  set(f, F::No2, nf::toRaw(layout(F::No2), 21, 1));                        // 21.0 ppb
  set(f, F::Temperature, nf::toRaw(layout(F::Temperature), 18250, 1000));  // m°C
  set(f, F::RelativeHumidity, nf::toRaw(layout(F::RelativeHumidity), 55, 1));
  uint8_t out[nf::air::kMaxBytes] = {};
  const nf::Encoded e = encode(f, out, sizeof out);
  return e.status == nf::Status::Ok && sameBytes(out, e.size, kAirExample);
}

constexpr bool airExampleDecodes() {
  using F = nf::air::Field;
  nf::air::Frame f;
  if (decode(kAirExample, sizeof kAirExample, f) != nf::Status::Ok) return false;
  return f.mask == 0x0C1A && f.raw[static_cast<size_t>(F::Pm25)] == 123 && f.raw[static_cast<size_t>(F::Pm10)] == 205 &&
         f.raw[static_cast<size_t>(F::No2)] == 210 && f.raw[static_cast<size_t>(F::Temperature)] == 1825 &&
         f.raw[static_cast<size_t>(F::RelativeHumidity)] == 5500 && !has(f, F::Pm1);
}

constexpr bool trafficExampleEncodes() {
  using F = nf::traffic::Field;
  nf::traffic::Frame f;
  f.periodS = 300;
  f.laneCount = 2;
  nf::traffic::Lane& l1 = f.lanes[0];
  l1.id = 1;
  set(l1, F::Intensity, 42);
  set(l1, F::Occupancy, nf::toRaw(layout(F::Occupancy), 125, 1000));  // 12.5 % as a fraction
  set(l1, F::AverageVehicleSpeed, nf::toRaw(layout(F::AverageVehicleSpeed), 485, 10));
  nf::traffic::Lane& l2 = f.lanes[1];
  l2.id = 2;
  l2.congested = true;
  set(l2, F::Intensity, 17);
  set(l2, F::Occupancy, nf::toRaw(layout(F::Occupancy), 6, 10));
  set(l2, F::AverageVehicleLength, nf::toRaw(layout(F::AverageVehicleLength), 52, 10));
  uint8_t out[nf::traffic::kMaxBytes] = {};
  const nf::Encoded e = encode(f, out, sizeof out);
  return e.status == nf::Status::Ok && sameBytes(out, e.size, kTrafficExample);
}

constexpr bool trafficExampleDecodes() {
  nf::traffic::Frame f;
  if (decode(kTrafficExample, sizeof kTrafficExample, f) != nf::Status::Ok) return false;
  const nf::traffic::Lane& a = f.lanes[0];
  const nf::traffic::Lane& b = f.lanes[1];
  return f.periodS == 300 && f.laneCount == 2 && a.id == 1 && !a.congested && a.mask == 0x07 && a.raw[0] == 42 &&
         a.raw[1] == 25 && a.raw[2] == 485 && b.id == 2 && b.congested && b.mask == 0x0B && b.raw[0] == 17 &&
         b.raw[1] == 120 && b.raw[3] == 52;
}

static_assert(airExampleEncodes(), "citygate-air README example: encode");
static_assert(airExampleDecodes(), "citygate-air README example: decode");
static_assert(trafficExampleEncodes(), "citygate-traffic README example: encode");
static_assert(trafficExampleDecodes(), "citygate-traffic README example: decode");
static_assert(nf::air::encodedSize(0x7FFF) == nf::air::kMaxBytes && nf::air::kMaxBytes == 33, "air size");
static_assert(nf::traffic::laneSize(0x3F) == nf::traffic::kMaxLaneBytes, "traffic lane size");
static_assert(nf::faultRaw(nf::air::layout(nf::air::Field::Temperature)) == -32768, "signed fault");
static_assert(nf::faultRaw(nf::traffic::layout(nf::traffic::Field::Occupancy)) == 0xFF, "u8 fault");
static_assert(nf::toRaw(nf::air::layout(nf::air::Field::Temperature), -55, 1000) == -6, "rounds half away from 0");
static_assert(nf::toRaw(nf::air::layout(nf::air::Field::Pm25), 70000, 1) == 65534, "saturates below the fault");

}  // namespace

#if __STDC_HOSTED__
#include <stdio.h>

namespace {

// A value of every field that the field can carry, spread over its range, or the fault value.
constexpr int32_t pick(const nf::FieldLayout& f, uint32_t n) {
  if (n % 7 == 3) return nf::faultRaw(f);
  const uint32_t span = static_cast<uint32_t>(nf::maxRaw(f) - nf::minRaw(f)) + 1U;
  return nf::minRaw(f) + static_cast<int32_t>((n * 2654435761U) % span);
}

int failures = 0;

void fail(const char* what, unsigned n) {
  if (failures++ < 10) printf("node_format_check: %s (case %u)\n", what, n);
}

void airRoundTrips() {
  for (uint32_t mask = 1; mask < 0x8000; ++mask) {
    nf::air::Frame in;
    in.mask = static_cast<uint16_t>(mask);
    for (size_t i = 0; i < nf::air::kFieldCount; ++i) {
      if ((mask >> i) & 1U) in.raw[i] = pick(nf::air::kFields[i], mask + static_cast<uint32_t>(i));
    }
    uint8_t buf[nf::air::kMaxBytes];
    const nf::Encoded e = nf::air::encode(in, buf, sizeof buf);
    nf::air::Frame out;
    if (e.status != nf::Status::Ok || e.size != nf::air::encodedSize(in.mask)) {
      fail("air encode", mask);
    } else if (nf::air::decode(buf, e.size, out) != nf::Status::Ok || out.mask != in.mask) {
      fail("air decode", mask);
    } else {
      for (size_t i = 0; i < nf::air::kFieldCount; ++i) {
        if (out.raw[i] != in.raw[i]) fail("air value", mask);
      }
      if (nf::air::decode(buf, e.size - 1, out) == nf::Status::Ok) fail("air short frame accepted", mask);
    }
  }
}

void trafficRoundTrips() {
  for (uint32_t n = 0; n < 20000; ++n) {
    nf::traffic::Frame in;
    in.periodS = static_cast<uint16_t>(1 + n % 65535);
    in.laneCount = static_cast<uint8_t>(1 + n % nf::traffic::kMaxLanes);
    for (size_t l = 0; l < in.laneCount; ++l) {
      nf::traffic::Lane& lane = in.lanes[l];
      lane.id = static_cast<uint8_t>(1 + (l + n) % nf::traffic::kMaxLanes);  // distinct ids
      lane.congested = ((n >> l) & 1U) != 0;
      lane.mask = static_cast<uint8_t>((n * 7 + l * 13) % 64);
      for (size_t i = 0; i < nf::traffic::kFieldCount; ++i) {
        if ((static_cast<unsigned>(lane.mask) >> i) & 1U)
          lane.raw[i] = pick(nf::traffic::kFields[i], n + static_cast<uint32_t>(l * 8 + i));
      }
    }
    uint8_t buf[nf::traffic::kMaxBytes];
    const nf::Encoded e = nf::traffic::encode(in, buf, sizeof buf);
    nf::traffic::Frame out;
    if (e.status != nf::Status::Ok) {
      fail("traffic encode", n);
    } else if (nf::traffic::decode(buf, e.size, out) != nf::Status::Ok || out.periodS != in.periodS ||
               out.laneCount != in.laneCount) {
      fail("traffic decode", n);
    } else {
      for (size_t l = 0; l < in.laneCount; ++l) {
        const nf::traffic::Lane& a = in.lanes[l];
        const nf::traffic::Lane& b = out.lanes[l];
        if (a.id != b.id || a.congested != b.congested || a.mask != b.mask) fail("traffic lane", n);
        for (size_t i = 0; i < nf::traffic::kFieldCount; ++i) {
          if (a.raw[i] != b.raw[i]) fail("traffic value", n);
        }
      }
    }
  }
}

}  // namespace

int main() {
  airRoundTrips();
  trafficRoundTrips();
  if (failures != 0) {
    printf("node_format_check: %d failures\n", failures);
    return 1;
  }
  printf("node_format_check: README examples (compile time), 32767 air masks, 20000 traffic frames: ok\n");
  return 0;
}
#endif
