// Control-socket framing: headers, frames split at every byte boundary, several frames in one
// chunk, the size limit, and the request checks the handlers rely on.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "control/framing.hpp"

using namespace citygate::control;
namespace pb = citygate::v1;

namespace {

std::vector<std::string> decodeAll(FrameDecoder& d, const std::string& bytes, std::size_t chunk) {
  std::vector<std::string> frames;
  std::size_t off = 0;
  while (off < bytes.size()) {
    const std::size_t n = std::min(chunk, bytes.size() - off);
    std::span<const std::uint8_t> in(reinterpret_cast<const std::uint8_t*>(bytes.data()) + off, n);
    while (!in.empty()) {
      in = in.subspan(d.feed(in));
      if (d.state() == FrameDecoder::State::Ready) {
        frames.emplace_back(d.frame());
        d.next();
      } else if (d.state() == FrameDecoder::State::Oversize) {
        return frames;
      }
    }
    off += n;
  }
  return frames;
}

pb::ControlRequest statusRequest(std::uint64_t id) {
  pb::ControlRequest r;
  r.set_id(id);
  r.mutable_status();
  return r;
}

}  // namespace

TEST_CASE("the header is the big-endian length") {
  std::uint8_t h[4];
  encodeHeader(0x01020304, h);
  CHECK(h[0] == 1);
  CHECK(h[3] == 4);
  CHECK(decodeHeader(h) == 0x01020304U);
}

TEST_CASE("frames come out whole whatever the chunk size") {
  std::string stream;
  for (std::uint64_t id = 1; id <= 3; ++id) stream += frameMessage(statusRequest(id), kMaxRequestBytes);
  stream += frameMessage(pb::ControlRequest(), kMaxRequestBytes);  // an empty message: a 0-byte frame
  for (std::size_t chunk : {1U, 2U, 3U, 5U, 7U, 64U, 4096U}) {
    CAPTURE(chunk);
    FrameDecoder d(kMaxRequestBytes);
    const auto frames = decodeAll(d, stream, chunk);
    REQUIRE(frames.size() == 4);
    for (std::uint64_t id = 1; id <= 3; ++id) {
      pb::ControlRequest r;
      std::string error;
      REQUIRE(parseRequest(frames[id - 1], r, error));
      CHECK(r.id() == id);
      CHECK(r.has_status());
    }
    CHECK(frames[3].empty());
    CHECK(d.state() == FrameDecoder::State::NeedMore);
    CHECK(d.pending() == 0);
  }
}

TEST_CASE("an unfinished frame is pending, and nothing is taken once a frame is ready") {
  const std::string f = frameMessage(statusRequest(9), kMaxRequestBytes);
  FrameDecoder d(kMaxRequestBytes);
  const auto* p = reinterpret_cast<const std::uint8_t*>(f.data());
  CHECK(d.feed({p, 2}) == 2);
  CHECK(d.pending() == 2);
  CHECK(d.state() == FrameDecoder::State::NeedMore);
  const std::string twice = f.substr(2) + f;
  const auto* q = reinterpret_cast<const std::uint8_t*>(twice.data());
  const std::size_t used = d.feed({q, twice.size()});
  CHECK(used == f.size() - 2);  // stops at the end of the first frame
  REQUIRE(d.state() == FrameDecoder::State::Ready);
  CHECK(d.feed({q + used, twice.size() - used}) == 0);
}

TEST_CASE("a length above the limit is Oversize for good") {
  FrameDecoder d(16);
  const std::uint8_t header[] = {0, 0, 0, 17, 'x', 'y'};
  CHECK(d.feed(header) == 4);
  CHECK(d.state() == FrameDecoder::State::Oversize);
  CHECK(d.announced() == 17);
  const std::uint8_t more[] = {0, 0, 0, 1, 'a'};
  CHECK(d.feed(more) == 0);
  CHECK(d.state() == FrameDecoder::State::Oversize);
  // exactly the limit is fine
  FrameDecoder ok(16);
  std::string f(4 + 16, 'z');
  encodeHeader(16, reinterpret_cast<std::uint8_t*>(f.data()));
  CHECK(decodeAll(ok, f, 3).size() == 1);
}

TEST_CASE("frameMessage refuses messages above the limit") {
  pb::ControlRequest r;
  r.mutable_config_apply()->set_text(std::string(100, 'a'));
  CHECK(frameMessage(r, 50).empty());
  CHECK_FALSE(frameMessage(r, 200).empty());
}

TEST_CASE("garbage is not a request") {
  pb::ControlRequest r;
  std::string error;
  CHECK_FALSE(parseRequest(std::string("\xff\xff\xff\xff\x0f", 5), r, error));
  CHECK(error.find("malformed request") != std::string::npos);
}

