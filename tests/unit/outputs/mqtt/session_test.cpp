#include "outputs/mqtt/session.hpp"

#include <doctest/doctest.h>

#include <optional>

#include "fake_client.hpp"

namespace citygate::mqtt {
namespace {

namespace pb = citygate::v1;
using testing::FakeBroker;
using testing::FakeClient;
using testing::settle;

struct Fixture {
  citygate::testing::ManualClock clock;
  boost::asio::io_context ioc;
  std::shared_ptr<FakeBroker> broker = std::make_shared<FakeBroker>();
  std::shared_ptr<Session> session;

  explicit Fixture(std::chrono::milliseconds reconnectMin = std::chrono::milliseconds(0),
                   std::optional<std::chrono::milliseconds> reconnectMax = std::nullopt, std::size_t servers = 1) {
    broker->ioc = &ioc;
    broker->servers = servers;
    SessionOptions o;
    for (std::size_t i = 0; i < servers; ++i) o.brokers.push_back("tcp://node" + std::to_string(i + 1) + ":1883");
    o.gatewayId = "gw-1";
    o.bootId = "boot-1";
    o.version = "1.2.3";
    o.topicPrefix = "citygate/v1";
    o.reconnectMin = reconnectMin;
    o.reconnectMax = reconnectMax.value_or(reconnectMin);
    o.jitterSeed = 7;
    session = std::make_shared<Session>(ioc.get_executor(), clock, std::make_unique<FakeClient>(broker), o,
                                        testing::nullLogger());
  }
  ~Fixture() {  // NOLINT(bugprone-exception-escape): a test fixture; asio throws only on a broken io_context
    session->release();
    settle(ioc, clock);
    clock.dropHandlers();
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  void connect() {
    REQUIRE(broker->connects.size() == 1);
    broker->answerConnect(Ok{});
    settle(ioc, clock);
  }
};

pb::GatewayStatus decodeStatus(const std::string& payload) {
  pb::GatewayStatus s;
  REQUIRE(s.ParseFromString(payload));
  return s;
}

TEST_CASE("topicMatches follows MQTT's wildcard rules") {
  CHECK(topicMatches("citygate/v1/gw/cmd", "citygate/v1/gw/cmd"));
  CHECK_FALSE(topicMatches("citygate/v1/gw/cmd", "citygate/v1/gw/cmd/result"));
  CHECK(topicMatches("citygate/v1/+/cmd", "citygate/v1/gw/cmd"));
  CHECK_FALSE(topicMatches("citygate/v1/+/cmd", "citygate/v1/gw/x/cmd"));
  CHECK(topicMatches("spBv1.0/g/NCMD/#", "spBv1.0/g/NCMD/node"));
  CHECK(topicMatches("spBv1.0/g/NCMD/#", "spBv1.0/g/NCMD"));  // '#' takes the parent level too
  CHECK(topicMatches("#", "a/b/c"));
  CHECK_FALSE(topicMatches("#", "$SYS/broker"));
  CHECK_FALSE(topicMatches("+/broker", "$SYS/broker"));
  CHECK(topicMatches("a/+", "a/"));
  CHECK_FALSE(topicMatches("a/+", "a"));
}

TEST_CASE("birth on every connect, OFFLINE will payload, OFFLINE on stop") {
  Fixture f;
  f.session->start();
  CHECK(f.session->state() == ConnState::Connecting);
  f.connect();
  CHECK(f.session->state() == ConnState::Connected);
  REQUIRE(f.broker->published.size() == 1);
  const auto& birth = f.broker->published[0];
  CHECK(birth.topic == "citygate/v1/gw-1/status");
  CHECK(birth.qos == 1);
  CHECK(birth.retain);
  const auto online = decodeStatus(birth.payload);
  CHECK(online.state() == pb::ONLINE);
  CHECK(online.gateway_id() == "gw-1");
  CHECK(online.boot_id() == "boot-1");
  CHECK(online.version() == "1.2.3");

  REQUIRE(f.broker->wills.size() == 1);  // the connect's will: the OFFLINE status, retained
  CHECK(f.broker->wills[0].topic == "citygate/v1/gw-1/status");
  CHECK(f.broker->wills[0].qos == 1);
  CHECK(f.broker->wills[0].retain);
  const auto will = decodeStatus(f.broker->wills[0].payload);
  CHECK(will.state() == pb::OFFLINE);
  CHECK(will.boot_id() == "boot-1");
  CHECK_FALSE(will.has_spool());

  bool stopped = false;
  f.session->stop(std::chrono::milliseconds(100), [&stopped] { stopped = true; });
  CHECK(f.session->state() == ConnState::Stopping);
  REQUIRE(f.broker->published.size() == 2);
  const auto& offline = f.broker->published[1];
  CHECK(offline.topic == "citygate/v1/gw-1/status");
  CHECK(offline.retain);
  CHECK(offline.qos == 1);
  CHECK(decodeStatus(offline.payload).state() == pb::OFFLINE);
  CHECK(f.broker->disconnects == 0);  // waits for the OFFLINE's acknowledgement
  f.broker->answer(offline.done, Ok{});
  settle(f.ioc, f.clock);
  CHECK(f.broker->disconnects == 1);
  CHECK(stopped);
  CHECK(f.session->state() == ConnState::Stopped);
}

TEST_CASE("a lost link: listeners hear of it, the session reconnects and births again") {
  Fixture f;
  std::vector<bool> heard;
  f.session->addStateListener([&heard](bool up) { heard.push_back(up); });
  f.session->start();
  f.connect();
  CHECK(heard == std::vector<bool>{true});
  f.broker->dropLink("keepalive timeout");
  settle(f.ioc, f.clock);
  CHECK(heard == std::vector<bool>{true, false});
  CHECK(f.session->stats().lastError == "keepalive timeout");
  CHECK(f.session->stats().lastCause == ErrorCause::NotConnected);
  CHECK_FALSE(f.session->stats().connectedSince.has_value());
  // reconnectMin 0: the full-jitter wait is 0
  f.connect();
  CHECK(heard == std::vector<bool>{true, false, true});
  CHECK(f.session->stats().reconnects == 1);
  REQUIRE(f.broker->published.size() == 2);
  CHECK(decodeStatus(f.broker->published[1].payload).state() == pb::ONLINE);
}

TEST_CASE("a refused connect is counted with its cause and tried again") {
  Fixture f;
  f.session->start();
  f.broker->answerConnect(Error{"refused by broker: not authorized", ErrorCause::Refused});
  settle(f.ioc, f.clock);
  CHECK(f.session->stats().connectFailures == 1);
  CHECK(f.session->stats().lastCause == ErrorCause::Refused);
  CHECK(f.session->state() == ConnState::Connecting);  // the wait (0 ms) is over: next attempt
  f.connect();
  CHECK(f.session->state() == ConnState::Connected);
  CHECK(f.session->stats().reconnects == 0);  // the first link, not a reconnect
}

TEST_CASE("brokers in failover order: a failed connect goes on to the next at once, a round waits") {
  Fixture f(std::chrono::milliseconds(60000), std::nullopt, 3);
  f.session->start();
  CHECK(f.broker->connectedTo == std::vector<std::size_t>{0});
  f.broker->answerConnect(Error{"connection refused", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  CHECK(f.broker->connectedTo == std::vector<std::size_t>{0, 1});  // no wait
  CHECK(f.session->state() == ConnState::Connecting);
  f.broker->answerConnect(Error{"connection refused", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  CHECK(f.broker->connectedTo == std::vector<std::size_t>{0, 1, 2});
  f.broker->answerConnect(Error{"connection refused", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  // Every broker failed: the round is over, the session waits (a wait in [0, 60 s], not 0 here).
  CHECK(f.session->state() == ConnState::Backoff);
  CHECK(f.broker->connects.empty());
  CHECK(f.session->stats().connectFailures == 3);
  f.clock.advance(std::chrono::milliseconds(60000));
  settle(f.ioc, f.clock);
  CHECK(f.broker->connectedTo == std::vector<std::size_t>{0, 1, 2, 0});  // the next round from the first
  f.broker->answerConnect(Error{"connection refused", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  f.connect();
  CHECK(f.session->state() == ConnState::Connected);
  CHECK(f.session->stats().serverUri == "tcp://node2:1883");
}

TEST_CASE("after a lost link the next broker is tried first, the lost one last") {
  Fixture f(std::chrono::milliseconds(0), std::nullopt, 3);
  f.session->start();
  f.connect();
  CHECK(f.session->stats().serverUri == "tcp://node1:1883");
  f.broker->dropLink("connection lost");
  settle(f.ioc, f.clock);  // wait 0
  CHECK(f.broker->connectedTo == std::vector<std::size_t>{0, 1});
  f.broker->answerConnect(Error{"connection refused", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  CHECK(f.broker->connectedTo == std::vector<std::size_t>{0, 1, 2});
  f.connect();
  CHECK(f.session->stats().serverUri == "tcp://node3:1883");
  CHECK(f.session->stats().reconnects == 1);
  f.broker->dropLink("connection lost");
  settle(f.ioc, f.clock);
  CHECK(f.broker->connectedTo.back() == 0);  // after node3: node1 (wraps)
}

TEST_CASE("the reconnect wait is drawn from a growing ceiling, the session waits in Backoff") {
  Fixture f(std::chrono::milliseconds(60000));
  f.session->start();
  f.broker->answerConnect(Error{"connection failed", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  // A wait in [0, 60 s] with this seed is not 0; no second CONNECT before it.
  CHECK(f.session->state() == ConnState::Backoff);
  CHECK(f.broker->connects.empty());
  bool stopped = false;
  f.session->stop(std::chrono::milliseconds(100), [&stopped] { stopped = true; });
  settle(f.ioc, f.clock);
  CHECK(stopped);
  CHECK(f.session->state() == ConnState::Stopped);
  CHECK(f.broker->connects.empty());  // the timer was cancelled
}

TEST_CASE("the reconnect ceiling grows while links are short and resets once one has held for stableAfter") {
  using namespace std::chrono_literals;
  Fixture f(1000ms, 1000000ms);  // stableAfter: 30 s
  f.session->start();
  f.connect();
  // The wait drawn after losing a link that held `held`: the reconnect timer's due time.
  auto loseAfter = [&f](std::chrono::milliseconds held) {
    f.clock.advance(held);
    f.broker->dropLink("gone");
    settle(f.ioc, f.clock);
    REQUIRE(f.session->state() == ConnState::Backoff);
    const auto wait = *f.clock.nextDue() - f.clock.steadyNow();
    f.clock.advance(wait);
    settle(f.ioc, f.clock);
    f.connect();
    return wait;
  };
  SteadyClock::duration wait{};
  for (int i = 0; i < 12; ++i) wait = loseAfter(29999ms);  // short links: 1 s * 2^11, capped at 1000 s
  CHECK(wait > 1000ms);
  CHECK(wait <= 1000000ms);
  CHECK(loseAfter(30000ms) <= 1000ms);  // a stable link: the ceiling is reconnectMin again
}

TEST_CASE("a registered handler gets its messages on the executor, subscriptions are made again after a reconnect") {
  Fixture f;
  std::vector<InboundMessage> commands;
  std::vector<InboundMessage> ncmd;
  // Registered before the first connect: subscribed once connected.
  f.session->subscribe("citygate/v1/gw-1/cmd", 1, [&commands](const InboundMessage& m) { commands.push_back(m); });
  f.session->start();
  CHECK(f.broker->subscribed.empty());
  f.connect();
  CHECK(f.broker->subscribedFilters() == std::vector<std::string>{"citygate/v1/gw-1/cmd"});
  CHECK(f.broker->subscribed[0].qos == 1);
  f.broker->answer(f.broker->subscribed[0].done, Ok{});

  // Registered while connected: subscribed at once.
  const auto ncmdId =
      f.session->subscribe("spBv1.0/city/NCMD/#", 0, [&ncmd](const InboundMessage& m) { ncmd.push_back(m); });
  CHECK(f.broker->subscribedFilters() == std::vector<std::string>{"citygate/v1/gw-1/cmd", "spBv1.0/city/NCMD/#"});

  f.broker->deliver("citygate/v1/gw-1/cmd", "write 1");
  f.broker->deliver("spBv1.0/city/NCMD/gw-1", "rebirth");
  f.broker->deliver("elsewhere/topic", "x");
  CHECK(commands.empty());  // posted, not called from the client's thread
  settle(f.ioc, f.clock);
  REQUIRE(commands.size() == 1);
  CHECK(commands[0].topic == "citygate/v1/gw-1/cmd");
  CHECK(commands[0].payload == "write 1");
  REQUIRE(ncmd.size() == 1);
  CHECK(ncmd[0].payload == "rebirth");
  CHECK(f.session->stats().inbound == 2);
  CHECK(f.session->stats().inboundUnmatched == 1);

  // Clean session: after a reconnect the broker has forgotten them; the session subscribes again.
  f.broker->subscribed.clear();
  f.broker->dropLink("broker restarted");
  settle(f.ioc, f.clock);
  f.connect();
  CHECK(f.broker->subscribedFilters() == std::vector<std::string>{"citygate/v1/gw-1/cmd", "spBv1.0/city/NCMD/#"});
  f.broker->deliver("citygate/v1/gw-1/cmd", "write 2");
  settle(f.ioc, f.clock);
  REQUIRE(commands.size() == 2);
  CHECK(commands[1].payload == "write 2");

  // Unsubscribed: the broker is told, and the handler hears nothing more.
  f.session->unsubscribe(ncmdId);
  CHECK(f.broker->unsubscribed == std::vector<std::string>{"spBv1.0/city/NCMD/#"});
  f.broker->deliver("spBv1.0/city/NCMD/gw-1", "rebirth");
  settle(f.ioc, f.clock);
  CHECK(ncmd.size() == 1);
}

TEST_CASE("a refused subscription is counted with its cause, it is tried again on the next connect") {
  Fixture f;
  f.session->subscribe("citygate/v1/gw-1/cmd", 1, [](const InboundMessage&) {});
  f.session->start();
  f.connect();
  REQUIRE(f.broker->subscribed.size() == 1);
  f.broker->answer(f.broker->subscribed[0].done, Error{"subscription refused by broker", ErrorCause::Refused});
  settle(f.ioc, f.clock);
  CHECK(f.session->stats().subscribeFailures == 1);
  f.broker->dropLink("x");
  settle(f.ioc, f.clock);
  f.connect();
  CHECK(f.broker->subscribed.size() == 2);
}

TEST_CASE("health goes out only while connected") {
  Fixture f;
  pb::GatewayHealth h;
  h.set_gateway_id("gw-1");
  f.session->start();
  f.session->publishHealth(h);
  CHECK(f.broker->published.empty());
  f.connect();
  f.session->publishHealth(h);
  REQUIRE(f.broker->published.size() == 2);
  CHECK(f.broker->published[1].topic == "citygate/v1/gw-1/health");
  CHECK_FALSE(f.broker->published[1].retain);
  CHECK(f.session->stats().healthPublished == 1);
}

TEST_CASE("reconnectNow in backoff connects at once, the times say since when and when next") {
  Fixture f(std::chrono::milliseconds(60000));
  const WallTime started = f.clock.wallNow();
  f.session->start();
  CHECK(f.session->stats().disconnectedSince == started);  // never connected: since the start
  f.clock.advance(std::chrono::milliseconds(5));
  f.broker->answerConnect(Error{"connection refused", ErrorCause::Unreachable});
  settle(f.ioc, f.clock);
  REQUIRE(f.session->state() == ConnState::Backoff);
  REQUIRE(f.session->stats().nextAttemptAt.has_value());
  CHECK(*f.session->stats().nextAttemptAt > f.clock.wallNow());  // a wait drawn in [0, 60 s], not 0 with this seed
  CHECK(f.broker->connects.empty());
  CHECK(f.session->reconnectNow() == Session::Reconnect::Connecting);
  CHECK(f.broker->connects.size() == 1);  // at once: no time passed
  CHECK_FALSE(f.session->stats().nextAttemptAt.has_value());
  CHECK(f.session->reconnectNow() == Session::Reconnect::AlreadyConnecting);
  f.connect();
  CHECK(f.session->connected());
  CHECK_FALSE(f.session->stats().disconnectedSince.has_value());
}

TEST_CASE("reconnectNow when connected closes the link cleanly and connects again, listeners hear both") {
  Fixture f(std::chrono::milliseconds(60000));
  std::vector<bool> heard;
  f.session->addStateListener([&heard](bool up) { heard.push_back(up); });
  f.session->start();
  f.connect();
  CHECK(f.session->reconnectNow() == Session::Reconnect::Reconnecting);
  CHECK(heard == std::vector<bool>{true, false});  // the clients resend what was in flight
  CHECK(f.session->stats().disconnectedSince == f.clock.wallNow());
  CHECK(f.session->reconnectNow() == Session::Reconnect::AlreadyConnecting);  // the close is under way
  settle(f.ioc, f.clock);
  CHECK(f.broker->disconnects == 1);
  f.connect();  // no backoff wait: connected again at once
  CHECK(heard == std::vector<bool>{true, false, true});
  CHECK(f.session->stats().reconnects == 1);
}

TEST_CASE("reconnectNow before start or after stop does nothing") {
  Fixture f;
  CHECK(f.session->reconnectNow() == Session::Reconnect::NotRunning);
  f.session->start();
  f.connect();
  bool stopped = false;
  f.session->stop(std::chrono::milliseconds(100), [&stopped] { stopped = true; });
  CHECK(f.session->reconnectNow() == Session::Reconnect::NotRunning);
}

}  // namespace
}  // namespace citygate::mqtt
