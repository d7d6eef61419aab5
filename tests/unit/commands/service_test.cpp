// commands::Service against the MqttClient seam (FakeBroker) and a daemon with no devices: the
// subscription follows the configuration, every refusal a platform command can meet before a bus
// is answered on .../cmd/result with its reason, and every command and result is an AuditRecord
// with a seq of its own, kept in the audit spool until the broker has it (also across a restart).
// The writes themselves, against a real Modbus device, are tests/integration/test_commands.py.
#include "commands/service.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "citygate/v1/commands.pb.h"
#include "fake_client.hpp"
#include "outputs/mqtt/session.hpp"
#include "support/manual_clock.hpp"
#include "support/run_until.hpp"

namespace citygate::commands {
namespace {

using mqtt::testing::FakeBroker;
using mqtt::testing::FakeClient;

class FakeDaemon final : public Daemon {
 public:
  const config::LoadedConfig& loadedConfig() const override { return loaded; }
  const std::vector<std::shared_ptr<sources::Source>>& sources() const override { return none; }
  void refill(const pb::Refill& r, std::function<void(pb::CommandResult)> done) override {
    refills.push_back(r);
    pb::CommandResult res;
    res.set_status(pb::CommandResult::ACCEPTED);
    done(res);
  }
  std::vector<pb::Refill> refills;
  config::LoadedConfig loaded;
  std::vector<std::shared_ptr<sources::Source>> none;
};

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "cg-commands-XXXXXX").string();
    REQUIRE(mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

struct Fixture {
  TempDir dir;
  boost::asio::io_context ioc;
  citygate::testing::ManualClock clock;
  std::shared_ptr<FakeBroker> broker = std::make_shared<FakeBroker>();
  FakeDaemon daemon;
  std::shared_ptr<mqtt::Session> session;
  std::shared_ptr<Service> service;

  explicit Fixture(bool platform = true) {
    broker->ioc = &ioc;
    auto& c = *daemon.loaded.config.mutable_commands();
    c.set_enabled(true);
    c.set_platform(platform);
    c.add_allow_downlink("air-1");
    make();
  }
  void make() {
    mqtt::SessionOptions o;
    o.gatewayId = "gw-1";
    o.bootId = "boot-7";
    o.topicPrefix = "city";
    session = std::make_shared<mqtt::Session>(ioc.get_executor(), clock, std::make_unique<FakeClient>(broker), o,
                                              mqtt::testing::nullLogger());
    AuditOptions ao;
    ao.dir = (dir.path / "audit").string();
    ao.gatewayId = "gw-1";
    ao.bootId = "boot-7";
    service = std::make_shared<Service>(
        ioc.get_executor(), daemon, clock,
        std::make_unique<AuditTrail>(ioc.get_executor(), clock, ao, session, mqtt::testing::nullLogger()), session,
        mqtt::testing::nullLogger());
    service->start();
    session->start();
  }
  ~Fixture() {  // NOLINT(bugprone-exception-escape): a test fixture
    release();
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  void release() {
    if (!service) return;
    service->stop();
    session->release();
    settle();
    service.reset();
    session.reset();
  }
  void settle() { mqtt::testing::settle(ioc, clock); }
  void connect() {
    broker->answerConnect(Ok{});
    settle();
    for (const auto& s : broker->subscribed) broker->answer(s.done, Ok{});
    settle();
  }

  std::vector<pb::CommandResult> results() const {
    std::vector<pb::CommandResult> out;
    for (const auto& p : broker->published) {
      if (p.topic != "city/gw-1/cmd/result") continue;
      CHECK(p.qos == 1);
      CHECK_FALSE(p.retain);
      pb::CommandResult r;
      REQUIRE(r.ParseFromString(p.payload));
      out.push_back(r);
    }
    return out;
  }
  std::vector<pb::AuditRecord> audits() const {
    std::vector<pb::AuditRecord> out;
    for (const auto& p : broker->published) {
      if (p.topic != "city/gw-1/audit") continue;
      pb::AuditRecord a;
      REQUIRE(a.ParseFromString(p.payload));
      out.push_back(a);
    }
    return out;
  }
  // Waits for the audit spool's group commit (its worker thread) to publish `n` records.
  bool waitAudits(std::size_t n) {
    return citygate::testing::runUntil(ioc, [&] { return audits().size() >= n; });
  }
  // Acknowledges every publish still pending.
  void ackAll() {
    for (auto& p : broker->published) {
      if (p.done) {
        broker->answer(p.done, Ok{});
        p.done = nullptr;
      }
    }
    settle();
  }

  pb::Command command(std::string id) const {
    pb::Command c;
    c.set_request_id(std::move(id));
    c.set_device("ctl-3");
    c.set_origin("ops");
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(clock.wallNow().time_since_epoch()).count();
    c.mutable_expires_at()->set_seconds(now + 60);
    c.mutable_write()->set_point("period");
    c.mutable_write()->set_value(30);
    return c;
  }
  void send(const pb::Command& c) {
    broker->deliver("city/gw-1/cmd", c.SerializeAsString());
    settle();
  }
};

TEST_CASE("the service subscribes to .../cmd at QoS 1 only when commands and platform commands are on") {
  Fixture f(false);
  f.connect();
  for (const auto& s : f.broker->subscribed) CHECK(s.filter != "city/gw-1/cmd");
  CHECK_FALSE(f.service->stats().subscribed);
  f.daemon.loaded.config.mutable_commands()->set_platform(true);
  f.service->configure();
  f.settle();
  REQUIRE_FALSE(f.broker->subscribed.empty());
  CHECK(f.broker->subscribed.back().filter == "city/gw-1/cmd");
  CHECK(f.broker->subscribed.back().qos == 1);
  CHECK(f.service->stats().subscribed);
  f.daemon.loaded.config.mutable_commands()->set_enabled(false);
  f.service->configure();
  f.settle();
  REQUIRE(f.broker->unsubscribed.size() == 1);
  CHECK(f.broker->unsubscribed.front() == "city/gw-1/cmd");
}

TEST_CASE("every refusal before the bus is answered with its reason and audited") {
  Fixture f;
  f.connect();
  // No such Modbus device.
  f.send(f.command("r-unknown"));
  // The same request id again: carried out once, the second refused.
  f.send(f.command("r-unknown"));
  // Expired on arrival.
  auto late = f.command("r-late");
  late.mutable_expires_at()->set_seconds(late.expires_at().seconds() - 120);
  f.send(late);
  // Expiring too far ahead.
  auto far = f.command("r-far");
  far.mutable_expires_at()->set_seconds(far.expires_at().seconds() + 7200);
  f.send(far);
  // Malformed, with a request id to answer: no action.
  auto bad = f.command("r-bad");
  bad.clear_write();
  f.send(bad);
  // Malformed without a request id: counted, nothing to answer.
  f.broker->deliver("city/gw-1/cmd", "not a command");
  f.settle();
  // A downlink to a device not in allow_downlink, and to one that is (no LoRa input here).
  auto dl = f.command("r-dl");
  dl.mutable_downlink()->set_f_port(5);
  f.send(dl);
  auto dl2 = f.command("r-dl2");
  dl2.set_device("air-1");
  dl2.mutable_downlink()->set_f_port(5);
  f.send(dl2);
  // A retained command is ignored (it would be carried out again by every later subscriber).
  boost::asio::post(f.ioc, [&] {
    f.broker->message(mqtt::InboundMessage{"city/gw-1/cmd", f.command("r-retained").SerializeAsString(), 1, true});
  });
  f.settle();
  // Platform commands switched off while one is on its way.
  f.daemon.loaded.config.mutable_commands()->set_platform(false);
  f.service->onCommand(f.command("r-off").SerializeAsString());
  f.settle();

  const auto r = f.results();
  REQUIRE(r.size() == 8);
  auto check = [&](std::size_t i, const char* id, pb::CommandResult::Status st, pb::WriteRefusal why) {
    CAPTURE(id);
    CHECK(r[i].request_id() == id);
    CHECK(r[i].status() == st);
    CHECK(r[i].refusal() == why);
    CHECK_FALSE(r[i].detail().empty());
    CHECK(r[i].gateway_id() == "gw-1");
  };
  check(0, "r-unknown", pb::CommandResult::REFUSED, pb::UNKNOWN_DEVICE);
  check(1, "r-unknown", pb::CommandResult::REFUSED, pb::DUPLICATE_REQUEST);
  check(2, "r-late", pb::CommandResult::EXPIRED, pb::EXPIRED);
  check(3, "r-far", pb::CommandResult::REFUSED, pb::BAD_COMMAND);
  check(4, "r-bad", pb::CommandResult::REFUSED, pb::BAD_COMMAND);
  check(5, "r-dl", pb::CommandResult::REFUSED, pb::DEVICE_NOT_ALLOWED);
  check(6, "r-dl2", pb::CommandResult::REFUSED, pb::UNKNOWN_DEVICE);
  check(7, "r-off", pb::CommandResult::REFUSED, pb::PLATFORM_COMMANDS_DISABLED);
  const auto& s = f.service->stats();
  CHECK(s.received == 10);
  CHECK(s.malformed == 4);  // r-far, r-bad, the bytes, the retained one
  CHECK(s.duplicates == 1);
  CHECK(s.expired == 1);

  // Every answer is an audit record, numbered 1.. in order, with the command it answers.
  REQUIRE(f.waitAudits(8));
  const auto a = f.audits();
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].seq() == i + 1);
    CHECK(a[i].gateway_id() == "gw-1");
    CHECK(a[i].boot_id() == "boot-7");
    CHECK(a[i].origin() == "platform (ops)");
    CHECK(a[i].result().request_id() == r[i].request_id());
    CHECK(a[i].result().refusal() == r[i].refusal());
    CHECK(a[i].command().request_id() == r[i].request_id());
  }
}

