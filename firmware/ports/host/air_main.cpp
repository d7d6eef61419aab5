// citygate-air-node: the air-quality node on the host (firmware/README.md). The node core as on
// the MCU; its flash is a file (--state), its radio a Semtech UDP packet-forwarder shim that
// sends every uplink to a gateway's packet-forwarder port (--gateway), its SPS30 and SHT3x
// simulated with the values of a scenario file (--scenario).
//
//   citygate-air-node --gateway HOST:PORT --state FILE [--provisioning FILE | --dev-addr HEX
//                     --nwk-s-key HEX --app-s-key HEX] [--gateway-eui HEX] [--scenario FILE]
//                     [--interval-s N] [--fcnt-margin N] [--sf 7..12] [--uplinks N]
//                     [--first-uplink-ms N]
//
// The settings: the provisioning record in the state file's sectors 0 and 1 (what the service
// UART's PROVISION writes), unless --provisioning or the key options are given. Provisioning
// file: the fields of citygate.v1.AirNodeSettings, one "name value" a line
// (dev_addr 26011A01, nwk_s_key <32 hex>, app_s_key <32 hex>, interval_s, fcnt_resume_margin;
// OTAA instead of ABP: dev_eui, join_eui <16 hex>, app_key <32 hex>; confirmed_every N);
// '#' starts a comment. --confirmed-every N overrides the file's (0: unconfirmed uplinks). Scenario file: "name value"
// lines: pm1, pm25, pm4, pm10 (ug/m3, 0.1), temperature (degC, 0.01), humidity (%RH, 0.01), sps30 / sht3x (ok, absent,
// bad_crc, not_ready); re-read when it changes (a new file renamed over it: the values drift while the node runs), a
// version that does not parse keeps the values before it. Keys are never printed.
//
// One line on stdout per uplink (FCnt, channel, data rate, time on air, the plaintext payload and
// the frame, both hex), per join-request and join ("joined dev_addr=..."), per downlink, and per
// confirmed uplink's outcome ("acked fcnt=N tries=K", "unacked ...", "retransmit ..."); never a key. SIGINT / SIGTERM
// stop it (exit 0); --uplinks N stops after N uplinks. Exit 64 for bad arguments or files, 69 when the gateway address
// or the flash file fails.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/provisioning.hpp"
#include "core/record_store.hpp"
#include "nodes/air/air_node.hpp"
#include "nodes/air/air_settings.hpp"
#include "ports/host/air_sim_sensors.hpp"
#include "ports/host/air_udp_radio.hpp"
#include "ports/host/posix.hpp"

namespace air = citygate::fw::air;
namespace fw = citygate::fw;
namespace host = citygate::fw::host;

namespace {

constexpr int kUsage = 64;
constexpr int kUnavailable = 69;
constexpr uint32_t kFlashSectors = 8;  // 0, 1 provisioning; 2..5 the FCnt ring; 6, 7 the OTAA state

// The shape nanopb gives citygate.v1.AirNodeSettings (air_settings.hpp).
struct Bytes16 {
  uint32_t size = 0;
  uint8_t bytes[16] = {};
};
struct Bytes8 {
  uint32_t size = 0;
  uint8_t bytes[8] = {};
};
struct Settings {
  Bytes8 dev_eui;
  uint32_t dev_addr = 0;
  Bytes16 nwk_s_key;
  Bytes16 app_s_key;
  uint32_t interval_s = 0;
  uint32_t fcnt_resume_margin = 0;
  Bytes8 join_eui;
  Bytes16 app_key;
  uint32_t confirmed_every = 0;
};

void usage(FILE* out) {
  fputs(
      "usage: citygate-air-node --gateway HOST:PORT --state FILE\n"
      "                         [--provisioning FILE | --dev-addr HEX --nwk-s-key HEX --app-s-key HEX]\n"
      "                         [--gateway-eui HEX16] [--scenario FILE] [--interval-s N] [--fcnt-margin N]\n"
      "                         [--sf 7..12] [--uplinks N] [--first-uplink-ms N] [--confirmed-every N]\n"
      "The air-quality node on the host: LoRaWAN uplinks (citygate-air v1; ABP, or OTAA when the provisioning\n"
      "gives dev_eui, join_eui and app_key) to a gateway's Semtech UDP\n"
      "packet-forwarder port, simulated SPS30 and SHT3x sensors, the frame counter in the --state file\n"
      "(a flash image; its provisioning record is used when neither --provisioning nor the keys are given).\n",
      out);
}

bool parseHex(const char* text, uint8_t* out, size_t bytes) {
  if (strlen(text) != 2 * bytes) return false;
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = text[2 * i + k];
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<unsigned>(c - 'A' + 10);
      } else {
        return false;
      }
      v = v << 4 | d;
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return true;
}