TEST_CASE("checkRequest: what the handlers may rely on") {
  pb::ControlRequest r;
  CHECK(checkRequest(r).find("no command") != std::string::npos);
  r.mutable_status();
  CHECK(checkRequest(r).empty());

  pb::ControlRequest read;
  auto* m = read.mutable_modbus_read();
  m->set_bus("b");
  m->set_unit_id(1);
  m->set_count(4);
  CHECK(checkRequest(read).empty());
  m->set_count(0);
  CHECK_FALSE(checkRequest(read).empty());
  m->set_count(126);
  CHECK_FALSE(checkRequest(read).empty());
  m->set_table(pb::COIL);
  CHECK(checkRequest(read).empty());  // 2000 bits allowed
  m->set_table(static_cast<pb::RegisterTable>(99));
  CHECK_FALSE(checkRequest(read).empty());
  m->set_table(pb::HOLDING_REGISTER);
  m->set_count(10);
  m->set_address(65530);
  CHECK(checkRequest(read).find("outside 0..65535") != std::string::npos);
  m->set_address(0);
  m->set_unit_id(256);
  CHECK_FALSE(checkRequest(read).empty());
  m->set_unit_id(1);
  m->set_bus("");
  CHECK_FALSE(checkRequest(read).empty());

  pb::ControlRequest scan;
  scan.mutable_modbus_scan()->set_bus("b");
  CHECK(checkRequest(scan).empty());
  scan.mutable_modbus_scan()->set_from(10);
  scan.mutable_modbus_scan()->set_to(5);
  CHECK_FALSE(checkRequest(scan).empty());

  pb::ControlRequest level;
  level.mutable_log_level()->set_level("loud");
  CHECK(checkRequest(level).find("unknown log level") != std::string::npos);
  level.mutable_log_level()->set_level("debug");
  CHECK(checkRequest(level).empty());

  pb::ControlRequest dev;
  dev.mutable_devices()->set_device_id(std::string(65, 'x'));
  CHECK_FALSE(checkRequest(dev).empty());
}

TEST_CASE("errorResponse carries code, message and id") {
  const auto r = errorResponse(7, pb::ControlError::BUSY, "later");
  CHECK(r.id() == 7);
  CHECK(r.error().code() == pb::ControlError::BUSY);
  CHECK(r.error().message() == "later");
}

TEST_CASE("the buffer grows with the bytes that arrive, not with the length announced") {
  FrameDecoder d(kMaxRequestBytes);
  std::string head(4, '\0');
  encodeHeader(kMaxRequestBytes, reinterpret_cast<std::uint8_t*>(head.data()));
  std::string chunk = head + std::string(1000, 'x');
  d.feed({reinterpret_cast<const std::uint8_t*>(chunk.data()), chunk.size()});
  CHECK(d.pending() == 1004);
  CHECK(d.held() <= FrameDecoder::kGrowStep);  // 1 MiB announced, one step held
  const std::string more(300 * 1024, 'y');
  d.feed({reinterpret_cast<const std::uint8_t*>(more.data()), more.size()});
  CHECK(d.held() >= d.pending() - 4);
  CHECK(d.held() <= d.pending() + FrameDecoder::kGrowStep);
  d.reset();
  CHECK(d.pending() == 0);
  CHECK(d.held() == 0);
  CHECK(d.state() == FrameDecoder::State::NeedMore);
}

TEST_CASE("a string field that is not UTF-8 is a malformed request, found in nested messages too") {
  pb::ControlRequest r;
  r.set_id(4);
  r.mutable_modbus_read()->set_bus("bus-\xc3\xa9");  // é in UTF-8: fine
  std::string wire = r.SerializeAsString();
  pb::ControlRequest out;
  std::string error;
  CHECK(parseRequest(wire, out, error));
  CHECK(out.modbus_read().bus() == "bus-\xc3\xa9");
  // The same bytes with a Latin-1 é (one byte, so the lengths stay right: replace two by "e\xe9").
  const auto at = wire.find("\xc3\xa9");
  wire.replace(at, 2, "e\xe9");
  CHECK_FALSE(parseRequest(wire, out, error));
  CHECK(error == "malformed request: citygate.v1.ModbusReadRequest.bus is not UTF-8");
  pb::ControlRequest apply;
  apply.mutable_config_apply()->set_text("# Zurich\n");
  std::string applyWire = apply.SerializeAsString();
  applyWire[applyWire.find("Zurich") + 1] = '\xfc';  // as a Latin-1 editor saves it
  CHECK_FALSE(parseRequest(applyWire, out, error));
  CHECK(error == "malformed request: citygate.v1.ConfigApplyRequest.text is not UTF-8");
  // Truncated or garbage wire format: refused by the parser as before.
  CHECK_FALSE(parseRequest(std::string("\x0a\x7f\x01", 3), out, error));
  CHECK(error.find("malformed request: not a citygate.v1.ControlRequest") == 0);
}

TEST_CASE("checkRequest: device retry wants a device id, mqtt reconnect takes nothing") {
  pb::ControlRequest r;
  r.mutable_device_retry();
  CHECK(checkRequest(r).find("empty") != std::string::npos);
  r.mutable_device_retry()->set_device_id(std::string(65, 'x'));
  CHECK(checkRequest(r).find("longer than 64") != std::string::npos);
  r.mutable_device_retry()->set_device_id("air-1");
  CHECK(checkRequest(r).empty());
  pb::ControlRequest m;
  m.mutable_mqtt_reconnect();
  CHECK(checkRequest(m).empty());
}
