// commands::Service against the MqttClient seam (FakeBroker) and a daemon with no devices: the
// subscription follows the configuration, every refusal a platform command can meet before a bus
// is answered on .../cmd/result with its reason, and every command and result is an AuditRecord
// with a seq of its own, kept in the audit spool until the broker has it (also across a restart).
//
// The refusals at and after the bus (TYPE_MISMATCH, RATE_LIMITED, QUEUE_FULL, BUS_STOPPED,
// DOWNLINK_REFUSED) run against real sources the fake daemon hands out: a Modbus bus source that is
// never started (its writes are queued and never run: no worker thread, and its TCP port has no
// listener anyway) and a LoRa source started with downlinks off. Timers run on the ManualClock.
// The writes themselves, against a real Modbus device, are tests/integration/test_commands.py.
#include "commands/service.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "citygate/v1/commands.pb.h"
#include "fake_client.hpp"
#include "inputs/lora/kind.hpp"
#include "inputs/lora/source.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "inputs/modbus/kind.hpp"
#include "inputs/modbus/transport.hpp"
#include "outputs/mqtt/session.hpp"
#include "support/manual_clock.hpp"
#include "support/run_until.hpp"

namespace citygate::commands {
namespace {

using mqtt::testing::FakeBroker;
using mqtt::testing::FakeClient;

// The running daemon: its configuration and its sources (none unless a test adds real ones).
class FakeDaemon final : public Daemon {
 public:
  const config::LoadedConfig& loadedConfig() const override { return loaded; }
  const std::vector<std::shared_ptr<sources::Source>>& sources() const override { return running; }
  void refill(const pb::Refill& r, std::function<void(pb::CommandResult)> done) override {
    refills.push_back(r);
    pb::CommandResult res;
    res.set_status(pb::CommandResult::ACCEPTED);
    done(res);
  }
  std::vector<pb::Refill> refills;
  config::LoadedConfig loaded;
  std::vector<std::shared_ptr<sources::Source>> running;
};

// A write nobody runs is answered BUS_STOPPED after twice the device's timeout (500 ms by
// default) plus 15 s in the queue (service.cpp, kQueueAllowance).
constexpr std::chrono::seconds kGuard{16};

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
    // A stopped bus drops its queued writes (they hold the bus source); it ends on the executor.
    for (const auto& s : daemon.running) s->stop([] {});
    session->release();
    settle();
    service.reset();
    session.reset();
    // The guard timers of writes still unanswered hold their write: fired now, they only let go.
    if (!daemon.running.empty()) clock.advance(kGuard, [this] { settle(); });
    daemon.running.clear();
    settle();
  }

  // Modbus bus 'b' (tcp 127.0.0.1:1: nothing listens there) with device 'ctl-3' at unit 3, whose
  // profile 'test-controller' has one point, 'period': a writable holding register at 10, UINT16
  // ABCD, 10..3600 s. The device is in commands.allow. The bus is never started: a write it takes
  // waits in its queue and is never run.
  void addBus() {
    auto sensor = std::make_shared<core::SensorSpec>();
    sensor->id = "ctl-3";
    core::PointSpec period;
    period.name = "period";
    sensor->points.push_back(period);
    modbus::PointRead rd;
    rd.table = pb::HOLDING_REGISTER;
    rd.address = 10;
    rd.count = 1;
    rd.type = pb::UINT16;
    rd.order = pb::ABCD;
    rd.writable = true;
    rd.writeMin = 10;
    rd.writeMax = 3600;
    modbus::DeviceSpec dev;
    dev.sensor = sensor;
    dev.profile = "test-controller";
    dev.unitId = 3;
    dev.reads.push_back(rd);
    auto spec = std::make_shared<modbus::BusSourceSpec>();
    spec->kind = modbus::kKindName;
    spec->name = "b";
    spec->bus.name = "b";
    spec->bus.kind = modbus::BusSpec::Kind::Tcp;
    spec->bus.config.set_name("b");
    spec->bus.config.mutable_tcp()->set_host("127.0.0.1");
    spec->bus.config.mutable_tcp()->set_port(1);
    spec->bus.devices.push_back(dev);
    auto bus = std::make_shared<modbus::BusSource>(
        ioc.get_executor(), clock, spec->bus, modbus::makeTransport(spec->bus.config),
        [](const core::SensorSpec&, core::SensorMemory&, core::RawSample&&) {}, [] { return true; },
        mqtt::testing::nullLogger());
    daemon.running.push_back(std::make_shared<modbus::ModbusSource>(ioc.get_executor(), spec, bus));
    daemon.loaded.config.mutable_commands()->add_allow()->set_device("ctl-3");
  }

