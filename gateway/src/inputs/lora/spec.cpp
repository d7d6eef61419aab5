#include "inputs/lora/spec.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "inputs/lora/codecs/registry.hpp"
#include "inputs/lora/join.hpp"

namespace citygate::lora {

using config::Diagnostics;
using config::Location;
namespace pb = citygate::v1;

std::optional<std::uint32_t> parseDevAddr(std::string_view hex) {
  if (hex.size() != 8) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : hex) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<std::uint32_t>(d);
  }
  return v;
}

namespace {

bool isHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::string upper(std::string s) {
  for (auto& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

// One session key: inline hex, or a 0600 file holding the hex. The key text is never echoed.
std::optional<Key> loadKey(const std::string& inlineHex, const std::string& file, std::string_view name,
                           const Location& dl, const config::ReadPolicy& policy, Diagnostics& diags) {
  const std::string fileField = std::string(name) + "_file";
  if (!inlineHex.empty() && !file.empty()) {
    dl.field(fileField).error(diags, std::string(name) + " and " + fileField + " are exclusive: give one");
    return std::nullopt;
  }
  if (inlineHex.empty() && file.empty()) {
    dl.error(diags, "lora device needs " + std::string(name) + " (32 hex digits) or " + fileField);
    return std::nullopt;
  }
  if (!inlineHex.empty()) {
    auto k = Key::fromHex(inlineHex);
    if (!k) {
      dl.field(name).error(diags, std::string(name) + " must be 32 hex digits (a 128-bit AES key); got " +
                                      std::to_string(inlineHex.size()) + " character(s)" +
                                      (isHex(inlineHex) ? "" : " including non-hex ones"));
    }
    return k;
  }
  auto secret = config::readSecretFile(file, dl.field(fileField), fileField, policy, diags);
  if (!secret) return std::nullopt;
  std::string text = secret->substr(0, secret->find('\n'));
  std::fill(secret->begin(), secret->end(), '\0');
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) text.pop_back();
  auto k = Key::fromHex(text);
  std::fill(text.begin(), text.end(), '\0');
  if (!k) {
    dl.field(fileField).error(diags, fileField + " '" + file + "' must hold 32 hex digits on its first line");
  }
  return k;
}

bool validBind(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// `deadband { field ... }` entries: report by exception for the codec's points of that field (in
// every lane). The core stage applies them (core/report_by_exception.hpp), as for Modbus.
void applyDeadbands(const pb::LoraDevice& dev, const Location& dl, std::vector<core::PointSpec>& points,
                    Diagnostics& diags) {
  std::set<std::string> seen;
  for (int i = 0; i < dev.deadband_size(); ++i) {
    const pb::PointDeadband& db = dev.deadband(i);
    const Location at = dl.child("deadband", i);
    if (!seen.insert(db.field()).second) {
      at.field("field").error(diags, "field '" + db.field() + "' has two deadbands");
      continue;
    }
    if (!(db.absolute() >= 0) || !(db.percent() >= 0) || !std::isfinite(db.absolute()) ||
        !std::isfinite(db.percent()) || (db.absolute() == 0 && db.percent() == 0)) {
      at.field(db.absolute() == 0 && db.percent() != 0 ? "percent" : "absolute")
          .error(diags, "deadband of '" + db.field() + "' needs absolute or percent > 0 (and neither negative)");
      continue;
    }
    bool found = false;
    for (auto& p : points) {
      if (p.name != db.field()) continue;
      found = true;
      p.deadbandAbsolute = db.absolute();
      p.deadbandPercent = db.percent();
      p.maxSilentS = db.max_silent_s() == 0 ? 900 : db.max_silent_s();
    }
    if (!found) {
      std::string names;
      for (const auto& p : points) {
        if (names.find("'" + p.name + "'") == std::string::npos) names += (names.empty() ? "'" : ", '") + p.name + "'";
      }
      at.field("field").error(
          diags, "codec '" + dev.codec() + "' fills no field '" + db.field() + "' (it fills " + names + ")");
    }
  }
}

std::optional<std::uint64_t> parseEui(std::string_view hex) {
  if (hex.size() != 16 || !isHex(hex)) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : hex) v = (v << 4) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  return v;
}

void compileJoin(const pb::LoraJoin& j, const Location& jl, LoraSpec& spec, Diagnostics& diags) {
  JoinSpec js;
  if (j.net_id().size() != 6 || !isHex(j.net_id())) {
    jl.field(j.net_id().empty() ? "" : "net_id")
        .error(diags, j.net_id().empty() ? "lora.join needs net_id (6 hex digits)"
                                         : "net_id '" + j.net_id() + "' must be 6 hex digits");
  } else {
    js.netId = static_cast<std::uint32_t>(std::stoul(j.net_id(), nullptr, 16));
  }
  const bool range = !j.dev_addr_first().empty() || !j.dev_addr_last().empty();
  if (range && !j.dev_addr_prefix().empty()) {
    jl.field("dev_addr_prefix").error(diags, "dev_addr_prefix and dev_addr_first/last are exclusive: give one");
  } else if (range) {
    const auto first = parseDevAddr(j.dev_addr_first());
    const auto last = parseDevAddr(j.dev_addr_last());
    if (!first)
      jl.field(j.dev_addr_first().empty() ? "dev_addr_last" : "dev_addr_first")
          .error(diags, "dev_addr_first '" + j.dev_addr_first() + "' must be 8 hex digits");
    if (!last)
      jl.field(j.dev_addr_last().empty() ? "dev_addr_first" : "dev_addr_last")
          .error(diags, "dev_addr_last '" + j.dev_addr_last() + "' must be 8 hex digits");
    if (first && last && *first > *last) {
      jl.field("dev_addr_last").error(diags, "dev_addr_last is below dev_addr_first");
    }
    js.devAddrFirst = first.value_or(0);
    js.devAddrLast = last.value_or(0);
  } else if (!j.dev_addr_prefix().empty()) {
    const std::string& p = j.dev_addr_prefix();
    const std::size_t slash = p.find('/');
    const auto base = parseDevAddr(p.substr(0, slash));
    int bits = -1;
    if (slash != std::string::npos && slash + 1 < p.size() && p.size() - slash <= 3 &&
        std::all_of(p.begin() + static_cast<std::ptrdiff_t>(slash + 1), p.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
      bits = std::stoi(p.substr(slash + 1));
    }
    if (!base || bits < 1 || bits > 31) {
      jl.field("dev_addr_prefix").error(diags, "dev_addr_prefix '" + p + "' must be 8 hex digits, '/', and 1..31 bits");
    } else {
      const std::uint32_t mask = ~std::uint32_t{0} << (32 - bits);
      js.devAddrFirst = *base & mask;
      js.devAddrLast = (*base & mask) | ~mask;
    }
  } else {
    jl.error(diags, "lora.join needs dev_addr_first and dev_addr_last, or dev_addr_prefix");
  }
  js.rxDelay = static_cast<std::uint8_t>(j.rx_delay_s() == 0 ? 1 : std::min<std::uint32_t>(j.rx_delay_s(), 255));
  if (j.rx_delay_s() > 15) jl.field("rx_delay_s").error(diags, "rx_delay_s must be 1..15");
  if (j.rx1_dr_offset() > 5) jl.field("rx1_dr_offset").error(diags, "rx1_dr_offset must be 0..5 (EU868)");
  js.rx1DrOffset = static_cast<std::uint8_t>(std::min<std::uint32_t>(j.rx1_dr_offset(), 5));
  if (j.rx2_data_rate() > 5)
    jl.field("rx2_data_rate").error(diags, "rx2_data_rate must be 0..5 (EU868, SF12..SF7 BW125)");
  js.rx2DataRate = static_cast<std::uint8_t>(std::min<std::uint32_t>(j.rx2_data_rate(), 5));
  if (j.no_cflist() && j.cflist_mhz_size() > 0) {
    jl.field("cflist_mhz").error(diags, "cflist_mhz and no_cflist: give one");
  } else if (j.cflist_mhz_size() > 5) {
    jl.field("cflist_mhz").error(diags, "cflist_mhz holds at most 5 frequencies");
  } else if (j.cflist_mhz_size() > 0) {
    for (int i = 0; i < j.cflist_mhz_size(); ++i) {
      const double f = j.cflist_mhz(i);
      if (!(f >= 863.0 && f <= 870.0)) {
        char text[32];
        std::snprintf(text, sizeof text, "%g", f);
        jl.field("cflist_mhz").error(diags, "cflist_mhz " + std::string(text) + " is outside EU868 (863..870 MHz)");
        break;
      }
      js.cflist.push_back(static_cast<std::uint32_t>(std::llround(f * 10000.0)));
    }
  } else if (!j.no_cflist()) {
    js.cflist = eu868DefaultCflist();
  }
  spec.join = std::move(js);
}

}  // namespace

std::optional<LoraSpec> compile(const config::LoadedConfig& cfg, Diagnostics& diags) {
  const pb::GatewayConfig& c = cfg.config;
  if (!c.has_lora()) return std::nullopt;
  const pb::LoraConfig& l = c.lora();
  const Location root = cfg.parsed.root;
  const Location ll = root.child("lora");
  LoraSpec spec;

  const Location pf = ll.child("packet_forwarder");
  spec.bind = l.packet_forwarder().bind().empty() ? "127.0.0.1" : l.packet_forwarder().bind();
  if (!validBind(spec.bind)) {
    pf.field("bind").error(diags, "packet_forwarder.bind '" + spec.bind + "' is not an IPv4 or IPv6 address");
  }
  const std::uint32_t port = l.packet_forwarder().port() == 0 ? 1700 : l.packet_forwarder().port();
  if (port > 65535) pf.field("port").error(diags, "packet_forwarder.port must be 1..65535");
  spec.port = static_cast<std::uint16_t>(port);
  const std::uint32_t dedup = l.dedup_window_ms() == 0 ? 200 : l.dedup_window_ms();
  if (dedup > 10000) ll.field("dedup_window_ms").error(diags, "dedup_window_ms must be 1..10000");
  spec.dedupWindow = std::chrono::milliseconds(dedup);
  spec.maxFcntGap = l.max_fcnt_gap() == 0 ? 16384 : l.max_fcnt_gap();
  if (spec.maxFcntGap > 65535) ll.field("max_fcnt_gap").error(diags, "max_fcnt_gap must be 1..65535");
  const std::uint32_t persistMs = l.fcnt_persist_interval_ms() == 0 ? 5000 : l.fcnt_persist_interval_ms();
  if (persistMs < 100 || persistMs > 3600000) {
    ll.field("fcnt_persist_interval_ms").error(diags, "fcnt_persist_interval_ms must be 100..3600000");
  }
  spec.persistInterval = std::chrono::milliseconds(persistMs);
  spec.resumeMargin = l.fcnt_resume_margin() == 0 ? 16 : l.fcnt_resume_margin();
  if (spec.resumeMargin > 16384) ll.field("fcnt_resume_margin").error(diags, "fcnt_resume_margin must be 1..16384");
  if (c.state_dir().empty()) {
    ll.error(diags, "lora needs state_dir (or spool.dir) to persist the devices' frame counters across restarts");
  } else {
    spec.statePath = c.state_dir() + "/lora-fcnt.state";
  }
  if (l.has_downlink() && l.downlink().enabled()) {
    const Location dl = ll.child("downlink");
    spec.downlink = true;
    if (!c.state_dir().empty()) spec.fcntDownPath = c.state_dir() + "/lora-fcntdown.state";
    spec.txPower = l.downlink().tx_power_dbm() == 0 ? 14 : l.downlink().tx_power_dbm();
    if (spec.txPower < 0 || spec.txPower > 27) dl.field("tx_power_dbm").error(diags, "tx_power_dbm must be 1..27");
    spec.queueDepth = l.downlink().queue_depth() == 0 ? 8 : l.downlink().queue_depth();
    if (spec.queueDepth > 64) dl.field("queue_depth").error(diags, "queue_depth must be 1..64");
  }
  spec.runtimeDir = c.runtime_dir();
  if (l.has_join()) compileJoin(l.join(), ll.child("join"), spec, diags);

  struct Seen {
    std::string id;
    int line;
  };
  std::map<std::pair<std::uint32_t, std::string>, Seen> sessions;  // (DevAddr, NwkSKey check) -> first device
  std::map<std::uint64_t, Seen> otaaEuis;                          // DevEUI -> first OTAA device
  std::size_t otaaDevices = 0;
  // An OTAA device: DevEUI required and unique among OTAA devices, AppKey (inline or 0600 file),
  // optional JoinEUI; nothing of a session may be given. False: skip the device.
  auto compileOtaa = [&](const pb::LoraDevice& dev, const Location& dl, bool otaa, LoraSpec&,
                         const config::ReadPolicy& policy, DeviceSpec& ds, Diagnostics& d) {
    if (!otaa) {
      const std::string f = !dev.join_eui().empty() ? "join_eui" : dev.app_key().empty() ? "app_key_file" : "app_key";
      dl.field(f).error(d, f + " is for OTAA devices, which have no dev_addr and no session keys (an ABP device has "
                               "them; an OTAA device gets them when it joins)");
      return false;
    }
    ++otaaDevices;
    bool ok = true;
    const auto eui = parseEui(dev.dev_eui());
    if (!eui) {
      dl.field(dev.dev_eui().empty() ? "app_key" + std::string(dev.app_key().empty() ? "_file" : "") : "dev_eui")
          .error(d, dev.dev_eui().empty() ? "OTAA device '" + dev.id() + "' needs a dev_eui (16 hex digits)"
                                          : "dev_eui '" + dev.dev_eui() + "' must be 16 hex digits");
      ok = false;
    } else {
      auto [it, fresh] = otaaEuis.emplace(*eui, Seen{dev.id(), dl.line()});
      if (!fresh) {
        dl.field("dev_eui").error(d, "OTAA device '" + dev.id() + "' has the same dev_eui as device '" + it->second.id +
                                         "' (line " + std::to_string(it->second.line) + ")");
        ok = false;
      }
      ds.devEuiValue = *eui;
    }
    if (!dev.join_eui().empty()) {
      const auto j = parseEui(dev.join_eui());
      if (!j) {
        dl.field("join_eui").error(d, "join_eui '" + dev.join_eui() + "' must be 16 hex digits");
        ok = false;
      }
      ds.joinEui = j;
    }
    auto key = loadKey(dev.app_key(), dev.app_key_file(), "app_key", dl, policy, d);
    if (!key) return false;
    ds.appKey = *key;
    ds.otaa = true;
    return ok;
  };
  for (int i = 0; i < l.device_size(); ++i) {
    const pb::LoraDevice& dev = l.device(i);
    const Location dl = ll.child("device", i);
    const std::size_t before = diags.size();
    DeviceSpec ds;
    const bool otaa = (!dev.app_key().empty() || !dev.app_key_file().empty()) && dev.dev_addr().empty() &&
                      dev.nwk_s_key().empty() && dev.nwk_s_key_file().empty() && dev.app_s_key().empty() &&
                      dev.app_s_key_file().empty();
    if (otaa || !dev.join_eui().empty() || !dev.app_key().empty() || !dev.app_key_file().empty()) {
      if (!compileOtaa(dev, dl, otaa, spec, cfg.policy, ds, diags)) continue;
    }
    const auto addr = otaa ? std::optional<std::uint32_t>(0) : parseDevAddr(dev.dev_addr());
    if (!addr) {
      dl.field(dev.dev_addr().empty() ? "id" : "dev_addr")
          .error(diags, dev.dev_addr().empty() ? "lora device '" + dev.id() + "' needs a dev_addr (8 hex digits)"
                                               : "dev_addr '" + dev.dev_addr() + "' must be 8 hex digits");
    } else {
      ds.devAddr = *addr;
      ds.devAddrHex = upper(dev.dev_addr());
    }
    if (!dev.dev_eui().empty()) {
      if (dev.dev_eui().size() != 16 || !isHex(dev.dev_eui())) {
        dl.field("dev_eui").error(diags, "dev_eui '" + dev.dev_eui() + "' must be 16 hex digits");
      }
      ds.devEui = upper(dev.dev_eui());
    }
    auto nwk = otaa ? std::optional<Key>(Key{})
                    : loadKey(dev.nwk_s_key(), dev.nwk_s_key_file(), "nwk_s_key", dl, cfg.policy, diags);
    auto app = otaa ? std::optional<Key>(Key{})
                    : loadKey(dev.app_s_key(), dev.app_s_key_file(), "app_s_key", dl, cfg.policy, diags);
    if (dev.has_location()) {
      const auto& g = dev.location();
      if (g.lat() < -90 || g.lat() > 90 || g.lon() < -180 || g.lon() > 180) {
        dl.field("location").error(diags, "location lat must be -90..90 and lon -180..180");
      }
    }
    auto built = buildCodec(dev, dl, diags);
    if (addr && nwk && !otaa) {
      // Two sessions with the same DevAddr and NwkSKey cannot be told apart by their MIC.
      const std::string keyId(reinterpret_cast<const char*>(nwk->data()), 16);
      auto [it, fresh] = sessions.emplace(std::make_pair(*addr, keyId), Seen{dev.id(), dl.line()});
      if (!fresh) {
        dl.field("nwk_s_key" + std::string(dev.nwk_s_key().empty() ? "_file" : ""))
            .error(diags, "lora device '" + dev.id() + "' has the same dev_addr and nwk_s_key as device '" +
                              it->second.id + "' (line " + std::to_string(it->second.line) +
                              "): their frames could not be told apart");
      }
    }
    if (built) applyDeadbands(dev, dl, built->points, diags);
    if (diags.size() != before || !built || !nwk || !app || !addr) continue;

    ds.nwkSKey = *nwk;
    ds.appSKey = *app;
    ds.relaxFcnt = dev.relax_fcnt();
    ds.codec = built->codec;
    auto sensor = std::make_shared<core::SensorSpec>();
    sensor->id = dev.id();
    sensor->kind = built->kind;
    sensor->points = std::move(built->points);
    if (dev.has_location()) {
      sensor->location = dev.location();
    } else if (c.has_location()) {
      sensor->location = c.location();
    }
    sensor->refParkingSite = dev.ref_parking_site();
    sensor->category = built->category;
    auto* src = sensor->source.mutable_lorawan();
    if (!otaa) src->set_dev_addr(ds.devAddrHex);
    src->set_dev_eui(ds.devEui);
    core::buildGroups(*sensor);
    ds.sensor = std::move(sensor);
    spec.devices.push_back(std::move(ds));
  }
  if (otaaDevices > 0) {
    if (!spec.join) {
      ll.error(diags, "lora has OTAA device(s) (app_key without dev_addr): it needs a join { } block");
    }
    if (!spec.downlink) {
      ll.error(diags, "lora has OTAA device(s): joins need downlink { enabled: true } (the join-accept is a downlink)");
    }
    if (!c.state_dir().empty()) spec.otaaPath = c.state_dir() + "/lora-otaa.state";
  }
  return spec;
}

}  // namespace citygate::lora