TEST_CASE("the cabinet's writes go through the same checks and are audited with their origin") {
  Fixture f;
  f.connect();
  std::vector<pb::WriteOutcome> outcomes;
  pb::ModbusWriteRequest q;
  q.set_bus("b");
  q.set_unit_id(3);
  q.set_address(10);
  q.set_value(60);
  f.service->modbusWrite(q, "cli:tech uid 1000 pid 42", [&](pb::WriteOutcome o) { outcomes.push_back(o); });
  f.daemon.loaded.config.mutable_commands()->set_enabled(false);
  f.service->modbusWrite(q, "cli:tech uid 1000 pid 43", [&](pb::WriteOutcome o) { outcomes.push_back(o); });
  REQUIRE(outcomes.size() == 2);
  CHECK(outcomes[0].refusal() == pb::UNKNOWN_DEVICE);
  CHECK(outcomes[1].refusal() == pb::COMMANDS_DISABLED);
  CHECK(f.results().empty());  // the cabinet is answered on its socket, not on .../cmd/result
  REQUIRE(f.waitAudits(2));
  const auto a = f.audits();
  CHECK(a[0].origin() == "cli:tech uid 1000 pid 42");
  CHECK(a[0].command().write().table() == pb::HOLDING_REGISTER);
  CHECK(a[0].command().write().address() == 10);
  CHECK(a[0].result().status() == pb::CommandResult::REFUSED);
  CHECK(a[1].result().refusal() == pb::COMMANDS_DISABLED);
}