  // The LoRa input, started (127.0.0.1, a port of the kernel's choice, nothing persisted) with
  // lora { downlink { enabled: false } } and no devices of its own: the service refuses a downlink
  // to an allowed device (air-1) only from what the source answers.
  void addLora() {
    lora::LoraSpec ls;
    ls.bind = "127.0.0.1";
    ls.port = 0;
    ls.downlink = false;
    auto src = std::make_shared<lora::LoraSource>(
        ioc.get_executor(), clock, ls, [](const core::SensorSpec&, core::SensorMemory&, core::RawSample&&) {},
        mqtt::testing::nullLogger());
    auto spec = std::make_shared<lora::LoraSourceSpec>();
    spec->kind = lora::kKindName;
    spec->name = lora::kSourceName;
    spec->lora = ls;
    auto handle = std::make_shared<lora::LoraSourceHandle>(ioc.get_executor(), spec, src);
    const auto st = handle->start();
    REQUIRE_MESSAGE(st, (st ? std::string() : st.error()));
    daemon.running.push_back(handle);
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
  pb::Command downlink(std::string id) const {
    auto c = command(std::move(id));
    c.set_device("air-1");
    c.mutable_downlink()->set_f_port(5);
    c.mutable_downlink()->set_payload("\x01\x02");
    return c;
  }
  void advance(std::chrono::seconds d) {
    clock.advance(d, [this] { settle(); });
  }
};

// A platform answer: its request, status, reason and a sentence.
void checkAnswer(const pb::CommandResult& r, const char* id, pb::CommandResult::Status st, pb::WriteRefusal why) {
  CAPTURE(id);
  CHECK(r.request_id() == id);
  CHECK(r.status() == st);
  CHECK(r.refusal() == why);
  CHECK_FALSE(r.detail().empty());
  CHECK(r.gateway_id() == "gw-1");
}

// Every platform answer is an audit record, in order, with the command it answers.
void checkAudited(Fixture& f, const std::vector<pb::CommandResult>& r) {
  REQUIRE(f.waitAudits(r.size()));
  const auto a = f.audits();
  REQUIRE(a.size() == r.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(a[i].seq() == i + 1);
    CHECK(a[i].origin() == "platform (ops)");
    CHECK(a[i].command().request_id() == r[i].request_id());
    CHECK(a[i].result().request_id() == r[i].request_id());
    CHECK(a[i].result().status() == r[i].status());
    CHECK(a[i].result().refusal() == r[i].refusal());
    CHECK(a[i].result().detail() == r[i].detail());
  }
}

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

TEST_CASE("a write its bus has no room for is refused QUEUE_FULL, and one the bus never runs BUS_STOPPED") {
  Fixture f;
  f.daemon.loaded.config.mutable_commands()->set_queue_capacity(1);
  f.addBus();
  f.connect();
  f.send(f.command("w-1"));  // queued: the one write bus 'b' may have waiting
  f.send(f.command("w-2"));  // a second while it waits
  REQUIRE(f.results().size() == 2);
  // The bus never runs w-1: its guard answers it, not before twice the timeout plus 15 s.
  f.advance(kGuard - std::chrono::seconds(1));
  CHECK(f.results().size() == 2);
  f.advance(std::chrono::seconds(1));

  const auto r = f.results();
  REQUIRE(r.size() == 3);
  CHECK(r[0].request_id() == "w-1");
  CHECK(r[0].status() == pb::CommandResult::ACCEPTED);
  checkAnswer(r[1], "w-2", pb::CommandResult::REFUSED, pb::QUEUE_FULL);
  checkAnswer(r[2], "w-1", pb::CommandResult::REFUSED, pb::BUS_STOPPED);
  CHECK(r[2].write().device_id() == "ctl-3");
  CHECK(r[2].write().point() == "period");
  CHECK_FALSE(r[2].write().written());
  CHECK(f.service->stats().accepted == 1);
  CHECK(f.service->stats().refused == 2);
  checkAudited(f, r);
  const auto a = f.audits();
  CHECK(a[1].bus() == "b");
  CHECK(a[1].unit_id() == 3);
}

TEST_CASE("a device past its rate limit is refused RATE_LIMITED, for writes and downlinks alike") {
  Fixture f;
  auto& rl = *f.daemon.loaded.config.mutable_commands()->mutable_rate_limit();
  rl.set_writes(1);
  rl.set_per_s(60);
  f.addBus();
  f.addLora();
  f.connect();
  f.send(f.command("w-1"));   // ctl-3's one write in 60 s: queued
  f.send(f.command("w-2"));   // its second
  f.send(f.downlink("d-1"));  // air-1's one command in 60 s: taken (and refused by the source)
  f.send(f.downlink("d-2"));  // its second
  f.advance(kGuard);          // w-1, never run, is answered

  const auto r = f.results();
  REQUIRE(r.size() == 5);
  CHECK(r[0].status() == pb::CommandResult::ACCEPTED);
  checkAnswer(r[1], "w-2", pb::CommandResult::REFUSED, pb::RATE_LIMITED);
  CHECK(r[2].request_id() == "d-1");
  CHECK(r[2].refusal() == pb::DOWNLINK_REFUSED);
  checkAnswer(r[3], "d-2", pb::CommandResult::REFUSED, pb::RATE_LIMITED);
  checkAnswer(r[4], "w-1", pb::CommandResult::REFUSED, pb::BUS_STOPPED);
  checkAudited(f, r);
}

TEST_CASE("a cabinet write whose type or word order is not the profile's is refused TYPE_MISMATCH") {
  Fixture f;
  f.addBus();
  f.connect();
  std::vector<pb::WriteOutcome> outcomes;
  auto write = [&](pb::DataType type, pb::WordOrder order, const char* who) {
    pb::ModbusWriteRequest q;
    q.set_bus("b");
    q.set_unit_id(3);
    q.set_address(10);  // 'period': UINT16 ABCD in the profile
    q.set_value(60);
    q.set_type(type);
    q.set_order(order);
    f.service->modbusWrite(q, who, [&](pb::WriteOutcome o) { outcomes.push_back(o); });
    f.settle();
  };
  write(pb::FLOAT32, pb::WORD_ORDER_UNSPECIFIED, "cli:tech uid 1000 pid 1");
  write(pb::UINT16, pb::CDAB, "cli:tech uid 1000 pid 2");
  // The profile's type and order: past the check, queued on the bus (and, never run, BUS_STOPPED).
  write(pb::UINT16, pb::ABCD, "cli:tech uid 1000 pid 3");
  REQUIRE(outcomes.size() == 2);
  f.advance(kGuard);
  REQUIRE(outcomes.size() == 3);
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    CHECK(outcomes[i].refusal() == pb::TYPE_MISMATCH);
    CHECK_FALSE(outcomes[i].detail().empty());
    CHECK(outcomes[i].device_id() == "ctl-3");
    CHECK(outcomes[i].point() == "period");
    CHECK_FALSE(outcomes[i].written());
  }
  CHECK(outcomes[2].refusal() == pb::BUS_STOPPED);
  CHECK(f.results().empty());  // the cabinet is answered on its socket