bool parseDevAddr(const char* text, uint32_t& out) {
  uint8_t b[4];
  if (!parseHex(text, b, 4)) return false;
  out = static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 | static_cast<uint32_t>(b[2]) << 8 | b[3];
  return true;
}

bool parseUnsigned(const char* text, uint32_t max, uint32_t& out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-' || v > max) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

// A decimal with at most `decimals` fraction digits, as an integer scaled by 10^decimals.
bool parseFixed(const char* text, int decimals, int32_t& out) {
  const char* p = text;
  bool negative = false;
  if (*p == '-') {
    negative = true;
    ++p;
  }
  int64_t v = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9'; ++p, ++digits) {
    v = v * 10 + (*p - '0');
    if (v > 100000000) return false;
  }
  int frac = 0;
  if (*p == '.') {
    ++p;
    for (; *p >= '0' && *p <= '9'; ++p, ++frac) {
      if (frac >= decimals) return false;
      v = v * 10 + (*p - '0');
    }
  }
  if (*p != '\0' || digits == 0) return false;
  for (; frac < decimals; ++frac) v *= 10;
  out = static_cast<int32_t>(negative ? -v : v);
  return true;
}

// Reads "name value" lines; calls set(name, value, line) for each, stops at its first false.
template <class Fn>
bool readPairs(const char* path, const char* what, Fn set) {
  FILE* f = fopen(path, "r");
  if (f == nullptr) {
    fprintf(stderr, "citygate-air-node: %s '%s': %s\n", what, path, strerror(errno));
    return false;
  }
  char line[256];
  int number = 0;
  bool ok = true;
  while (ok && fgets(line, sizeof line, f) != nullptr) {
    ++number;
    char* hash = strchr(line, '#');
    if (hash != nullptr) *hash = '\0';
    char name[64];
    char value[128];
    char extra[2];
    const int n = sscanf(line, "%63s %127s %1s", name, value, extra);
    if (n <= 0) continue;
    if (n != 2) {
      fprintf(stderr, "citygate-air-node: %s:%d: expected 'name value'\n", path, number);
      ok = false;
      break;
    }
    ok = set(name, value, number);
  }
  fclose(f);
  return ok;
}

bool parseFault(const char* text, host::SimFault& out) {
  if (strcmp(text, "ok") == 0) {
    out = host::SimFault::None;
  } else if (strcmp(text, "absent") == 0) {
    out = host::SimFault::Absent;
  } else if (strcmp(text, "bad_crc") == 0) {
    out = host::SimFault::BadCrc;
  } else if (strcmp(text, "not_ready") == 0) {
    out = host::SimFault::NotReady;
  } else {
    return false;
  }
  return true;
}

