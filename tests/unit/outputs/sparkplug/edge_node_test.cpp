#include "outputs/sparkplug/edge_node.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "core/fields.hpp"
#include "fake_client.hpp"

namespace citygate::sparkplug {
namespace {

namespace pb = citygate::v1;
using mqtt::testing::FakeBroker;
using mqtt::testing::FakeClient;
using mqtt::testing::settle;

std::shared_ptr<const core::SensorSpec> controller() {
  auto s = std::make_shared<core::SensorSpec>();
  s->id = "ctl-1";
  s->kind = pb::GENERIC;
  core::PointSpec period;
  period.name = "period";
  period.unitCode = "SEC";
  period.writable = true;
  core::PointSpec serial;
  serial.name = "serial";
  serial.text = true;
  s->points = {period, serial};
  return s;
}

std::shared_ptr<const core::SensorSpec> airSensor() {
  auto s = std::make_shared<core::SensorSpec>();
  s->id = "air-1";
  s->kind = pb::AIR_QUALITY;
  core::PointSpec pm25;
  pm25.name = "pm25";
  pm25.field = *core::findField(pb::AIR_QUALITY, "pm25");
  pm25.unitCode = "GQ";
  s->points = {pm25};
  return s;
}

spb::Payload decode(const std::string& bytes) {
  spb::Payload p;
  REQUIRE(p.ParseFromString(bytes));
  return p;
}

const spb::Payload::Metric* named(const spb::Payload& p, std::string_view name) {
  for (const auto& m : p.metrics()) {
    if (m.name() == name) return &m;
  }
  return nullptr;
}

struct Fixture {
  citygate::testing::ManualClock clock;
  boost::asio::io_context ioc;
  std::shared_ptr<FakeBroker> broker = std::make_shared<FakeBroker>();
  std::shared_ptr<mqtt::Session> session;
  std::shared_ptr<BdSeq> bdSeq;
  std::shared_ptr<EdgeNode> node;
  std::map<std::string, bool> down;
  std::vector<pb::Command> writes;
  std::vector<bool> ready;

