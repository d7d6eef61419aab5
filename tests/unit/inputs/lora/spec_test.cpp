// lora::compile(): the LoRa validator. Key files are made here with their modes (git does not keep
// 0600); the deterministic cases are config folders under tests/data/config/lora-*.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/loader.hpp"
#include "core/report_by_exception.hpp"
#include "inputs/lora/spec.hpp"

using namespace citygate;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/citygate-lora-spec-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& text, mode_t mode) const {
    const std::string p = path + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  std::string path;
};

const char* kNwk = "44024241ed4ce9a68c6a8bc055233fd3";
const char* kApp = "ec925802ae430ca77fd3dd73cb2cc588";

std::string configText(const std::string& devices, const std::string& extra = "") {
  return "gateway_id: \"gw\"\nmqtt { uri: \"tcp://127.0.0.1:1883\" }\nspool { memory: true }\nstate_dir: \"/tmp\"\n"
         "lora {\n" +
         extra + devices + "}\n";
}

std::optional<lora::LoraSpec> compile(const std::string& text, config::Diagnostics& d) {
  config::LoadedConfig cfg;
  config::loadConfigText("c.textproto", text, cfg, d);
  REQUIRE(cfg.syntaxOk);
  return lora::compile(cfg, d);
}

}  // namespace

TEST_CASE("compile: the contract's device, with the LoRa source's static metadata") {
  config::Diagnostics d;
  auto spec = compile(
      configText(std::string("  device { id: \"parking-bay-0042\" dev_addr: \"26011f42\" nwk_s_key: \"") + kNwk +
                 "\" app_s_key: \"" + kApp +
                 "\" codec: \"nwave-nps405\" ref_parking_site: \"pilatusplatz\" dev_eui: \"70b3d5499f0a1b2c\" }\n"),
      d);
  INFO(d.str());
  REQUIRE(d.empty());
  REQUIRE(spec);
  CHECK(spec->bind == "127.0.0.1");
  CHECK(spec->port == 1700);
  CHECK(spec->dedupWindow.count() == 200);
  CHECK(spec->maxFcntGap == 16384);
  CHECK(spec->statePath == "/tmp/lora-fcnt.state");
  CHECK(spec->runtimeDir.starts_with("/"));  // the loader's default: the RAM copy always has a place
  REQUIRE(spec->devices.size() == 1);
  const auto& dev = spec->devices[0];
  CHECK(dev.devAddr == 0x26011F42U);
  CHECK(dev.sensor->source.lorawan().dev_addr() == "26011F42");
  CHECK(dev.sensor->source.lorawan().dev_eui() == "70B3D5499F0A1B2C");
  CHECK(dev.sensor->kind == v1::PARKING);
  CHECK(dev.sensor->refParkingSite == "pilatusplatz");
  CHECK(dev.nwkSKey == *lora::Key::fromHex(kNwk));
}

TEST_CASE("compile: no lora block, no LoRa spec") {
  config::Diagnostics d;
  config::LoadedConfig cfg;
  config::loadConfigText("c.textproto", "gateway_id: \"gw\"\nmqtt { uri: \"tcp://h:1\" }\nspool { memory: true }\n",
                         cfg, d);
  CHECK_FALSE(lora::compile(cfg, d));
}