bool loadScenario(const char* path, host::SimAirBus& bus) {
  return readPairs(path, "scenario", [&](const char* name, const char* value, int line) {
    bool ok = true;
    host::SimAirValues& v = bus.values;
    if (strcmp(name, "pm1") == 0) {
      ok = parseFixed(value, 1, v.pm1) && v.pm1 >= 0;
    } else if (strcmp(name, "pm25") == 0) {
      ok = parseFixed(value, 1, v.pm25) && v.pm25 >= 0;
    } else if (strcmp(name, "pm4") == 0) {
      ok = parseFixed(value, 1, v.pm4) && v.pm4 >= 0;
    } else if (strcmp(name, "pm10") == 0) {
      ok = parseFixed(value, 1, v.pm10) && v.pm10 >= 0;
    } else if (strcmp(name, "temperature") == 0) {
      ok = parseFixed(value, 2, v.temperatureCenti) && v.temperatureCenti >= -4500 && v.temperatureCenti <= 13000;
    } else if (strcmp(name, "humidity") == 0) {
      ok = parseFixed(value, 2, v.humidityCenti) && v.humidityCenti >= 0 && v.humidityCenti <= 10000;
    } else if (strcmp(name, "sps30") == 0) {
      ok = parseFault(value, bus.sps30.fault);
    } else if (strcmp(name, "sht3x") == 0) {
      ok = parseFault(value, bus.sht3x.fault);
    } else {
      fprintf(stderr, "citygate-air-node: %s:%d: unknown name '%s'\n", path, line, name);
      return false;
    }
    if (!ok) fprintf(stderr, "citygate-air-node: %s:%d: bad value for %s: '%s'\n", path, line, name, value);
    return ok;
  });
}

// The scenario file as stat() sees it: a change of inode, size or modification time re-reads it.
struct FileStamp {
  ino_t inode = 0;
  off_t size = -1;
  struct timespec modified = {};
  bool operator==(const FileStamp& o) const {
    return inode == o.inode && size == o.size && modified.tv_sec == o.modified.tv_sec &&
           modified.tv_nsec == o.modified.tv_nsec;
  }
};

FileStamp stampOf(const char* path) {
  FileStamp s;
  struct stat st;
  if (stat(path, &st) == 0) {
    s.inode = st.st_ino;
    s.size = st.st_size;
    s.modified = st.st_mtim;
  }
  return s;
}

// Re-reads the scenario when its file has changed: the values and faults it gives, the defaults
// for those it does not; a file that does not parse (or is gone) keeps the previous ones.
void reloadScenario(const char* path, host::SimAirBus& bus, FileStamp& stamp) {
  const FileStamp now = stampOf(path);
  if (now == stamp || now.size < 0) return;
  stamp = now;
  const host::SimAirValues values = bus.values;
  const host::SimFault sps30 = bus.sps30.fault;
  const host::SimFault sht3x = bus.sht3x.fault;
  bus.values = host::SimAirValues{};
  bus.sps30.fault = bus.sht3x.fault = host::SimFault::None;
  if (!loadScenario(path, bus)) {
    bus.values = values;
    bus.sps30.fault = sps30;
    bus.sht3x.fault = sht3x;
    fprintf(stderr, "citygate-air-node: scenario '%s' not re-read: the previous values stay\n", path);
  }
}

