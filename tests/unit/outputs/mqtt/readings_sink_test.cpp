#include "outputs/mqtt/readings_sink.hpp"

#include <doctest/doctest.h>

#include <optional>

#include "citygate/v1/reading.pb.h"
#include "fake_client.hpp"

namespace citygate::mqtt {
namespace {

using testing::FakeBroker;
using testing::FakeClient;
using testing::settle;

struct Fixture {
  boost::asio::io_context ioc;
  core::SystemClock clock{ioc.get_executor()};  // reconnect waits of 0 ms, run by settle()
  std::shared_ptr<FakeBroker> broker = std::make_shared<FakeBroker>();
  std::shared_ptr<Session> session;
  std::shared_ptr<ReadingsSink> sink;
  std::vector<bool> ready;

  explicit Fixture(std::string epoch = {}) {
    broker->ioc = &ioc;
    SessionOptions o;
    o.gatewayId = "gw-1";
    o.bootId = "boot-7";
    o.epoch = std::move(epoch);
    o.topicPrefix = "city/";
    o.reconnectMin = std::chrono::milliseconds(0);
    o.reconnectMax = std::chrono::milliseconds(0);
    session = std::make_shared<Session>(ioc.get_executor(), clock, std::make_unique<FakeClient>(broker), o,
                                        testing::nullLogger());
    sink = ReadingsSink::create(session);
    sink->setReadyCallback([this](bool up) { ready.push_back(up); });
    session->start();
  }
  ~Fixture() {  // NOLINT(bugprone-exception-escape): a test fixture; asio throws only on a broken io_context
    session->release();
    settle(ioc);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  void connect() {
    broker->answerConnect(Ok{});
    settle(ioc);
  }
  // Delivers one batch and answers its publish with `result`.
  core::Outcome deliver(Status result) {
    std::optional<core::Outcome> outcome;
    sink->asyncDeliver("batch", 3, [&outcome](core::Outcome o) { outcome = o; });
    const auto& p = broker->published.back();
    CHECK(p.topic == "city/gw-1/readings");
    CHECK(p.payload == "batch");
    CHECK(p.qos == 1);
    CHECK_FALSE(p.retain);
    broker->answer(p.done, std::move(result));
    settle(ioc);
    REQUIRE(outcome.has_value());
    return *outcome;
  }
};

TEST_CASE("the readings sink is ready while the session is connected") {
  Fixture f;
  CHECK_FALSE(f.sink->ready());
  f.connect();
  CHECK(f.sink->ready());
  CHECK(f.ready == std::vector<bool>{true});
  f.broker->dropLink("gone");
  settle(f.ioc);
  CHECK_FALSE(f.sink->ready());
  CHECK(f.ready == std::vector<bool>{true, false});
  f.connect();
  CHECK(f.ready == std::vector<bool>{true, false, true});
}

TEST_CASE("a batch acknowledged is Delivered and counted") {
  Fixture f;
  f.connect();
  CHECK(f.deliver(Ok{}) == core::Outcome::Delivered);
  CHECK(f.sink->stats().batchesPublished == 1);
  CHECK(f.sink->stats().batchesAcked == 1);
  CHECK(f.sink->stats().published == 3);
  CHECK(f.sink->stats().acked == 3);
}

TEST_CASE("a batch that fails on the link is Retry, one that can never be sent is Rejected") {
  Fixture f;
  f.connect();
  CHECK(f.deliver(Error{"not connected", ErrorCause::NotConnected}) == core::Outcome::Retry);
  CHECK(f.deliver(Error{"error -12", ErrorCause::Unspecified}) == core::Outcome::Retry);
  CHECK(f.deliver(Error{"connection failed", ErrorCause::Unreachable}) == core::Outcome::Retry);
  CHECK(f.deliver(Error{"bad topic", ErrorCause::Invalid}) == core::Outcome::Rejected);
  CHECK(f.sink->stats().batchesAcked == 0);
  CHECK(f.sink->stats().batchesRejected == 1);
  CHECK(f.sink->stats().acked == 0);
}

TEST_CASE("after stop, a batch is not lost silently: it completes with Retry") {
  Fixture f;
  f.connect();
  f.session->release();
  std::optional<core::Outcome> outcome;
  f.sink->asyncDeliver("batch", 1, [&outcome](core::Outcome o) { outcome = o; });
  settle(f.ioc);
  REQUIRE(outcome.has_value());
  CHECK(*outcome == core::Outcome::Retry);
}

}  // namespace
TEST_CASE("the readings sink frames a ReadingBatch byte for byte as protobuf would, from the spool's records") {
  Fixture f("0123456789abcdef");
  f.connect();
  v1::ReadingBatch expected;
  expected.set_gateway_id("gw-1");
  expected.set_boot_id("boot-7");
  expected.set_epoch("0123456789abcdef");
  std::string payload;
  f.sink->beginBatch(payload);
  for (std::uint64_t seq : {1ULL, 2ULL, 300ULL}) {
    v1::Reading r;
    r.set_seq(seq);
    r.set_sensor_id(std::string(seq, 's'));  // 300 bytes: a two-byte length
    *expected.add_readings() = r;
    f.sink->addRecord(payload, seq, r.SerializeAsString());
  }
  // The epoch follows the readings, as protobuf writes it: added when the batch is sent.
  f.sink->asyncDeliver(std::move(payload), 3, [](core::Outcome) {});
  REQUIRE_FALSE(f.broker->published.empty());
  CHECK(f.broker->published.back().payload == expected.SerializeAsString());
}

}  // namespace citygate::mqtt

namespace citygate::mqtt::refill_test {

namespace pb = citygate::v1;

// Frames and delivers a batch of readings first..last; answers its publish with `result`.
void sendBatch(Fixture& f, std::uint64_t first, std::uint64_t last, Status result) {
  std::string payload;
  f.sink->beginBatch(payload);
  for (std::uint64_t seq = first; seq <= last; ++seq) {
    pb::Reading r;
    r.set_seq(seq);
    f.sink->addRecord(payload, seq, r.SerializeAsString());
  }
  f.sink->asyncDeliver(std::move(payload), static_cast<std::uint32_t>(last - first + 1), [](core::Outcome) {});
  f.broker->answer(f.broker->published.back().done, std::move(result));
  settle(f.ioc);
}

pb::Refill refillOf(const std::string& epoch, std::uint64_t from, std::uint64_t to) {
  pb::Refill r;
  r.set_epoch(epoch);
  r.set_from_seq(from);
  r.set_to_seq(to);
  return r;
}

TEST_CASE("a refill resends the kept batches of the range, marked resent, then says DONE") {
  Fixture f("ep0123456789abcd");
  f.sink->setRetention(1 << 20, std::chrono::seconds(3600));
  f.connect();
  sendBatch(f, 1, 10, Ok{});
  sendBatch(f, 11, 20, Error{"link lost", ErrorCause::NotConnected});  // not acknowledged: not kept
  sendBatch(f, 11, 20, Ok{});                                          // sent again, acknowledged
  sendBatch(f, 21, 30, Ok{});
  const std::size_t before = f.broker->published.size();
  std::vector<pb::CommandResult> answers;
  f.sink->refill(refillOf("ep0123456789abcd", 15, 22), [&](pb::CommandResult r) { answers.push_back(r); });
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].status() == pb::CommandResult::ACCEPTED);
  CHECK(answers[0].refill().resent() == 20);  // whole batches 11..20 and 21..30
  CHECK(answers[0].refill().missing() == 0);
  CHECK(answers[0].refill().retained_from_seq() == 1);
  CHECK(answers[0].refill().retained_to_seq() == 30);
  REQUIRE(f.broker->published.size() == before + 2);
  for (std::size_t i = before; i < f.broker->published.size(); ++i) {
    pb::ReadingBatch b;
    REQUIRE(b.ParseFromString(f.broker->published[i].payload));
    CHECK(b.resent());
    CHECK(b.epoch() == "ep0123456789abcd");
    CHECK(b.readings(0).seq() == (i == before ? 11U : 21U));
    f.broker->answer(f.broker->published[i].done, Ok{});
  }
  settle(f.ioc);
  REQUIRE(answers.size() == 2);
  CHECK(answers[1].status() == pb::CommandResult::DONE);
  CHECK(f.sink->stats().resentReadings == 20);
}

