// citygatectl's side of a sensor node's service UART (cli/node_link.hpp): frames as the node's
// firmware reads them (the bytes below are what firmware/core/service_frame.cpp makes; the
// corpus tests/data/fuzz/service_frame holds the same), split anywhere, and every damaged frame
// named.
#include <doctest/doctest.h>

#include <string>

#include "cli/node_link.hpp"

using namespace citygate::cli;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

}  // namespace

TEST_CASE("node link: a SHOW request is the bytes the node expects") {
  CHECK(node::encodeFrame(0x01, 2, "") == bytes({0xC0, 0x01, 0x02, 0x00, 0x00, 0x17, 0x6C, 0x7C, 0x9A, 0xC0}));
  CHECK(node::encodeFrame(0x33, 5, "abc") ==
        bytes({0xC0, 0x33, 0x05, 0x03, 0x00, 0x61, 0x62, 0x63, 0x02, 0x13, 0xEF, 0xD9, 0xC0}));
  CHECK(node::crc32("123456789") == 0xCBF43926u);
}

TEST_CASE("node link: END and ESC in a frame are escaped, and decode back, split at every byte") {
  const std::string payload = bytes({0xC0, 0xDB, 0x00, 0xDC, 0xDD, 0xC0});
  const std::string wire = node::encodeFrame(0x82, 7, payload);
  CHECK(wire.find(static_cast<char>(0xC0), 1) == wire.size() - 1);
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    node::FrameDecoder d;
    auto events = d.feed(wire.substr(0, cut));
    const auto rest = d.feed(wire.substr(cut));
    events.insert(events.end(), rest.begin(), rest.end());
    REQUIRE(events.size() == 1);
    REQUIRE(events[0].frame);
    CHECK(events[0].frame->type == 0x82);
    CHECK(events[0].frame->seq == 7);
    CHECK(events[0].frame->payload == payload);
  }
}

TEST_CASE("node link: damaged frames are named, END END is nothing") {
  node::FrameDecoder d;
  CHECK(d.feed(bytes({0xC0, 0xC0, 0xC0})).empty());
  std::string wire = node::encodeFrame(0x81, 3, "record");
  wire[6] = static_cast<char>(wire[6] ^ 0x10);
  auto e = d.feed(wire);
  REQUIRE(e.size() == 1);
  CHECK_FALSE(e[0].frame);
  CHECK(e[0].error == "frame CRC does not match");
  e = d.feed(bytes({0xC0, 0x81, 0x03, 0xC0}));
  REQUIRE(e.size() == 1);
  CHECK(e[0].error.find("shorter than a header") != std::string::npos);
  e = d.feed(bytes({0xC0, 0x81, 0x03, 0x05, 0x00, 0x01, 0x02, 0x03, 0x04, 0xC0}));
  REQUIRE(e.size() == 1);
  CHECK(e[0].error.find("its header says 13") != std::string::npos);
  e = d.feed(bytes({0xC0, 0x81, 0x03, 0x00, 0x7F, 0, 0, 0, 0, 0xC0}));
  REQUIRE(e.size() == 1);
  CHECK(e[0].error.find("over 256") != std::string::npos);
  e = d.feed(bytes({0xC0, 0x81, 0xDB, 0x41, 0xC0}));
  REQUIRE(e.size() == 1);
  CHECK(e[0].error == "bad SLIP escape");
  // And the decoder is whole again for the next frame.
  e = d.feed(node::encodeFrame(0x84, 9, "x"));
  REQUIRE(e.size() == 1);
  CHECK(e[0].frame);
}

TEST_CASE("node link: a node's ERROR reply and its reason names") {
  const auto e = node::parseError(bytes({8}) + "traffic.unit_id 0 is not 1..247");
  CHECK(e.reason == 8);
  CHECK(node::reasonName(e.reason) == "invalid");
  CHECK(e.text == "traffic.unit_id 0 is not 1..247");
  CHECK(node::reasonName(1) == "bad_crc");
  CHECK(node::reasonName(10) == "flash_error");
  CHECK(node::reasonName(42) == "reason 42");
}

TEST_CASE("node link: a path that is no terminal is refused with its name") {
  node::SerialPort port;
  std::string error;
  int code = 0;
  CHECK_FALSE(port.open("/dev/null", node::kServiceBaud, error, code));
  CHECK(error == "/dev/null is not a serial port (not a terminal device)");
  CHECK(code == 1);
  node::SerialPort missing;
  CHECK_FALSE(missing.open("/nonexistent/ttyUSB9", node::kServiceBaud, error, code));
  CHECK(code == 5);
  node::SerialPort odd;
  CHECK_FALSE(odd.open("/dev/null", 12345, error, code));
  CHECK(code == 2);
}