bool loadProvisioning(const char* path, Settings& s) {
  return readPairs(path, "provisioning file", [&](const char* name, const char* value, int line) {
    bool ok = true;
    if (strcmp(name, "dev_addr") == 0) {
      ok = parseDevAddr(value, s.dev_addr);
    } else if (strcmp(name, "nwk_s_key") == 0) {
      ok = parseHex(value, s.nwk_s_key.bytes, 16);
      s.nwk_s_key.size = ok ? 16 : 0;
    } else if (strcmp(name, "app_s_key") == 0) {
      ok = parseHex(value, s.app_s_key.bytes, 16);
      s.app_s_key.size = ok ? 16 : 0;
    } else if (strcmp(name, "interval_s") == 0) {
      ok = parseUnsigned(value, 86400, s.interval_s);
    } else if (strcmp(name, "fcnt_resume_margin") == 0) {
      ok = parseUnsigned(value, 10000, s.fcnt_resume_margin);
    } else if (strcmp(name, "dev_eui") == 0) {
      ok = parseHex(value, s.dev_eui.bytes, 8);  // ABP: informative only; OTAA: the join's
      s.dev_eui.size = ok ? 8 : 0;
    } else if (strcmp(name, "join_eui") == 0) {
      ok = parseHex(value, s.join_eui.bytes, 8);
      s.join_eui.size = ok ? 8 : 0;
    } else if (strcmp(name, "app_key") == 0) {
      ok = parseHex(value, s.app_key.bytes, 16);
      s.app_key.size = ok ? 16 : 0;
    } else if (strcmp(name, "confirmed_every") == 0) {
      ok = parseUnsigned(value, 100, s.confirmed_every);
    } else {
      fprintf(stderr, "citygate-air-node: %s:%d: unknown name '%s'\n", path, line, name);
      return false;
    }
    // The value is not echoed: it may be a key.
    if (!ok) fprintf(stderr, "citygate-air-node: %s:%d: bad value for %s\n", path, line, name);
    return ok;
  });
}

void hex(const uint8_t* data, size_t size, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  out[2 * size] = '\0';
}

