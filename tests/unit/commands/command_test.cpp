// decodeCommand(), checkExpiry() and RecentIds: every reason a command is refused before it
// reaches a device.
#include "commands/command.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

namespace citygate::commands {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

pb::Command writeCommand() {
  pb::Command c;
  c.set_request_id("req-1");
  c.set_device("ctl-3");
  c.mutable_expires_at()->set_seconds(kNow + 60);
  c.mutable_write()->set_point("period");
  c.mutable_write()->set_value(30);
  return c;
}

Decoded decode(const pb::Command& c) {
  return decodeCommand(c.SerializeAsString());
}

TEST_CASE("a well-formed write or downlink decodes") {
  auto d = decode(writeCommand());
  CHECK(d.ok());
  CHECK(d.command.request_id() == "req-1");
  CHECK(d.command.write().value() == 30);
  pb::Command dl = writeCommand();
  dl.mutable_downlink()->set_f_port(10);
  dl.mutable_downlink()->set_payload("\x01\x02");
  CHECK(decode(dl).ok());
  pb::Command byAddress = writeCommand();
  byAddress.mutable_write()->clear_point();
  byAddress.mutable_write()->set_table(pb::HOLDING_REGISTER);
  byAddress.mutable_write()->set_address(20);
  CHECK(decode(byAddress).ok());
}

TEST_CASE("every malformed command is BAD_COMMAND with a reason") {
  auto refused = [](const pb::Command& c, const char* why) {
    auto d = decode(c);
    CAPTURE(why);
    CHECK(d.refusal == pb::BAD_COMMAND);
    CHECK(d.detail.find(why) != std::string::npos);
    return d;
  };
  pb::Command c = writeCommand();
  c.clear_request_id();
  refused(c, "no request_id");
  c = writeCommand();
  c.set_request_id(std::string(65, 'x'));
  CHECK(refused(c, "printable").command.request_id().empty());  // not echoed
  c.set_request_id("a\nb");
  refused(c, "printable");
  c = writeCommand();
  c.clear_device();
  refused(c, "no device");
  c = writeCommand();
  c.clear_expires_at();
  refused(c, "no expires_at");
  c = writeCommand();
  c.mutable_expires_at()->set_nanos(-1);
  refused(c, "not a valid time");
  c = writeCommand();
  c.clear_write();
  refused(c, "no action");
  c = writeCommand();
  c.mutable_write()->set_value(std::numeric_limits<double>::quiet_NaN());
  refused(c, "finite");
  c.mutable_write()->set_value(std::numeric_limits<double>::infinity());
  refused(c, "finite");
  c = writeCommand();
  c.mutable_write()->clear_point();
  refused(c, "names no point");
  c = writeCommand();
  c.mutable_write()->set_table(pb::COIL);
  refused(c, "twice");
  c = writeCommand();
  c.mutable_write()->clear_point();
  c.mutable_write()->set_table(pb::HOLDING_REGISTER);
  c.mutable_write()->set_address(65536);
  refused(c, "65535");
  c = writeCommand();
  c.mutable_downlink()->set_f_port(0);
  refused(c, "f_port");
  c.mutable_downlink()->set_f_port(224);
  refused(c, "f_port");
  c.mutable_downlink()->set_f_port(1);
  c.mutable_downlink()->set_payload(std::string(kMaxDownlinkPayload + 1, 'x'));
  refused(c, "bytes");
}

TEST_CASE("a refill names an epoch and a range, no device, at most 100000 seqs") {
  pb::Command c;
  c.set_request_id("rf-1");
  c.mutable_expires_at()->set_seconds(kNow + 60);
  c.mutable_refill()->set_epoch("0123456789abcdef");
  c.mutable_refill()->set_from_seq(10);
  c.mutable_refill()->set_to_seq(20);
  CHECK(decode(c).ok());  // no device needed
  c.mutable_refill()->set_to_seq(10 + kMaxRefillReadings - 1);
  CHECK(decode(c).ok());
  auto bad = [&](auto mutate, const char* why) {
    pb::Command m = c;
    mutate(m);
    const auto d = decode(m);
    CHECK(d.refusal == pb::BAD_COMMAND);
    CHECK(d.detail.find(why) != std::string::npos);
  };
  bad([](pb::Command& m) { m.mutable_refill()->set_to_seq(10 + kMaxRefillReadings); }, "split it");
  bad([](pb::Command& m) { m.mutable_refill()->set_from_seq(0); }, "from_seq");
  bad([](pb::Command& m) { m.mutable_refill()->set_to_seq(9); }, "from_seq <= to_seq");
  bad([](pb::Command& m) { m.mutable_refill()->clear_epoch(); }, "epoch");
  bad([](pb::Command& m) { m.mutable_refill()->set_epoch("\x01"); }, "epoch");
  bad([](pb::Command& m) { m.set_device(std::string(100, 'd')); }, "device");  // a device, if named, is checked
}

TEST_CASE("bytes that are no Command, or too many, are refused with nothing to answer") {
  auto d = decodeCommand("{\"request_id\":\"r1\"}");
  CHECK(d.refusal == pb::BAD_COMMAND);
  CHECK(d.command.request_id().empty());
  std::string big = writeCommand().SerializeAsString();
  big.append(kMaxCommandBytes, '\0');
  d = decodeCommand(big);
  CHECK(d.refusal == pb::BAD_COMMAND);
  CHECK(d.detail.find("at most") != std::string::npos);
  CHECK(decodeCommand("").refusal == pb::BAD_COMMAND);
}

TEST_CASE("expiry: late is EXPIRED, too far ahead is BAD_COMMAND, in between is fine") {
  const WallTime now{std::chrono::seconds(kNow)};
  pb::Command c = writeCommand();
  CHECK_FALSE(checkExpiry(c, now, std::chrono::seconds(3600)));
  c.mutable_expires_at()->set_seconds(kNow - 2);
  auto late = checkExpiry(c, now, std::chrono::seconds(3600));
  REQUIRE(late);
  CHECK(late->refusal == pb::EXPIRED);
  CHECK(late->detail.find("2.0 s before it arrived") != std::string::npos);
  c.mutable_expires_at()->set_seconds(kNow + 3601);
  auto far = checkExpiry(c, now, std::chrono::seconds(3600));
  REQUIRE(far);
  CHECK(far->refusal == pb::BAD_COMMAND);
  c.mutable_expires_at()->set_seconds(kNow);  // expiring this very instant still counts
  CHECK_FALSE(checkExpiry(c, now, std::chrono::seconds(3600)));
}

TEST_CASE("RecentIds answers a duplicate once and forgets the oldest beyond its capacity") {
  RecentIds r(3);
  CHECK(r.insert("a"));
  CHECK_FALSE(r.insert("a"));
  CHECK(r.insert("b"));
  CHECK(r.insert("c"));
  CHECK(r.insert("d"));  // "a" goes
  CHECK(r.size() == 3);
  CHECK_FALSE(r.contains("a"));
  CHECK(r.insert("a"));
  CHECK_FALSE(r.insert("d"));
  r.setCapacity(1);
  CHECK(r.size() == 1);
  CHECK(r.contains("a"));
}

}  // namespace
}  // namespace citygate::commands
