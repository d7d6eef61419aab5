#include <doctest/doctest.h>

#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "core/generic_wire.hpp"

using namespace citygate::core;
namespace pb = citygate::v1;
using google::protobuf::util::MessageDifferencer;

namespace {

bool same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  google::protobuf::util::DefaultFieldComparator nanIsNan;
  nanIsNan.set_treat_nan_as_equal(true);
  MessageDifferencer d;
  d.set_field_comparator(&nanIsNan);
  return d.Compare(a, b);
}

// What protobuf's own map makes of the same entries, and what a parser makes of GenericWire's bytes.
struct Both {
  pb::GenericObservation expected;
  GenericWire wire;

  Both() { wire.start(); }
  void value(const std::string& name, double v, const std::string& unit, pb::Quality q) {
    auto& m = (*expected.mutable_values())[name];
    m.set_value(v);
    m.set_unit_code(unit);
    m.set_quality(q);
    wire.value(name, v, unit, q);
  }
  void text(const std::string& name, const std::string& t) {
    (*expected.mutable_text_values())[name] = t;
    wire.text(name, t);
  }
  pb::GenericObservation parsed() const {
    pb::GenericObservation got;
    REQUIRE(got.ParseFromArray(wire.bytes().data(), static_cast<int>(wire.bytes().size())));
    return got;
  }
};

}  // namespace

TEST_CASE("generic wire: parses to the message protobuf's map builds, byte count included") {
  Both b;
  b.value("level", 1.25, "MTR", pb::GOOD);
  b.value("flow", 0.0, "", pb::QUALITY_UNSPECIFIED);  // every field at its default
  b.value("neg_zero", -0.0, "C62", pb::BAD);          // -0.0 is not the default: written
  b.value("big", 1e300, "KMH", pb::UNCERTAIN);
  b.value("nan", std::numeric_limits<double>::quiet_NaN(), "P1", pb::BAD);
  b.text("serial", "SN-0042");
  b.text("empty", "");
  const auto got = b.parsed();
  CHECK(same(got, b.expected));
  CHECK(std::signbit(got.values().at("neg_zero").value()));
  CHECK(std::isnan(got.values().at("nan").value()));
  // The same entries, so the same size as protobuf's serialisation (order aside).
  CHECK(b.wire.bytes().size() == b.expected.ByteSizeLong());
}

TEST_CASE("generic wire: long names and units take multi-byte lengths") {
  Both b;
  const std::string name(300, 'n');  // length varint of 2 bytes
  const std::string unit(200, 'u');  // and an entry over 16 KiB needs 3
  const std::string text(20000, 't');
  b.value(name, 42.0, unit, pb::GOOD);
  b.text(name + "_t", text);
  CHECK(same(b.parsed(), b.expected));
  CHECK(b.wire.bytes().size() == b.expected.ByteSizeLong());
}

TEST_CASE("generic wire: random entries agree with protobuf") {
  std::mt19937_64 rng(20261128);
  std::uniform_int_distribution<int> len(0, 140);
  std::uniform_int_distribution<int> q(0, 3);
  for (int round = 0; round < 200; ++round) {
    Both b;
    const int n = round % 40;
    for (int i = 0; i < n; ++i) {
      const std::string name = "p" + std::to_string(i) + std::string(static_cast<std::size_t>(len(rng)), 'x');
      const auto bits = rng();
      double v;
      std::memcpy(&v, &bits, sizeof v);
      b.value(name, v, std::string(static_cast<std::size_t>(len(rng)) % 4, 'U'), static_cast<pb::Quality>(q(rng)));
    }
    if (round % 3 == 0) b.text("fw", std::string(static_cast<std::size_t>(len(rng)), 'v'));
    CHECK(same(b.parsed(), b.expected));
    CHECK(b.wire.bytes().size() == b.expected.ByteSizeLong());
  }
}

TEST_CASE("generic wire: appended to a serialised Reading it is that Reading's generic field") {
  pb::Reading r;
  r.set_seq(7);
  r.set_sensor_id("gen-1");
  r.set_quality(pb::GOOD);
  r.mutable_source()->mutable_modbus()->set_bus("rs485");
  Both b;
  b.value("level", 3.5, "MTR", pb::GOOD);
  b.text("fw", "1.2.3");
  std::string bytes = r.SerializeAsString();
  b.wire.appendTo(bytes);

  pb::Reading expected = r;
  *expected.mutable_generic() = b.expected;
  pb::Reading got;
  REQUIRE(got.ParseFromString(bytes));
  CHECK(same(got, expected));
  CHECK(bytes.size() == expected.ByteSizeLong());
}

TEST_CASE("generic wire: an observation with no entries is still present") {
  GenericWire w;
  w.start();
  std::string bytes;
  w.appendTo(bytes);
  pb::Reading got;
  REQUIRE(got.ParseFromString(bytes));
  CHECK(got.has_generic());
  CHECK(got.generic().values().empty());
  w.reset();
  CHECK_FALSE(w.active());
}