class Log final : public air::AirNode::Observer {
 public:
  void onUplink(const uint8_t* frame, size_t size, uint32_t fcnt, const citygate::fw::hal::TxParams& p, uint32_t toaUs,
                const uint8_t* payload, size_t payloadSize) override {
    char f[2 * air::kMaxFrame + 1];
    char pl[2 * air::kMaxFrame + 1];
    hex(frame, size, f);
    hex(payload, payloadSize, pl);
    printf("uplink fcnt=%u freq=%u.%03u datr=SF%uBW%u size=%u toa_us=%u payload=%s frame=%s\n", fcnt,
           p.frequencyHz / 1000000u, p.frequencyHz / 1000u % 1000u, p.spreadingFactor, p.bandwidthKhz,
           static_cast<unsigned>(size), toaUs, pl, f);
    fflush(stdout);
    ++uplinks;
  }
  void onJoinRequest(uint16_t devNonce, const citygate::fw::hal::TxParams& p) override {
    printf("join-request dev_nonce=%04x freq=%u.%03u\n", devNonce, p.frequencyHz / 1000000u,
           p.frequencyHz / 1000u % 1000u);
    fflush(stdout);
  }
  void onJoined(uint32_t devAddr, uint16_t devNonce, uint8_t rxDelay, bool cfList) override {
    printf("joined dev_addr=%08X dev_nonce=%04x rx_delay_s=%u cflist=%d\n", devAddr, devNonce, rxDelay, cfList ? 1 : 0);
    fflush(stdout);
  }
  void onConfirmed(uint32_t fcnt, bool acked, uint8_t tries) override {
    printf("%s fcnt=%u tries=%u\n", acked ? "acked" : "unacked", fcnt, tries);
    fflush(stdout);
  }
  void onRetransmit(uint32_t fcnt, uint8_t attempt) override {
    printf("retransmit fcnt=%u try=%u\n", fcnt, attempt);
    fflush(stdout);
  }
  void onDownlink(const air::Downlink& d) override {
    char fo[2 * 15 + 1];
    hex(d.fopts, d.foptsLen, fo);
    printf("downlink fcnt=%u ack=%d confirmed=%d fopts=%s port=%d size=%u\n", d.fcnt, d.ack ? 1 : 0,
           d.confirmed ? 1 : 0, fo, d.hasPort ? d.fport : -1, static_cast<unsigned>(d.payloadSize));
    fflush(stdout);
  }
  void onRefused(air::RxError why) override {
    printf("downlink refused: %s\n", air::rxErrorName(why));
    fflush(stdout);
  }
  uint32_t uplinks = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const char* gateway = nullptr;
  const char* state = nullptr;
  const char* provisioning = nullptr;
  const char* scenario = nullptr;
  const char* devAddr = nullptr;
  const char* nwkKey = nullptr;
  const char* appKey = nullptr;
  uint8_t eui[8] = {0xAA, 0x55, 0x5A, 0x00, 0x00, 0x00, 0x00, 0x01};
  uint32_t intervalS = 0;
  uint32_t margin = 0;
  uint32_t sf = 7;
  uint32_t maxUplinks = 0;
  uint32_t firstMs = 1500;
  int64_t confirmedEvery = -1;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "citygate-air-node: %s needs a value (or unknown option)\n", a);
      usage(stderr);
      return kUsage;
    }
    const char* v = argv[++i];
    bool ok = true;
    if (strcmp(a, "--gateway") == 0) {
      gateway = v;
    } else if (strcmp(a, "--state") == 0) {
      state = v;
    } else if (strcmp(a, "--provisioning") == 0) {
      provisioning = v;
    } else if (strcmp(a, "--scenario") == 0) {
      scenario = v;
    } else if (strcmp(a, "--dev-addr") == 0) {
      devAddr = v;
    } else if (strcmp(a, "--nwk-s-key") == 0) {
      nwkKey = v;
    } else if (strcmp(a, "--app-s-key") == 0) {
      appKey = v;
    } else if (strcmp(a, "--gateway-eui") == 0) {
      ok = parseHex(v, eui, 8);
    } else if (strcmp(a, "--interval-s") == 0) {
      ok = parseUnsigned(v, 86400, intervalS) && intervalS > 0;
    } else if (strcmp(a, "--fcnt-margin") == 0) {
      ok = parseUnsigned(v, 10000, margin) && margin > 0;
    } else if (strcmp(a, "--sf") == 0) {
      ok = parseUnsigned(v, 12, sf) && sf >= 7;
    } else if (strcmp(a, "--uplinks") == 0) {
      ok = parseUnsigned(v, 0xFFFFFFFFu, maxUplinks);
    } else if (strcmp(a, "--first-uplink-ms") == 0) {
      ok = parseUnsigned(v, 3600000, firstMs);
    } else if (strcmp(a, "--confirmed-every") == 0) {
      uint32_t n = 0;
      ok = parseUnsigned(v, 100, n);
      confirmedEvery = n;
    } else {
      fprintf(stderr, "citygate-air-node: unknown option %s\n", a);
      usage(stderr);
      return kUsage;
    }
    if (!ok) {
      // Key options are not echoed.
      const bool secret = strstr(a, "key") != nullptr;
      fprintf(stderr, "citygate-air-node: bad value for %s%s%s%s\n", a, secret ? "" : ": '", secret ? "" : v,
              secret ? "" : "'");
      return kUsage;
    }
  }
  if (gateway == nullptr || state == nullptr) {
    fprintf(stderr, "citygate-air-node: --gateway and --state are required\n");
    usage(stderr);
    return kUsage;
  }
  if (strchr(gateway, ':') == nullptr) {
    fprintf(stderr, "citygate-air-node: --gateway '%s': expected HOST:PORT\n", gateway);
    return kUsage;
  }
  static host::FileFlash flash;
  if (!flash.open(state, kFlashSectors)) {
    fprintf(stderr, "citygate-air-node: --state '%s': %s\n", state, strerror(errno));
    return kUnavailable;
  }
  Settings settings;
  static fw::NodeProvisioning record;
  const bool keyFlags = devAddr || nwkKey || appKey;
  if (provisioning != nullptr) {
    if (keyFlags) {
      fprintf(stderr, "citygate-air-node: --provisioning or --dev-addr/--nwk-s-key/--app-s-key, not both\n");
      return kUsage;
    }
    if (!loadProvisioning(provisioning, settings)) return kUsage;
  } else if (keyFlags) {
    if (devAddr == nullptr || nwkKey == nullptr || appKey == nullptr) {
      fprintf(stderr, "citygate-air-node: --provisioning FILE, or all of --dev-addr, --nwk-s-key, --app-s-key\n");
      return kUsage;
    }
    if (!parseDevAddr(devAddr, settings.dev_addr)) {
      fprintf(stderr, "citygate-air-node: --dev-addr '%s': expected 8 hex digits\n", devAddr);
      return kUsage;
    }
    if (!parseHex(nwkKey, settings.nwk_s_key.bytes, 16)) {
      fprintf(stderr, "citygate-air-node: --nwk-s-key: expected 32 hex digits\n");
      return kUsage;
    }
    if (!parseHex(appKey, settings.app_s_key.bytes, 16)) {
      fprintf(stderr, "citygate-air-node: --app-s-key: expected 32 hex digits\n");
      return kUsage;
    }
    settings.nwk_s_key.size = settings.app_s_key.size = 16;
  } else {
    // The provisioning record in the state file's sectors 0 and 1, as the service UART's
    // PROVISION writes it (citygate.v1.NodeProvisioning, core/provisioning.hpp).
    fw::RecordStore store(flash, 0);
    if (!fw::loadProvisioning(store, citygate_v1_NodeKind_NODE_AIR_QUALITY, record) || !record.has_air) {
      fprintf(stderr,
              "citygate-air-node: not provisioned: no valid air-quality record in '%s' (sectors 0, 1); "
              "give --provisioning FILE, or all of --dev-addr, --nwk-s-key, --app-s-key\n",
              state);
      return kUsage;
    }
    settings.dev_addr = record.air.dev_addr;
    settings.nwk_s_key.size = record.air.nwk_s_key.size;
    memcpy(settings.nwk_s_key.bytes, record.air.nwk_s_key.bytes, sizeof settings.nwk_s_key.bytes);
    settings.app_s_key.size = record.air.app_s_key.size;
    memcpy(settings.app_s_key.bytes, record.air.app_s_key.bytes, sizeof settings.app_s_key.bytes);
    settings.interval_s = record.air.interval_s;
    settings.fcnt_resume_margin = record.air.fcnt_resume_margin;
    settings.dev_eui.size = record.air.dev_eui.size;
    memcpy(settings.dev_eui.bytes, record.air.dev_eui.bytes, sizeof settings.dev_eui.bytes);
    settings.join_eui.size = record.air.join_eui.size;
    memcpy(settings.join_eui.bytes, record.air.join_eui.bytes, sizeof settings.join_eui.bytes);
    settings.app_key.size = record.air.app_key.size;
    memcpy(settings.app_key.bytes, record.air.app_key.bytes, sizeof settings.app_key.bytes);
    settings.confirmed_every = record.air.confirmed_every;
  }
  if (intervalS != 0) settings.interval_s = intervalS;
  if (margin != 0) settings.fcnt_resume_margin = margin;
  if (confirmedEvery >= 0) settings.confirmed_every = static_cast<uint32_t>(confirmedEvery);
  air::AirConfig config;
  if (const char* why = air::fromSettings(settings, config)) {
    fprintf(stderr, "citygate-air-node: %s\n", why);
    return kUsage;
  }
  config.spreadingFactor = static_cast<uint8_t>(sf);
  config.firstUplinkMs = firstMs;

  static host::SimAirBus bus;
  FileStamp scenarioStamp;
  if (scenario != nullptr) {
    scenarioStamp = stampOf(scenario);
    if (!loadScenario(scenario, bus)) return kUsage;
  }

  static host::MonotonicClock clock;
  static host::UdpForwarderRadio radio;
  char why[512];
  if (!radio.open(gateway, eui, clock, why, sizeof why)) {
    fprintf(stderr, "citygate-air-node: %s\n", why);
    return kUnavailable;
  }
  static host::PosixBoard board;
  board.handleStopSignals();
  board.watch(radio);

  static air::AirNode node(clock, radio, bus, flash);
  static Log log;
  if (const char* err = node.start(config, &log)) {
    fprintf(stderr, "citygate-air-node: %s\n", err);
    return kUnavailable;
  }
  const air::FcntStore::Stats& fs = node.fcnt().stats();
  if (config.otaa) {
    char devEui[17];
    hex(config.devEui, 8, devEui);
    const air::JoinStore::Stats& js = node.joinStore().stats();
    printf("citygate-air-node: OTAA DevEUI %s, %s, next DevNonce %u (state %s: %u join records, %u torn)\n", devEui,
           node.joined() ? "session kept from the flash" : "not joined", node.joinStore().nextDevNonce(), state,
           js.records, js.badRecords);
    if (node.joined()) printf("session dev_addr=%08X (restored, no rejoin)\n", node.devAddr());
  }
  printf(
      "citygate-air-node: DevAddr %08X, gateway %s, interval %u s, SF%u, next FCnt %u, confirmed every %u "
      "(state %s: %u records, %u torn)\n",
      node.devAddr(), gateway, config.intervalS, sf, node.fcnt().next(), config.confirmedEvery, state, fs.records,
      fs.badRecords);
  fflush(stdout);
  radio.keepAlive();
  // --uplinks N: after the Nth uplink, until its RX windows have closed (and its ACK, if confirmed).
  while (!board.stopRequested() && (maxUplinks == 0 || log.uplinks < maxUplinks || node.busy())) {
    if (scenario != nullptr) reloadScenario(scenario, bus, scenarioStamp);
    uint32_t wait = node.poll();
    radio.keepAlive();
    if (wait > 1000) wait = 1000;
    board.idle(wait);
  }
  // Let the last PUSH_ACK arrive (at most 200 ms).
  for (int i = 0; i < 20 && radio.pushAckPending(); ++i) board.idle(10), radio.service();
  const host::UdpForwarderRadio::Stats& rs = radio.stats();
  const air::AirNode::Stats& ns = node.stats();
  printf(
      "stopped: uplinks=%u next_fcnt=%u push_data=%u push_acks=%u pull_acks=%u fcnt_failures=%u "
      "duty_waits=%u sps30_crc=%u sps30_nack=%u sht3x_crc=%u sht3x_nack=%u flash_writes=%u\n",
      ns.uplinks, node.fcnt().next(), rs.pushData, rs.pushAcks, rs.pullAcks, ns.fcntFailures, ns.dutyWaits,
      node.sps30().stats().crcErrors, node.sps30().stats().nacks, node.sht3x().stats().crcErrors,
      node.sht3x().stats().nacks, fs.writes);
  printf(
      "radio: pull_resp=%u tx_acks=%u too_late=%u queue_full=%u bad_txpk=%u delivered=%u too_long=%u\n"
      "lorawan: join_requests=%u join_accepts=%u join_timeouts=%u dev_nonce_failures=%u confirmed=%u acked=%u "
      "unacked=%u retransmissions=%u downlinks=%u downlinks_accepted=%u bad_downlinks=%u outside_window=%u "
      "link_checks=%u dev_status_answers=%u\n",
      rs.pullResp, rs.txAcks, rs.tooLate, rs.queueFull, rs.badTxpk, rs.delivered, rs.tooLong, ns.joinRequests,
      ns.joinAccepts, ns.joinTimeouts, ns.devNonceFailures, ns.confirmed, ns.acked, ns.unacked, ns.retransmissions,
      ns.downlinks, ns.downlinksAccepted, ns.badDownlinks(), ns.outsideWindow, ns.linkChecks, ns.devStatusAnswers);
  for (size_t i = 1; i < static_cast<size_t>(air::RxError::Count); ++i) {
    if (ns.refused[i] != 0) printf("refused %s=%u\n", air::rxErrorName(static_cast<air::RxError>(i)), ns.refused[i]);
  }
  return 0;
}
