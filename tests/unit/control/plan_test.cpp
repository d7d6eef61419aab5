// planChange(): what `config apply` does per bus and for LoRa, and what it refuses.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "app/validate.hpp"

using namespace citygate;
using app::ConfigPlan;

namespace {

std::string cfg(const std::string& body, const std::string& head = "") {
  return "gateway_id: \"gw\"\nmqtt { uri: \"tcp://127.0.0.1:1883\" }\nspool { dir: \"/tmp/cg-plan\" memory: true }\n" +
         head + "\n" + body;
}

const char* kBusA =
    "modbus_bus { name: \"a\" tcp { host: \"127.0.0.1\" port: 1502 }\n"
    "  device { id: \"air\" unit_id: 1 profile: \"vaisala-aqt530\" poll_interval_ms: 1000 } }\n";
const char* kBusB =
    "modbus_bus { name: \"b\" tcp { host: \"127.0.0.1\" port: 1503 }\n"
    "  device { id: \"traffic\" unit_id: 3 profile: \"citygate-traffic-counter-4lane\" poll_interval_ms: 1000 } }\n";
const char* kLora =
    "lora { packet_forwarder { port: 17000 }\n"
    "  device { id: \"bay\" dev_addr: \"26011F42\" nwk_s_key: \"44024241ed4ce9a68c6a8bc055233fd3\"\n"
    "           app_s_key: \"ec925802ae430ca77fd3dd73cb2cc588\" codec: \"nwave-nps405\" } }\n";

std::unique_ptr<app::ValidatedConfig> load(const std::string& text) {
  config::Diagnostics d;
  auto v = app::validateText("t.textproto", text, d);
  INFO(d.str());
  REQUIRE(v != nullptr);
  return v;
}

ConfigPlan plan(const std::string& a, const std::string& b) {
  return app::planChange(*load(a), *load(b));
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("the same configuration changes nothing") {
  const auto p = plan(cfg(std::string(kBusA) + kBusB + kLora), cfg(std::string(kBusA) + kBusB + kLora));
  CHECK(p.unchanged == V{"a", "b", "lora"});
  CHECK(p.empty());
  CHECK(p.refused.empty());
}

TEST_CASE("a bus with a new device is changed, the other bus and LoRa are untouched") {
  const std::string busA2 =
      "modbus_bus { name: \"a\" tcp { host: \"127.0.0.1\" port: 1502 }\n"
      "  device { id: \"air\" unit_id: 1 profile: \"vaisala-aqt530\" poll_interval_ms: 1000 }\n"
      "  device { id: \"air2\" unit_id: 2 profile: \"vaisala-aqt530\" poll_interval_ms: 1000 } }\n";
  const auto p = plan(cfg(std::string(kBusA) + kBusB + kLora), cfg(busA2 + kBusB + kLora));
  CHECK(p.changed == V{"a"});
  CHECK(p.unchanged == V{"b", "lora"});
  CHECK(p.added.empty());
  CHECK(p.touches("a"));
  CHECK_FALSE(p.touches("b"));
}

TEST_CASE("buses added and removed by name, a poll interval is a change") {
  const std::string slowerB =
      "modbus_bus { name: \"b\" tcp { host: \"127.0.0.1\" port: 1503 }\n"
      "  device { id: \"traffic\" unit_id: 3 profile: \"citygate-traffic-counter-4lane\" poll_interval_ms: 2000 } }\n";
  auto p = plan(cfg(kBusA), cfg(std::string(kBusA) + kBusB));
  CHECK(p.added == V{"b"});
  CHECK(p.unchanged == V{"a"});
  p = plan(cfg(std::string(kBusA) + kBusB), cfg(kBusB));
  CHECK(p.removed == V{"a"});
  p = plan(cfg(kBusB), cfg(slowerB));
  CHECK(p.changed == V{"b"});
}

TEST_CASE("LoRa added, removed, changed (port, keys)") {
  auto p = plan(cfg(kBusA), cfg(std::string(kBusA) + kLora));
  CHECK(p.added == V{"lora"});
  p = plan(cfg(std::string(kBusA) + kLora), cfg(kBusA));
  CHECK(p.removed == V{"lora"});
  std::string otherPort = kLora;
  otherPort.replace(otherPort.find("17000"), 5, "17001");
  p = plan(cfg(kLora), cfg(otherPort));
  CHECK(p.changed == V{"lora"});
  CHECK(p.touches("lora"));
}

TEST_CASE("a changed profile in profile_dir changes the buses that use it") {
  const auto dir = std::filesystem::temp_directory_path() / ("cg-plan-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "v1");
  std::filesystem::create_directories(dir / "v2");
  const std::string profile =
      "name: \"meter\" kind: GENERIC\npoint { field: \"power\" table: HOLDING_REGISTER address: %A type: UINT16 }\n";
  auto write = [&](const std::filesystem::path& p, const std::string& addr) {
    std::string t = profile;
    t.replace(t.find("%A"), 2, addr);
    std::ofstream(p) << t;
  };
  write(dir / "v1" / "meter.textproto", "0");
  write(dir / "v2" / "meter.textproto", "4");
  const std::string bus =
      "modbus_bus { name: \"m\" tcp { host: \"127.0.0.1\" port: 1502 }\n"
      "  device { id: \"meter\" unit_id: 1 profile: \"meter\" poll_interval_ms: 1000 } }\n";
  const auto p = plan(cfg(std::string(kBusA) + bus, "profile_dir: \"" + (dir / "v1").string() + "\""),
                      cfg(std::string(kBusA) + bus, "profile_dir: \"" + (dir / "v2").string() + "\""));
  CHECK(p.changed == V{"m"});
  CHECK(p.unchanged == V{"a"});
  CHECK(p.live == V{"profile_dir"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("MQTT, spool, gateway_id and the socket need a restart, log level and health interval do not") {
  const std::string base = cfg(kBusA);
  std::string mqtt = base;
  mqtt.replace(mqtt.find("1883"), 4, "1884");
  auto p = plan(base, mqtt);
  REQUIRE(p.refused.size() == 1);
  CHECK(p.refused[0].find("mqtt.uri changed") == 0);
  CHECK(p.unchanged == V{"a"});

  std::string spool = base;
  spool.replace(spool.find("memory: true"), 12, "memory: true max_bytes: 1000000");
  p = plan(base, spool);
  REQUIRE(p.refused.size() == 1);
  CHECK(p.refused[0].find("spool.max_bytes") == 0);

  std::string id = base;
  id.replace(id.find("\"gw\""), 4, "\"gw2\"");
  CHECK(plan(base, id).refused.size() >= 1);  // gateway_id (and the default client id with it)

  p = plan(base, cfg(kBusA, "control { socket: \"/tmp/other.sock\" }"));
  REQUIRE(p.refused.size() == 1);
  CHECK(p.refused[0].find("control.socket") == 0);

  p = plan(base, cfg(kBusA, "log_level: \"debug\"\nhealth_interval_s: 5"));
  CHECK(p.refused.empty());
  CHECK(p.live == V{"log_level", "health_interval_s"});
  CHECK(p.unchanged == V{"a"});
}

TEST_CASE("the gateway location reaches the devices that inherit it") {
  const auto p = plan(cfg(kBusA, "location { lat: 47.0 lon: 8.3 }"), cfg(kBusA, "location { lat: 47.1 lon: 8.3 }"));
  CHECK(p.changed == V{"a"});
  CHECK(p.live == V{"location"});
}