TEST_CASE("key files: 0600 accepted, group/world-readable, missing or malformed refused, never echoed") {
  TempDir t;
  const std::string good = t.file("nwk.key", std::string(kNwk) + "\n", 0600);
  const std::string app = t.file("app.key", std::string(kApp), 0400);
  const std::string open = t.file("open.key", std::string(kNwk) + "\n", 0644);
  const std::string junk = t.file("junk.key", "not-a-key-0123456789abcdef0123456\n", 0600);
  auto dev = [&](const std::string& nwkFile, const std::string& appFile) {
    return "  device { id: \"d\" dev_addr: \"26011F42\" nwk_s_key_file: \"" + nwkFile + "\" app_s_key_file: \"" +
           appFile + "\" codec: \"bosch-tps110\" }\n";
  };
  {
    config::Diagnostics d;
    auto spec = compile(configText(dev(good, app)), d);
    INFO(d.str());
    CHECK(d.empty());
    REQUIRE(spec->devices.size() == 1);
    CHECK(spec->devices[0].nwkSKey == *lora::Key::fromHex(kNwk));
    CHECK(spec->devices[0].appSKey == *lora::Key::fromHex(kApp));
  }
  {
    config::Diagnostics d;
    compile(configText(dev(open, app)), d);
    REQUIRE(d.size() == 1);
    CHECK(d.items()[0].line == 6);
    CHECK(d.items()[0].message.find("mode 0644") != std::string::npos);
    CHECK(d.items()[0].message.find("chmod 600") != std::string::npos);
    CHECK(d.str().find(kNwk) == std::string::npos);
  }
  {
    config::Diagnostics d;
    compile(configText(dev(junk, t.path + "/missing.key")), d);
    REQUIRE(d.size() == 2);
    CHECK(d.items()[0].message.find("must hold 32 hex digits") != std::string::npos);
    CHECK(d.items()[1].message.find("No such file") != std::string::npos);
    CHECK(d.str().find("not-a-key") == std::string::npos);
  }
}

TEST_CASE("inline keys: wrong length or non-hex is an error that does not repeat the key") {
  config::Diagnostics d;
  compile(configText("  device { id: \"d\" dev_addr: \"26011F42\" nwk_s_key: \"44024241ed4ce9a68c6a8bc055233fd\" "
                     "app_s_key: \"zz925802ae430ca77fd3dd73cb2cc588\" codec: \"bosch-tps110\" }\n"),
          d);
  REQUIRE(d.size() == 2);
  CHECK(d.items()[0].message == "nwk_s_key must be 32 hex digits (a 128-bit AES key); got 31 character(s)");
  CHECK(d.items()[1].message ==
        "app_s_key must be 32 hex digits (a 128-bit AES key); got 32 character(s) including non-hex ones");
  CHECK(d.str().find("44024241ed4ce9a68c6a8bc055233fd") == std::string::npos);
  CHECK(d.str().find("zz925802") == std::string::npos);
}

TEST_CASE("devices sharing a DevAddr need different keys (the MIC tells them apart)") {
  const std::string other = "2b7e151628aed2a6abf7158809cf4f3c";
  auto dev = [&](const std::string& id, const std::string& nwk) {
    return "  device { id: \"" + id + "\" dev_addr: \"26011F42\" nwk_s_key: \"" + nwk + "\" app_s_key: \"" + kApp +
           "\" codec: \"bosch-tps110\" }\n";
  };
  config::Diagnostics ok;
  auto spec = compile(configText(dev("a", kNwk) + dev("b", other)), ok);
  CHECK(ok.empty());
  CHECK(spec->devices.size() == 2);
  config::Diagnostics d;
  compile(configText(dev("a", kNwk) + dev("b", kNwk)), d);
  REQUIRE(d.size() == 1);
  CHECK(d.items()[0].line == 7);
  CHECK(d.items()[0].message ==
        "lora device 'b' has the same dev_addr and nwk_s_key as device 'a' (line 6): their frames could not be told "
        "apart");
}

TEST_CASE("lora needs somewhere to keep its frame counters") {
  config::Diagnostics d;
  config::LoadedConfig cfg;
  config::loadConfigText("c.textproto",
                         "gateway_id: \"gw\"\nmqtt { uri: \"tcp://h:1\" }\nspool { memory: true }\nlora { }\n", cfg, d);
  lora::compile(cfg, d);
  REQUIRE(d.size() == 1);
  CHECK(d.items()[0].message.find("state_dir") != std::string::npos);
}