  explicit Fixture(std::string hostId = {}, std::string bdSeqPath = {}) {
    broker->ioc = &ioc;
    bdSeq = std::make_shared<BdSeq>(ioc.get_executor(), std::move(bdSeqPath), "spBv1.0/g/NDEATH/gw-1", clock,
                                    mqtt::testing::nullLogger());
    mqtt::SessionOptions o;
    o.gatewayId = "gw-1";
    o.reconnectMin = o.reconnectMax = std::chrono::milliseconds(0);
    o.jitterSeed = 1;
    o.will = [bd = bdSeq] { return bd->nextWill(); };
    session = std::make_shared<mqtt::Session>(ioc.get_executor(), clock, std::make_unique<FakeClient>(broker), o,
                                              mqtt::testing::nullLogger());
    EdgeNodeOptions eo;
    eo.groupId = "g";
    eo.edgeNodeId = "gw-1";
    eo.hostId = std::move(hostId);
    eo.markTopic = "citygate/v1/gw-1/sparkplug/mark";
    eo.version = "1.2.3";
    node = EdgeNode::create(
        session, bdSeq, eo, {controller(), airSensor()},
        [this](std::vector<std::pair<std::string, bool>>& out) {
          for (const auto& [id, d] : down) out.emplace_back(id, d);
        },
        [] {
          return NodeMetrics{3, 4096, 0};
        },
        [this](pb::Command c) { writes.push_back(std::move(c)); });
    node->setReadyCallback([this](bool up) { ready.push_back(up); });
    session->start();
  }
  ~Fixture() {  // NOLINT(bugprone-exception-escape): a test fixture
    node->stop();
    session->release();
    settle(ioc, clock);
    bdSeq->stop();
    clock.dropHandlers();
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  void connect() {
    REQUIRE_FALSE(broker->connects.empty());
    broker->answerConnect(Ok{});
    settle(ioc, clock);
  }
  // The messages published on spBv1.0 topics since `from`, as (topic, payload).
  std::vector<std::pair<std::string, spb::Payload>> sparkplug(std::size_t from = 0) {
    std::vector<std::pair<std::string, spb::Payload>> out;
    for (std::size_t i = from; i < broker->published.size(); ++i) {
      const auto& p = broker->published[i];
      if (p.topic.rfind("spBv1.0/", 0) != 0) continue;
      CHECK(p.qos == (p.topic.find("/NDEATH/") != std::string::npos ? 1 : 0));
      CHECK_FALSE(p.retain);
      out.emplace_back(p.topic, decode(p.payload));
    }
    return out;
  }
  // Frames `readings` as one batch and delivers it; answers every publish of it with `result`.
  std::optional<core::Outcome> deliver(const std::vector<pb::Reading>& readings, const Status& result = Ok{}) {
    std::string payload;
    node->beginBatch(payload);
    for (const auto& r : readings) node->addRecord(payload, r.seq(), r.SerializeAsString());
    const std::size_t from = broker->published.size();
    std::optional<core::Outcome> outcome;
    node->asyncDeliver(std::move(payload), static_cast<std::uint32_t>(readings.size()),
                       [&outcome](core::Outcome o) { outcome = o; });
    for (std::size_t i = from; i < broker->published.size(); ++i) broker->answer(broker->published[i].done, result);
    settle(ioc, clock);
    return outcome;
  }
};

pb::Reading controllerReading(std::uint64_t seq, double period, std::int64_t atS = 1795850000) {
  pb::Reading r;
  r.set_seq(seq);
  r.set_sensor_id("ctl-1");
  r.mutable_observed_at()->set_seconds(atS);
  (*r.mutable_generic()->mutable_values())["period"].set_value(period);
  return r;
}

TEST_CASE("births: the will's bdSeq in NBIRTH (seq 0), Node Control/Rebirth, one DBIRTH per device") {
  Fixture f;
  REQUIRE(f.broker->wills.size() == 1);
  const auto& will = f.broker->wills[0];
  CHECK(will.topic == "spBv1.0/g/NDEATH/gw-1");
  CHECK(will.qos == 1);
  CHECK_FALSE(will.retain);
  const auto ndeath = decode(will.payload);
  REQUIRE(ndeath.metrics_size() == 1);
  CHECK(ndeath.metrics(0).long_value() == 0);
  CHECK(f.ready.empty());
  CHECK_FALSE(f.node->ready());
  f.connect();
  CHECK(f.ready == std::vector<bool>{true});
  const auto msgs = f.sparkplug();
  REQUIRE(msgs.size() == 3);
  CHECK(msgs[0].first == "spBv1.0/g/NBIRTH/gw-1");
  const auto& nbirth = msgs[0].second;
  CHECK(nbirth.seq() == 0);
  CHECK(nbirth.has_timestamp());
  const auto* bd = named(nbirth, "bdSeq");
  REQUIRE(bd != nullptr);
  CHECK(bd->datatype() == spb::Int64);
  CHECK(bd->long_value() == 0);
  const auto* rebirth = named(nbirth, "Node Control/Rebirth");
  REQUIRE(rebirth != nullptr);
  CHECK_FALSE(rebirth->has_alias());
  CHECK(rebirth->datatype() == spb::Boolean);
  CHECK_FALSE(rebirth->boolean_value());
  CHECK(named(nbirth, "Spool/Pending Readings")->long_value() == 3);
  CHECK(msgs[1].first == "spBv1.0/g/DBIRTH/gw-1/ctl-1");
  CHECK(msgs[1].second.seq() == 1);
  CHECK(msgs[2].first == "spBv1.0/g/DBIRTH/gw-1/air-1");
  CHECK(msgs[2].second.seq() == 2);
  // Aliases unique across the node; every birth metric has name, datatype and timestamp.
  std::set<std::uint64_t> aliases;
  std::size_t aliased = 0;
  for (const auto& [topic, p] : msgs) {
    for (const auto& m : p.metrics()) {
      CHECK(m.has_name());
      CHECK(m.has_datatype());
      CHECK(m.has_timestamp());
      if (m.has_alias()) {
        aliases.insert(m.alias());
        ++aliased;
      }
    }
  }
  CHECK(aliases.size() == aliased);
  CHECK(named(msgs[1].second, "serial")->datatype() == spb::String);
  const auto* pm25 = named(msgs[2].second, "pm25");
  REQUIRE(pm25 != nullptr);
  REQUIRE(pm25->properties().keys_size() == 1);
  CHECK(pm25->properties().keys(0) == "engUnit");
  CHECK(pm25->properties().values(0).string_value() == "GQ");
}

TEST_CASE("DDATA: aliases only, seq after the births, the native seq, Delivered at the mark's acknowledgement") {
  Fixture f;
  f.connect();
  const std::size_t from = f.broker->published.size();
  const auto outcome = f.deliver({controllerReading(41, 60), controllerReading(42, 61)});
  REQUIRE(outcome);
  CHECK(*outcome == core::Outcome::Delivered);
  REQUIRE(f.broker->published.size() == from + 2);
  const auto& ddata = f.broker->published[from];
  CHECK(ddata.topic == "spBv1.0/g/DDATA/gw-1/ctl-1");
  CHECK(ddata.qos == 0);
  const auto p = decode(ddata.payload);
  CHECK(p.seq() == 3);
  REQUIRE(p.metrics_size() == 2);
  for (int i = 0; i < 2; ++i) {
    CHECK_FALSE(p.metrics(i).has_name());
    CHECK(p.metrics(i).has_alias());
    CHECK(p.metrics(i).timestamp() == 1795850000000ULL);
    CHECK(p.metrics(i).properties().values(0).long_value() == 41U + static_cast<unsigned>(i));
    CHECK(p.metrics(i).is_historical());  // observed before the births
  }
  const auto& mark = f.broker->published[from + 1];
  CHECK(mark.topic == "citygate/v1/gw-1/sparkplug/mark");
  CHECK(mark.qos == 1);
  CHECK(mark.payload == "42");
  CHECK(f.node->stats().readings == 2);

  // A readings batch whose link dropped: Retry, and the spool sends it again.
  CHECK(*f.deliver({controllerReading(43, 62)}, Error{"gone", ErrorCause::NotConnected}) == core::Outcome::Retry);
}

TEST_CASE("a reconnect: a new bdSeq in the will and the NBIRTH, seq from 0, stored for the next start") {
  char dir[] = "/tmp/citygate-bdseq-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/sparkplug.bdseq";
  {
    Fixture f({}, path);
    f.connect();
    f.broker->dropLink("test");
    settle(f.ioc, f.clock);
    CHECK(f.ready == std::vector<bool>{true, false});
    const std::size_t from = f.broker->published.size();
    f.connect();
    REQUIRE(f.broker->wills.size() == 2);
    CHECK(decode(f.broker->wills[1].payload).metrics(0).long_value() == 1);
    const auto msgs = f.sparkplug(from);
    REQUIRE_FALSE(msgs.empty());
    CHECK(msgs[0].second.seq() == 0);
    CHECK(named(msgs[0].second, "bdSeq")->long_value() == 1);
    f.bdSeq->stop();  // the last store written
  }
  std::ifstream in(path);
  int stored = -1;
  in >> stored;
  CHECK(stored == 1);
  Fixture next({}, path);
  REQUIRE(next.broker->wills.size() == 1);
  CHECK(decode(next.broker->wills[0].payload).metrics(0).long_value() == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("failed connects keep the bdSeq: each NBIRTH is the previous + 1") {
  Fixture f;
  f.connect();
  f.broker->dropLink("test");
  settle(f.ioc, f.clock);
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(f.broker->connects.empty());
    f.broker->answerConnect(Error{"refused", ErrorCause::Unreachable});
    settle(f.ioc, f.clock);
  }
  const std::size_t from = f.broker->published.size();
  f.connect();
  REQUIRE(f.broker->wills.size() == 5);
  for (std::size_t i = 1; i < 5; ++i) CHECK(decode(f.broker->wills[i].payload).metrics(0).long_value() == 1);
  const auto msgs = f.sparkplug(from);
  REQUIRE_FALSE(msgs.empty());
  CHECK(named(msgs[0].second, "bdSeq")->long_value() == 1);
}

TEST_CASE("bdSeq wraps from 255 to 0") {
  char dir[] = "/tmp/citygate-bdseq-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/sparkplug.bdseq";
  std::ofstream(path) << "255\n";
  Fixture f({}, path);
  CHECK(decode(f.broker->wills[0].payload).metrics(0).long_value() == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("NCMD rebirth: NBIRTH (seq 0, same bdSeq) and every DBIRTH again, a malformed NCMD counted") {
  Fixture f;
  f.connect();
  f.deliver({controllerReading(1, 60)});
  const std::size_t from = f.broker->published.size();
  spb::Payload cmd;
  auto* m = cmd.add_metrics();
  m->set_name("Node Control/Rebirth");
  m->set_boolean_value(true);
  f.node->onNcmd(cmd.SerializeAsString());
  const auto msgs = f.sparkplug(from);
  REQUIRE(msgs.size() == 3);
  CHECK(msgs[0].first == "spBv1.0/g/NBIRTH/gw-1");
  CHECK(msgs[0].second.seq() == 0);
  CHECK(named(msgs[0].second, "bdSeq")->long_value() == 0);
  CHECK(msgs[1].second.seq() == 1);
  CHECK(msgs[2].second.seq() == 2);
  CHECK(f.node->stats().rebirths == 1);
  CHECK(f.ready == std::vector<bool>{true});  // data goes on

  f.node->onNcmd("\xff\x01garbage");
  m->set_boolean_value(false);  // Rebirth false: nothing to do
  f.node->onNcmd(cmd.SerializeAsString());
  spb::Payload other;
  other.add_metrics()->set_name("Node Control/Reboot");  // tolerated, ignored
  f.node->onNcmd(other.SerializeAsString());
  CHECK(f.node->stats().commandsRefused == 1);
  CHECK(f.node->stats().births == 2);
  CHECK(f.sparkplug(from).size() == 3);
}

TEST_CASE("a device down gets a DDEATH, a DBIRTH when it is back and before historical data of a dead device") {
  Fixture f;
  f.connect();
  std::size_t from = f.broker->published.size();
  f.down["air-1"] = true;
  f.clock.advance(std::chrono::seconds(1), [&f] { settle(f.ioc, f.clock); });
  auto msgs = f.sparkplug(from);
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].first == "spBv1.0/g/DDEATH/gw-1/air-1");
  CHECK(msgs[0].second.seq() == 3);
  f.clock.advance(std::chrono::seconds(1), [&f] { settle(f.ioc, f.clock); });
  CHECK(f.sparkplug(from).size() == 1);  // once

  // Data of the dead device (it waited in the spool): DBIRTH first.
  pb::Reading air;
  air.set_seq(9);
  air.set_sensor_id("air-1");
  air.mutable_air_quality_observed()->mutable_pm25()->set_value(12);
  from = f.broker->published.size();
  f.deliver({air});
  msgs = f.sparkplug(from);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].first == "spBv1.0/g/DBIRTH/gw-1/air-1");
  CHECK(msgs[1].first == "spBv1.0/g/DDATA/gw-1/air-1");
  from = f.broker->published.size();
  f.clock.advance(std::chrono::seconds(1), [&f] { settle(f.ioc, f.clock); });
  REQUIRE(f.sparkplug(from).size() == 1);  // still down: dead again
  f.down["air-1"] = false;
  from = f.broker->published.size();
  f.clock.advance(std::chrono::seconds(1), [&f] { settle(f.ioc, f.clock); });
  msgs = f.sparkplug(from);
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].first == "spBv1.0/g/DBIRTH/gw-1/air-1");
}