TEST_CASE("a refill is refused for another epoch, without retention, or beyond what is kept") {
  Fixture f("ep0123456789abcd");
  f.connect();
  std::vector<pb::CommandResult> answers;
  auto take = [&](pb::CommandResult r) { answers.push_back(r); };
  f.sink->refill(refillOf("ep0123456789abcd", 1, 5), take);
  REQUIRE(answers.size() == 1);
  CHECK(answers.back().refusal() == pb::REFILL_UNAVAILABLE);
  CHECK(answers.back().detail().find("retain_bytes") != std::string::npos);

  f.sink->setRetention(1 << 20, std::chrono::seconds(3600));
  sendBatch(f, 1, 10, Ok{});
  f.sink->refill(refillOf("another-epoch", 1, 5), take);
  CHECK(answers.back().refusal() == pb::REFILL_UNAVAILABLE);
  CHECK(answers.back().detail().find("epoch") != std::string::npos);
  f.sink->refill(refillOf("ep0123456789abcd", 50, 60), take);
  CHECK(answers.back().status() == pb::CommandResult::REFUSED);
  CHECK(answers.back().refill().retained_to_seq() == 10);
  // A resend the broker does not acknowledge: FAILED, ask again.
  f.sink->refill(refillOf("ep0123456789abcd", 1, 5), take);
  CHECK(answers.back().status() == pb::CommandResult::ACCEPTED);
  f.broker->answer(f.broker->published.back().done, Error{"link lost", ErrorCause::NotConnected});
  settle(f.ioc);
  CHECK(answers.back().status() == pb::CommandResult::FAILED);
}

}  // namespace citygate::mqtt::refill_test