TEST_CASE("audit records survive a broker outage and a restart, and keep their seq") {
  Fixture f;
  // No link: the records wait in the audit spool.
  f.service->onCommand(f.command("r-1").SerializeAsString());
  f.service->onCommand(f.command("r-2").SerializeAsString());
  f.settle();
  CHECK(f.audits().empty());
  CHECK(f.service->auditStats().recorded == 2);
  CHECK(f.service->auditStats().durable);
  // A restart before the broker had them.
  f.release();
  f.broker = std::make_shared<FakeBroker>();
  f.broker->ioc = &f.ioc;
  f.make();
  CHECK(f.service->auditStats().pending == 2);
  f.service->onCommand(f.command("r-3").SerializeAsString());
  f.connect();
  REQUIRE(f.waitAudits(3));
  auto a = f.audits();
  CHECK(a[0].seq() == 1);
  CHECK(a[0].command().request_id() == "r-1");
  CHECK(a[1].seq() == 2);
  CHECK(a[2].seq() == 3);
  CHECK(a[2].command().request_id() == "r-3");
  CHECK(a[2].boot_id() == "boot-7");
  f.ackAll();
  CHECK(citygate::testing::runUntil(f.ioc, [&] { return f.service->auditStats().pending == 0; }));
  CHECK(f.service->auditStats().nextSeq == 4);
}

}  // namespace
}  // namespace citygate::commands