TEST_CASE("a metric its DBIRTH did not announce: the device is born again before the DDATA") {
  Fixture f;
  f.connect();
  auto r = controllerReading(5, 60);
  (*r.mutable_generic()->mutable_values())["volts"].set_value(3.3);
  const std::size_t from = f.broker->published.size();
  f.deliver({r});
  const auto msgs = f.sparkplug(from);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].first == "spBv1.0/g/DBIRTH/gw-1/ctl-1");
  CHECK(named(msgs[0].second, "volts") != nullptr);
  CHECK(msgs[1].first == "spBv1.0/g/DDATA/gw-1/ctl-1");
}

TEST_CASE("DCMD: a metric by name or alias becomes a write, everything else is refused and counted") {
  Fixture f;
  f.connect();
  const auto* period = &f.node->metrics().devices()[0]->metrics[0];
  REQUIRE(period->name == "period");
  spb::Payload p;
  auto* m = p.add_metrics();
  m->set_name("period");
  m->set_double_value(90);
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", p.SerializeAsString());
  m->clear_name();
  m->set_alias(period->alias);
  m->set_datatype(spb::Int32);
  m->set_int_value(0xFFFFFFF6U);  // -10, Tahu-style
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", p.SerializeAsString());
  REQUIRE(f.writes.size() == 2);
  CHECK(f.writes[0].device() == "ctl-1");
  CHECK(f.writes[0].write().point() == "period");
  CHECK(f.writes[0].write().value() == 90);
  CHECK(f.writes[0].has_expires_at());
  CHECK(f.writes[0].origin() == "sparkplug DCMD");
  CHECK(f.writes[1].write().value() == -10);
  CHECK(f.writes[0].request_id() != f.writes[1].request_id());

  // A metric that is no writable point goes to the service too (refused there, on record).
  spb::Payload serial;
  auto* s = serial.add_metrics();
  s->set_name("serial");
  s->set_double_value(1);
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", serial.SerializeAsString());
  REQUIRE(f.writes.size() == 3);
  CHECK(f.writes[2].write().point() == "serial");

  const auto refusedBefore = f.node->stats().commandsRefused;
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/nobody", p.SerializeAsString());  // no such device
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", "\x0a\x0b");              // does not parse
  m->clear_alias();
  m->set_name("nothing-like-it");
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", p.SerializeAsString());  // no such metric
  m->set_name("period");
  m->clear_value();
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", p.SerializeAsString());  // no value
  m->set_double_value(std::numeric_limits<double>::quiet_NaN());
  f.node->onDcmd("spBv1.0/g/DCMD/gw-1/ctl-1", p.SerializeAsString());  // not finite
  CHECK(f.node->stats().commandsRefused == refusedBefore + 5);
  CHECK(f.writes.size() == 3);
  // Publishing goes on.
  CHECK(*f.deliver({controllerReading(7, 60)}) == core::Outcome::Delivered);
}

