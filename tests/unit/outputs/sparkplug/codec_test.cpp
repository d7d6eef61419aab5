#include "outputs/sparkplug/codec.hpp"

#include <doctest/doctest.h>

#include <string>

#include "sparkplug_b/sparkplug_b.pb.h"

namespace citygate::sparkplug {
namespace {

namespace spb = org::eclipse::tahu::protobuf;

std::string fromHex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 3) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

TEST_CASE("the topics of one edge node") {
  const Topics t("district-7", "gw-1", "scada");
  CHECK(t.nbirth == "spBv1.0/district-7/NBIRTH/gw-1");
  CHECK(t.ndeath == "spBv1.0/district-7/NDEATH/gw-1");
  CHECK(t.ncmd == "spBv1.0/district-7/NCMD/gw-1");
  CHECK(t.dcmdFilter == "spBv1.0/district-7/DCMD/gw-1/+");
  CHECK(t.state == "spBv1.0/STATE/scada");
  CHECK(t.legacyState == "STATE/scada");
  CHECK(t.device("DDATA", "air-1") == "spBv1.0/district-7/DDATA/gw-1/air-1");
  CHECK(t.dcmdDevice("spBv1.0/district-7/DCMD/gw-1/air-1") == "air-1");
  CHECK(t.dcmdDevice("spBv1.0/district-7/DCMD/gw-1/") == "");
  CHECK(t.dcmdDevice("spBv1.0/district-7/DCMD/gw-1/a/b") == "");
  CHECK(t.dcmdDevice("spBv1.0/district-7/DCMD/gw-2/air-1") == "");
  CHECK(Topics("g", "e", "").state.empty());
}

TEST_CASE("NDEATH holds exactly one metric, bdSeq as Int64, and no seq") {
  spb::Payload p;
  REQUIRE(p.ParseFromString(ndeathPayload(42, 1700000000000)));
  CHECK_FALSE(p.has_seq());
  CHECK(p.timestamp() == 1700000000000);
  REQUIRE(p.metrics_size() == 1);
  CHECK(p.metrics(0).name() == "bdSeq");
  CHECK(p.metrics(0).datatype() == spb::Int64);
  CHECK(p.metrics(0).long_value() == 42);
}

TEST_CASE("the NCMD rebirth vector of protocols.md 1.9 decodes") {
  const auto d = decodeCommand(fromHex(
      "08 80 d0 95 ff bc 31 12 1a 0a 14 4e 6f 64 65 20 43 6f 6e 74 72 6f 6c 2f 52 65 62 69 72 74 68 20 0b 70 01"));
  REQUIRE(d.ok());
  REQUIRE(d.metrics.size() == 1);
  CHECK(d.metrics[0].name == kRebirth);
  REQUIRE(d.metrics[0].boolean);
  CHECK(*d.metrics[0].boolean);
}

TEST_CASE("command values: signed types sign-extended from their width, in either field") {
  auto one = [](auto fill) {
    spb::Payload p;
    auto* m = p.add_metrics();
    m->set_name("x");
    fill(*m);
    return decodeCommand(p.SerializeAsString());
  };
  // Tahu's Int16 -5: the 32-bit pattern in int_value (protocols.md 1.8).
  auto d = one([](auto& m) {
    m.set_datatype(spb::Int16);
    m.set_int_value(0xFFFFFFFBU);
  });
  REQUIRE(d.ok());
  CHECK(*d.metrics[0].number == -5.0);
  d = one([](auto& m) {
    m.set_datatype(spb::Int8);
    m.set_int_value(0xFBU);  // the narrow form
  });
  CHECK(*d.metrics[0].number == -5.0);
  d = one([](auto& m) {
    m.set_datatype(spb::Int64);
    m.set_long_value(~std::uint64_t{4});
  });
  CHECK(*d.metrics[0].number == -5.0);
  d = one([](auto& m) {
    m.set_datatype(spb::UInt32);
    m.set_long_value(4000000000ULL);  // UInt32 in long_value, as some Tahu versions write it
  });
  CHECK(*d.metrics[0].number == 4000000000.0);
  d = one([](auto& m) { m.set_double_value(21.5); });
  CHECK(*d.metrics[0].number == 21.5);
  d = one([](auto& m) { m.set_float_value(0.5F); });
  CHECK(*d.metrics[0].number == 0.5);
  d = one([](auto& m) { m.set_string_value("on"); });
  CHECK_FALSE(d.metrics[0].number);
  CHECK(*d.metrics[0].text == "on");
}

TEST_CASE("commands that are refused, with the reason") {
  CHECK(decodeCommand("\xff\xff\xff").error.find("does not parse") != std::string::npos);
  CHECK(decodeCommand("").error == "a command with no metric");
  spb::Payload p;
  p.add_metrics()->set_double_value(1);
  CHECK(decodeCommand(p.SerializeAsString()).error == "a metric with neither name nor alias");
  spb::Payload many;
  for (int i = 0; i < 65; ++i) many.add_metrics()->set_alias(static_cast<std::uint64_t>(i));
  CHECK(decodeCommand(many.SerializeAsString()).error.find("65 metrics") != std::string::npos);
  CHECK(decodeCommand(std::string(kMaxCommandBytes + 1, '\0')).error.find("bytes") != std::string::npos);
}

TEST_CASE("STATE: 3.0's JSON and 2.2's plain form") {
  std::string why;
  auto s = parseState(R"({"online":true,"timestamp":1700000000000})", &why);
  REQUIRE(s);
  CHECK(s->online);
  CHECK(*s->timestamp == 1700000000000ULL);
  s = parseState(" { \"timestamp\" : 5 , \"extra\": [1], \"online\" : false } ", &why);
  CHECK_FALSE(s);  // an array is no literal, number or string
  s = parseState(R"({"timestamp":5,"extra":"x","online":false,"n":null,"f":-1.5e3})", &why);
  REQUIRE(s);
  CHECK_FALSE(s->online);
  CHECK(*s->timestamp == 5);
  s = parseState("ONLINE", &why);
  REQUIRE(s);
  CHECK(s->online);
  CHECK_FALSE(s->timestamp);
  CHECK_FALSE(parseState("OFFLINE", &why)->online);
  for (const char* bad : {"", "{}", R"({"timestamp":1})", R"({"online":"true"})", R"({"online":true} x)",
                          R"({"online":true,"timestamp":-1})", R"({"online":true,"timestamp":12345678901234567890})",
                          R"({"online":tr)", "{\"onl\\"}) {
    CAPTURE(bad);
    why.clear();
    CHECK_FALSE(parseState(bad, &why));
    CHECK_FALSE(why.empty());
  }
}

}  // namespace
}  // namespace citygate::sparkplug