  REQUIRE(f.waitAudits(3));
  const auto a = f.audits();
  REQUIRE(a.size() == 3);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(a[i].seq() == i + 1);
    CHECK(a[i].origin() == "cli:tech uid 1000 pid " + std::to_string(i + 1));
    CHECK(a[i].result().status() == pb::CommandResult::REFUSED);
    CHECK(a[i].result().refusal() == outcomes[i].refusal());
    CHECK(a[i].result().detail() == outcomes[i].detail());
    CHECK(a[i].command().device() == "ctl-3");
    CHECK(a[i].command().write().point() == "period");
    CHECK(a[i].bus() == "b");
    CHECK(a[i].unit_id() == 3);
  }
}

TEST_CASE("a downlink the LoRa input refuses is answered DOWNLINK_REFUSED and audited") {
  Fixture f;
  f.addLora();
  f.connect();
  // air-1 is in commands.allow_downlink; the running LoRa input has downlinks off.
  f.send(f.downlink("d-off"));
  const auto r = f.results();
  REQUIRE(r.size() == 1);
  checkAnswer(r[0], "d-off", pb::CommandResult::REFUSED, pb::DOWNLINK_REFUSED);
  CHECK(r[0].device() == "air-1");
  CHECK(f.service->stats().refused == 1);
  checkAudited(f, r);
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