TEST_CASE("deadband: a LoRa device's codec points get report by exception from the config") {
  config::Diagnostics d;
  auto spec = compile(configText(std::string("  device { id: \"bay\" dev_addr: \"26011f42\" nwk_s_key: \"") + kNwk +
                                 "\" app_s_key: \"" + kApp +
                                 "\" codec: \"nwave-nps405\"\n"
                                 "    deadband { field: \"temperature\" absolute: 2 }\n"
                                 "    deadband { field: \"battery_voltage\" percent: 5 max_silent_s: 3600 } }\n"),
                      d);
  INFO(d.str());
  REQUIRE(d.empty());
  REQUIRE(spec);
  const core::SensorSpec& s = *spec->devices.at(0).sensor;
  const auto point = [&](std::string_view name) -> const core::PointSpec& {
    for (const auto& p : s.points) {
      if (p.name == name) return p;
    }
    FAIL("no point " << name);
    return s.points.front();
  };
  CHECK_FALSE(point("status").hasDeadband());
  CHECK(point("temperature").deadbandAbsolute == 2);
  CHECK(point("temperature").maxSilentS == 900);  // the default, as for a profile point
  CHECK(point("battery_voltage").deadbandPercent == 5);
  CHECK(point("battery_voltage").maxSilentS == 3600);

  // The core stage then holds back a heartbeat whose temperature moved less than 2 °C.
  core::SensorMemory memory;
  const auto heartbeat = [&](std::int64_t atS, double status, double temperature, double volts) {
    core::RawSample r;
    r.observedAt = citygate::WallTime{} + std::chrono::seconds(1'800'000'000 + atS);
    r.values.resize(s.points.size());
    for (std::size_t i = 0; i < s.points.size(); ++i) {
      const double v = s.points[i].name == "status" ? status : s.points[i].name == "temperature" ? temperature : volts;
      r.values[i] = core::RawValue{v, core::RawValue::State::Ok};
    }
    return r;
  };
  auto first = heartbeat(0, 0, 10, 3.3);
  CHECK(core::reportByException(s, first, memory));
  auto steady = heartbeat(600, 0, 11, 3.3);
  CHECK(core::reportByException(s, steady, memory));  // status has no deadband: it always goes
  for (std::size_t i = 0; i < s.points.size(); ++i) {
    CHECK((steady.values[i].state == core::RawValue::State::Skip) == (s.points[i].name != "status"));
  }
  auto warmer = heartbeat(1200, 0, 12.5, 3.3);
  CHECK(core::reportByException(s, warmer, memory));
  for (std::size_t i = 0; i < s.points.size(); ++i) {
    if (s.points[i].name == "temperature") CHECK(warmer.values[i].state == core::RawValue::State::Ok);
  }
}

TEST_CASE("deadband: an unknown field, a second entry or no threshold is an error at its line") {
  config::Diagnostics d;
  compile(configText(std::string("  device { id: \"bay\" dev_addr: \"26011f42\" nwk_s_key: \"") + kNwk +
                     "\" app_s_key: \"" + kApp +
                     "\" codec: \"nwave-nps405\"\n"
                     "    deadband { field: \"pm25\" absolute: 2 }\n"
                     "    deadband { field: \"temperature\" absolute: 2 }\n"
                     "    deadband { field: \"temperature\" absolute: 3 }\n"
                     "    deadband { field: \"battery_voltage\" }\n"
                     "    deadband { field: \"status\" absolute: -1 } }\n"),
          d);
  const std::string text = d.str();
  INFO(text);
  CHECK(d.size() == 4);
  CHECK(text.find("c.textproto:7:") != std::string::npos);
  CHECK(text.find("codec 'nwave-nps405' fills no field 'pm25' (it fills 'status', 'temperature', 'battery_voltage')") !=
        std::string::npos);
  CHECK(text.find("field 'temperature' has two deadbands") != std::string::npos);
  CHECK(text.find("deadband of 'battery_voltage' needs absolute or percent > 0") != std::string::npos);
  CHECK(text.find("deadband of 'status' needs") != std::string::npos);
}

TEST_CASE("OTAA: an app_key device with lora.join compiles without a session, with the join block's defaults") {
  TempDir t;
  const std::string keyFile = t.file("bay.appkey", "98929b92c49edba9676d646d3b612456\n", 0600);
  config::Diagnostics d;
  auto spec = compile(configText("  device { id: \"bay\" dev_eui: \"3331383274356905\" join_eui: \"aa13693363343639\" "
                                 "app_key_file: \"" +
                                     keyFile + "\" codec: \"nwave-nps405\" }\n",
                                 "  downlink { enabled: true }\n  join { net_id: \"000013\" dev_addr_prefix: "
                                 "\"26011000/24\" }\n"),
                      d);
  INFO(d.str());
  REQUIRE(d.empty());
  REQUIRE(spec);
  REQUIRE(spec->join);
  CHECK(spec->join->netId == 0x13);
  CHECK(spec->join->devAddrFirst == 0x26011000U);
  CHECK(spec->join->devAddrLast == 0x260110FFU);
  CHECK(spec->join->rxDelay == 1);
  CHECK(spec->join->cflist.size() == 5);
  CHECK(spec->otaaPath == "/tmp/lora-otaa.state");
  REQUIRE(spec->devices.size() == 1);
  const auto& dev = spec->devices[0];
  CHECK(dev.otaa);
  CHECK(dev.devEuiValue == 0x3331383274356905ULL);
  CHECK(dev.joinEui == 0xAA13693363343639ULL);
  CHECK(dev.appKey == *lora::Key::fromHex("98929b92c49edba9676d646d3b612456"));
  CHECK(dev.sensor->source.lorawan().dev_addr().empty());

  // The AppKey file is a secret like the session keys': 0600, never echoed.
  const std::string open = t.file("open.appkey", "98929b92c49edba9676d646d3b612456\n", 0644);
  config::Diagnostics d2;
  compile(configText("  device { id: \"bay\" dev_eui: \"3331383274356905\" app_key_file: \"" + open +
                         "\" codec: \"nwave-nps405\" }\n",
                     "  downlink { enabled: true }\n  join { net_id: \"000013\" dev_addr_prefix: \"26011000/24\" }\n"),
          d2);
  CHECK(d2.str().find("app_key_file") != std::string::npos);
  CHECK(d2.str().find("98929b92") == std::string::npos);
}

TEST_CASE("OTAA needs lora.join and downlinks, and join's ranges and prefixes are checked") {
  config::Diagnostics d;
  compile(configText("  device { id: \"bay\" dev_eui: \"3331383274356905\" app_key: "
                     "\"98929b92c49edba9676d646d3b612456\" codec: \"nwave-nps405\" }\n"),
          d);
  CHECK(d.str().find("it needs a join { } block") != std::string::npos);
  CHECK(d.str().find("joins need downlink { enabled: true }") != std::string::npos);
  CHECK(d.str().find("98929b92") == std::string::npos);

  config::Diagnostics p;
  compile(configText("", "  join { net_id: \"000013\" dev_addr_prefix: \"26011000/33\" }\n"), p);
  CHECK(p.str().find("dev_addr_prefix '26011000/33' must be 8 hex digits, '/', and 1..31 bits") != std::string::npos);
  config::Diagnostics b;
  compile(
      configText("", "  join { net_id: \"000013\" dev_addr_prefix: \"26011000/8\" dev_addr_first: \"26011000\" }\n"),
      b);
  CHECK(b.str().find("exclusive") != std::string::npos);
  config::Diagnostics n;
  compile(configText("", "  join { net_id: \"000013\" }\n"), n);
  CHECK(n.str().find("needs dev_addr_first and dev_addr_last, or dev_addr_prefix") != std::string::npos);
}