TEST_CASE(
    "primary host: births wait for STATE online, an older STATE changes nothing, offline is NDEATH and a reconnect") {
  Fixture f("scada");
  f.connect();
  CHECK(f.sparkplug().empty());
  CHECK_FALSE(f.node->ready());
  f.node->onState(R"({"online":true,"timestamp":100})");
  CHECK(f.node->ready());
  REQUIRE(f.sparkplug().size() == 3);
  f.node->onState(R"({"online":false,"timestamp":50})");  // stale: ignored
  CHECK(f.node->ready());
  f.node->onState("{not json");
  CHECK(f.node->stats().commandsRefused == 1);
  const std::size_t from = f.broker->published.size();
  f.node->onState(R"({"online":false,"timestamp":200})");
  CHECK_FALSE(f.node->ready());
  REQUIRE(f.broker->published.size() > from);
  const auto& death = f.broker->published[from];
  CHECK(death.topic == "spBv1.0/g/NDEATH/gw-1");
  CHECK(death.qos == 1);
  CHECK(decode(death.payload).metrics(0).long_value() == 0);
  settle(f.ioc, f.clock);
  CHECK(f.broker->disconnects == 1);
  f.connect();  // the session connects again: a new bdSeq, births after the host is online
  CHECK(decode(f.broker->wills.back().payload).metrics(0).long_value() == 1);
  CHECK_FALSE(f.node->ready());
  f.node->onState("ONLINE");  // Sparkplug 2.2's form
  CHECK(f.node->ready());
}

}  // namespace
}  // namespace citygate::sparkplug
