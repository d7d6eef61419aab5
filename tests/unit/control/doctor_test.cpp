// `citygatectl doctor`'s rules: a pure function of one status response (cli/doctor.hpp), and the
// exit rule `status --check` shares.
#include <doctest/doctest.h>

#include <google/protobuf/util/time_util.h>

#include <string>

#include "cli/cli.hpp"
#include "cli/doctor.hpp"

using namespace citygate;
using namespace citygate::cli;
using namespace std::chrono_literals;
using google::protobuf::util::TimeUtil;

namespace {

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

void at(google::protobuf::Timestamp* t, std::chrono::seconds ago) {
  *t = TimeUtil::SecondsToTimestamp(std::chrono::duration_cast<std::chrono::seconds>(kNow.time_since_epoch()).count() -
                                    ago.count());
}

pb::DeviceInfo* modbusDevice(pb::StatusResponse& s, const std::string& id, const std::string& bus,
                             pb::DeviceState state) {
  auto* d = s.add_devices();
  d->set_id(id);
  d->set_kind("modbus");
  d->set_bus(bus);
  d->set_transport("tcp 127.0.0.1:1502");
  d->mutable_health()->set_sensor_id(id);
  d->mutable_health()->set_state(state);
  at(d->mutable_health()->mutable_last_ok_at(), 240s);
  return d;
}

// A healthy gateway: config, synchronised clock, roomy disk, connected MQTT, two devices OK.
pb::StatusResponse healthy() {
  pb::StatusResponse s;
  s.set_config_path("/etc/citygate/citygate.textproto");
  s.set_config_generation(1);
  at(s.mutable_config_loaded_at(), 600s);
  s.set_mqtt_uri("tcp://127.0.0.1:1883");
  s.mutable_gateway()->set_version("1.2.3");
  at(s.mutable_gateway()->mutable_started_at(), 600s);
  auto& h = *s.mutable_health();
  h.mutable_process()->set_uptime_s(600);
  h.mutable_clock()->set_state(pb::CLOCK_SYNCHRONISED);
  auto& sp = *h.mutable_spool();
  sp.set_state(pb::SPOOL_OK);
  sp.set_max_bytes(256u << 20);
  sp.set_bytes(1u << 20);
  sp.set_disk_total_bytes(8ULL << 30);
  sp.set_disk_free_bytes(4ULL << 30);
  auto& m = *h.mutable_mqtt();
  m.set_connected(true);
  at(m.mutable_connected_since(), 500s);
  m.set_published(100);
  m.set_acked(100);
  at(m.mutable_last_ack_at(), 3s);
  modbusDevice(s, "air-1", "cabinet", pb::OK);
  modbusDevice(s, "air-2", "cabinet", pb::OK);
  return s;
}

const Check& find(const std::vector<Check>& checks, const std::string& name) {
  for (const auto& c : checks) {
    if (c.name == name) return c;
  }
  FAIL("no check " << name);
  return checks.front();
}

bool has(const std::vector<Check>& checks, const std::string& name) {
  for (const auto& c : checks) {
    if (c.name == name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("doctor: a healthy gateway is all OK, in the stated order, and exits 0") {
  const auto checks = doctorChecks(healthy(), kNow);
  std::vector<std::string> names;
  for (const auto& c : checks) {
    names.push_back(c.name);
    CHECK_MESSAGE(c.status == CheckStatus::Ok, c.name << ": " << c.detail);
    CHECK(c.nextStep.empty());
  }
  CHECK(names == std::vector<std::string>{"config", "clock", "spool disk", "spool", "mqtt", "bus cabinet", "uptime"});
  CHECK_FALSE(anyFail(checks));
  CHECK(statusCheckExit(healthy()) == 0);
  CHECK(find(checks, "bus cabinet").detail.find("2 devices OK") != std::string::npos);
  CHECK(find(checks, "uptime").detail.find("up 10 min") != std::string::npos);
}

TEST_CASE("doctor: commands only when writes are on, WARN when the audit trail is in memory or lost records") {
  auto s = healthy();
  CHECK_FALSE(has(doctorChecks(s, kNow), "commands"));
  auto& c = *s.mutable_health()->mutable_commands();
  c.set_enabled(true);
  c.set_platform(true);
  c.set_done(3);
  c.set_refused(2);
  c.set_audit_durable(true);
  auto check = find(doctorChecks(s, kNow), "commands");
  CHECK(check.status == CheckStatus::Ok);
  CHECK(check.detail == "writes on (cabinet and platform): 3 done, 2 refused, 0 failed; audit 0 pending");
  c.set_audit_lost(4);
  check = find(doctorChecks(s, kNow), "commands");
  CHECK(check.status == CheckStatus::Warn);
  CHECK(check.detail.find("4 lost") != std::string::npos);
  c.set_audit_durable(false);
  check = find(doctorChecks(s, kNow), "commands");
  CHECK(check.status == CheckStatus::Warn);
  CHECK(check.nextStep.find("state_dir/audit") != std::string::npos);
  CHECK(statusCheckExit(s) == 0);
}

TEST_CASE("doctor: a DOWN Modbus device is FAIL with the repair step, and the exit rule follows it") {
  auto s = healthy();
  auto* d = s.mutable_devices(1);
  d->mutable_health()->set_state(pb::DOWN);
  d->mutable_health()->set_last_error("timeout");
  auto checks = doctorChecks(s, kNow);
  const auto& c = find(checks, "device air-2");
  CHECK(c.status == CheckStatus::Fail);
  CHECK(c.detail.find("DOWN, last OK ") == 0);
  CHECK(c.detail.find("4 min ago: timeout") != std::string::npos);
  CHECK(c.nextStep == "check wiring / power; citygatectl device air-2 --retry after repair");
  CHECK(find(checks, "bus cabinet").status == CheckStatus::Warn);  // one of two: the device, not the bus
  CHECK(anyFail(checks));
  CHECK(statusCheckExit(s) == 1);

  // repaired: OK again, the device line goes, exit 0
  d->mutable_health()->set_state(pb::OK);
  checks = doctorChecks(s, kNow);
  CHECK_FALSE(has(checks, "device air-2"));
  CHECK(find(checks, "bus cabinet").status == CheckStatus::Ok);
  CHECK(statusCheckExit(s) == 0);
}

TEST_CASE("doctor: every device of a bus DOWN is a bus FAIL, DEGRADED is WARN and does not fail") {
  auto s = healthy();
  for (auto& d : *s.mutable_devices()) d.mutable_health()->set_state(pb::DOWN);
  auto checks = doctorChecks(s, kNow);
  CHECK(find(checks, "bus cabinet").status == CheckStatus::Fail);
  CHECK(find(checks, "bus cabinet").detail == "all 2 devices DOWN (tcp 127.0.0.1:1502)");

  s = healthy();
  s.mutable_devices(0)->mutable_health()->set_state(pb::DEGRADED);
  checks = doctorChecks(s, kNow);
  CHECK(find(checks, "device air-1").status == CheckStatus::Warn);
  CHECK_FALSE(anyFail(checks));
}

TEST_CASE("doctor: MQTT disconnected is FAIL, connected with readings unacknowledged for over a minute is WARN") {
  auto s = healthy();
  auto& m = *s.mutable_health()->mutable_mqtt();
  m.set_connected(false);
  m.set_last_error("connection refused");
  auto checks = doctorChecks(s, kNow);
  CHECK(find(checks, "mqtt").status == CheckStatus::Fail);
  CHECK(find(checks, "mqtt").detail == "disconnected from tcp://127.0.0.1:1883: connection refused");
  CHECK(statusCheckExit(s) == 1);

  m.set_connected(true);
  m.set_published(150);
  at(m.mutable_last_ack_at(), 30s);
  CHECK(find(doctorChecks(s, kNow), "mqtt").status == CheckStatus::Ok);  // acked 30 s ago: in flight
  at(m.mutable_last_ack_at(), 90s);
  CHECK(find(doctorChecks(s, kNow), "mqtt").status == CheckStatus::Warn);
  m.clear_last_ack_at();  // never acked, on a link up for 500 s
  CHECK(find(doctorChecks(s, kNow), "mqtt").status == CheckStatus::Warn);
  m.set_published(100);  // nothing waiting: no ack is due
  CHECK(find(doctorChecks(s, kNow), "mqtt").status == CheckStatus::Ok);
}

TEST_CASE("doctor: spool failing is FAIL, lost readings or sources paused are WARN") {
  auto s = healthy();
  auto& sp = *s.mutable_health()->mutable_spool();
  sp.set_state(pb::SPOOL_FAILING);
  sp.set_last_error("No space left on device");
  CHECK(find(doctorChecks(s, kNow), "spool").status == CheckStatus::Fail);
  CHECK(statusCheckExit(s) == 1);
  sp.set_state(pb::SPOOL_UNAVAILABLE);
  CHECK(find(doctorChecks(s, kNow), "spool").status == CheckStatus::Fail);
  sp.set_state(pb::SPOOL_OK);
  sp.set_dropped(7);
  CHECK(find(doctorChecks(s, kNow), "spool").status == CheckStatus::Warn);
  CHECK(find(doctorChecks(s, kNow), "spool").detail.find("7 readings lost") == 0);
  sp.set_dropped(0);
  sp.set_blocked(true);
  CHECK(find(doctorChecks(s, kNow), "spool").status == CheckStatus::Warn);
  CHECK(statusCheckExit(s) == 0);
}

TEST_CASE("doctor: spool disk: under 1 % free is FAIL, less than the spool may still grow is WARN") {
  auto s = healthy();
  auto& sp = *s.mutable_health()->mutable_spool();
  sp.set_disk_free_bytes(100u << 20);  // the spool may grow 255 MiB more
  CHECK(find(doctorChecks(s, kNow), "spool disk").status == CheckStatus::Warn);
  sp.set_disk_free_bytes(50u << 20);  // < 1 % of 8 GiB
  CHECK(find(doctorChecks(s, kNow), "spool disk").status == CheckStatus::Fail);
  CHECK(statusCheckExit(s) == 1);
  sp.set_disk_total_bytes(0);  // memory spool: nothing to say
  CHECK(find(doctorChecks(s, kNow), "spool disk").status == CheckStatus::Ok);
}

TEST_CASE("doctor: an unsynchronised or unknown clock is WARN (readings are marked), never FAIL") {
  auto s = healthy();
  auto& c = *s.mutable_health()->mutable_clock();
  c.set_state(pb::CLOCK_UNSYNCHRONISED);
  at(c.mutable_since(), 120s);
  auto clock = find(doctorChecks(s, kNow), "clock");
  CHECK(clock.status == CheckStatus::Warn);
  CHECK(clock.detail.find("not synchronised since ") == 0);
  CHECK(clock.detail.find("2 min ago") != std::string::npos);
  CHECK(clock.nextStep.find("timedatectl") != std::string::npos);
  c.set_state(pb::CLOCK_SYNC_UNKNOWN);
  c.set_error("adjtimex: Operation not permitted");
  clock = find(doctorChecks(s, kNow), "clock");
  CHECK(clock.status == CheckStatus::Warn);
  CHECK(clock.detail.find("Operation not permitted") != std::string::npos);
  c.clear_state();  // an older daemon
  CHECK(find(doctorChecks(s, kNow), "clock").status == CheckStatus::Warn);
  CHECK(statusCheckExit(s) == 0);
}

TEST_CASE("doctor: LoRa: no concentrator is WARN in the first minute, FAIL after, silent over 60 s is FAIL") {
  auto s = healthy();
  auto& h = *s.mutable_health();
  h.mutable_lora();
  h.mutable_process()->set_uptime_s(20);
  CHECK(find(doctorChecks(s, kNow), "lora").status == CheckStatus::Warn);
  h.mutable_process()->set_uptime_s(600);
  CHECK(find(doctorChecks(s, kNow), "lora").status == CheckStatus::Fail);
  auto* c = h.mutable_lora()->add_concentrators();
  c->set_gateway_eui("AA555A0000000101");
  at(c->mutable_last_seen(), 8s);
  CHECK(find(doctorChecks(s, kNow), "lora").status == CheckStatus::Ok);
  at(c->mutable_last_seen(), 300s);
  const auto lora = find(doctorChecks(s, kNow), "lora");
  CHECK(lora.status == CheckStatus::Fail);
  CHECK(lora.detail.find("5 min ago (AA555A0000000101)") != std::string::npos);
  CHECK_FALSE(has(doctorChecks(healthy(), kNow), "lora"));  // no LoRa source: no line
}

TEST_CASE("doctor: a LoRaWAN node not heard yet is WARN, not FAIL (it sends when it wants)") {
  auto s = healthy();
  auto* d = s.add_devices();
  d->set_id("parking-7");
  d->set_kind("lorawan");
  d->mutable_health()->set_state(pb::DOWN);
  const auto checks = doctorChecks(s, kNow);
  CHECK(find(checks, "device parking-7").status == CheckStatus::Warn);
  CHECK_FALSE(has(checks, "bus lora"));
  CHECK_FALSE(anyFail(checks));
}

TEST_CASE("doctor: the screen fits 80 columns, next steps indented, --json is an array of four fields") {
  auto s = healthy();
  s.mutable_devices(0)->mutable_health()->set_state(pb::DOWN);
  s.mutable_devices(0)->mutable_health()->set_last_error(
      "timeout after 1000 ms (no answer from unit 1 on tcp 127.0.0.1:1502; 14 timeouts in a row)");
  s.mutable_devices(0)->set_id("air-quality-pilatusplatz-north-entrance");
  s.mutable_health()->mutable_clock()->set_state(pb::CLOCK_UNSYNCHRONISED);
  const auto checks = doctorChecks(s, kNow);
  const std::string page = renderChecks(checks, Style{});
  std::size_t start = 0;
  while (start < page.size()) {
    const auto end = page.find('\n', start);
    const std::string line = page.substr(start, end - start);
    CHECK_MESSAGE(displayWidth(line) <= 80, line);
    start = end + 1;
  }
  CHECK(page.find("\nFAIL  device air-quality-p  DOWN, last OK") != std::string::npos);  // the name cut at 20
  CHECK(page.find("-> check wiring / power; citygatectl device") != std::string::npos);
  CHECK(page.find("1 FAIL, 2 WARN,") != std::string::npos);  // device; bus (1 of 2) and clock
  CHECK(page.find("(exit status 1)") != std::string::npos);

  const std::string json = checksJson(checks);
  CHECK(json.front() == '[');
  CHECK(json.find("{\"name\": \"clock\", \"status\": \"WARN\", \"detail\": \"not synchronised") != std::string::npos);
  CHECK(json.find("\"next_step\": \"check wiring / power; citygatectl device air-quality-pilatusplatz-north-entrance "
                  "--retry after repair\"") != std::string::npos);
  CHECK(renderChecks(doctorChecks(healthy(), kNow), Style{}).find("all 7 checks OK") != std::string::npos);
  auto warned = healthy();
  warned.mutable_health()->mutable_clock()->set_state(pb::CLOCK_UNSYNCHRONISED);
  CHECK(renderChecks(doctorChecks(warned, kNow), Style{}).find("\n1 WARN, 6 OK\n") != std::string::npos);
}

TEST_CASE("doctor: the config file against the running configuration") {
  CHECK(find(doctorChecks(healthy(), kNow), "config").detail.find("/etc/citygate/citygate.textproto, generation 1") ==
        0);
  auto s = healthy();
  s.mutable_config_file()->set_path("/etc/citygate/citygate.textproto");
  s.mutable_config_file()->set_state(pb::ConfigFileStatus::SAME);
  CHECK(find(doctorChecks(s, kNow), "config").status == CheckStatus::Ok);
  s.mutable_config_file()->set_state(pb::ConfigFileStatus::DIFFERS);  // applied with --runtime-only
  const auto differs = find(doctorChecks(s, kNow), "config");
  CHECK(differs.status == CheckStatus::Warn);
  CHECK(differs.nextStep.find("config apply --save") != std::string::npos);
  CHECK(statusCheckExit(s) == 0);  // a WARN
  s.mutable_config_file()->set_state(pb::ConfigFileStatus::MISSING);
  CHECK(find(doctorChecks(s, kNow), "config").status == CheckStatus::Fail);
  CHECK(statusCheckExit(s) == 1);
}

TEST_CASE("doctor: the screen follows the terminal's width (COLUMNS 50, 120)") {
  auto s = healthy();
  s.mutable_devices(0)->mutable_health()->set_state(pb::DOWN);
  s.mutable_devices(0)->mutable_health()->set_last_error("connection: cannot connect: Connection refused");
  const auto checks = doctorChecks(s, kNow);
  for (std::size_t width : {50U, 120U}) {
    const std::string page = renderChecks(checks, Style{}, width);
    std::size_t start = 0;
    while (start < page.size()) {
      const auto end = page.find('\n', start);
      const std::string line = page.substr(start, end - start);
      CHECK_MESSAGE(displayWidth(line) <= width, line);
      start = end + 1;
    }
  }
}
