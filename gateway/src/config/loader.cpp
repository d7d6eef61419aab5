#include "config/loader.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "core/hash.hpp"

namespace citygate::config {

bool isValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string defaultRuntimeDir(const std::string& stateDir) {
  // systemd's RuntimeDirectory= (a colon-separated list when there are several: the first).
  if (const char* env = std::getenv("RUNTIME_DIRECTORY"); env && env[0] == '/') {
    const std::string_view v(env);
    return std::string(v.substr(0, v.find(':')));
  }
  // Named after the state directory: two daemons with different state never share RAM state.
  char buf[48];
  std::snprintf(buf, sizeof buf, "/dev/shm/citygate-%016llx", static_cast<unsigned long long>(core::fnv1a64(stateDir)));
  return buf;
}

void applyDefaults(pb::GatewayConfig& c) {
  auto* m = c.mutable_mqtt();
  if (m->client_id().empty()) m->set_client_id(c.gateway_id());
  if (m->topic_prefix().empty()) m->set_topic_prefix(kDefaultTopicPrefix);
  if (m->max_batch_readings() == 0) m->set_max_batch_readings(200);
  if (m->max_batch_delay_ms() == 0) m->set_max_batch_delay_ms(100);
  if (m->keepalive_s() == 0) m->set_keepalive_s(30);
  if (m->reconnect_min_ms() == 0) m->set_reconnect_min_ms(1000);
  // A fleet's rule (README "Brokers and failover"): every gateway tries at least once per 20 s.
  if (m->reconnect_max_ms() == 0) m->set_reconnect_max_ms(20000);
  if (m->max_inflight_batches() == 0) m->set_max_inflight_batches(8);
  if (m->connect_timeout_s() == 0) m->set_connect_timeout_s(10);
  if (c.control().socket().empty()) c.mutable_control()->set_socket(kDefaultControlSocket);
  if (c.health_interval_s() == 0) c.set_health_interval_s(60);
  auto* s = c.mutable_spool();
  if (s->max_bytes() == 0) s->set_max_bytes(256ULL << 20);
  if (s->when_full() == pb::SpoolConfig::WHEN_FULL_UNSPECIFIED) s->set_when_full(pb::SpoolConfig::DROP_OLDEST);
  if (s->segment_bytes() == 0) s->set_segment_bytes(4U << 20);
  if (s->durability_ms() == 0) s->set_durability_ms(100);
  if (s->durability() == pb::SpoolConfig::DURABILITY_UNSPECIFIED) s->set_durability(pb::SpoolConfig::ACK_DRIVEN);
  if (s->sync_after_ms() == 0) s->set_sync_after_ms(1000);
  if (s->retain_s() == 0) s->set_retain_s(3600);
  if (c.state_dir().empty()) c.set_state_dir(s->dir());
  if (c.runtime_dir().empty()) c.set_runtime_dir(defaultRuntimeDir(c.state_dir()));
  for (auto& bus : *c.mutable_modbus_bus()) {
    if (bus.response_timeout_ms() == 0) bus.set_response_timeout_ms(500);
    if (bus.backoff_min_ms() == 0) bus.set_backoff_min_ms(5000);
    if (bus.backoff_max_ms() == 0) bus.set_backoff_max_ms(300000);
    if (bus.failures_to_down() == 0) bus.set_failures_to_down(3);
    if (bus.has_tcp() && bus.tcp().port() == 0) bus.mutable_tcp()->set_port(502);
    if (bus.has_rtu_over_tcp() && bus.rtu_over_tcp().port() == 0) bus.mutable_rtu_over_tcp()->set_port(502);
    if (bus.has_rtu()) {
      auto* r = bus.mutable_rtu();
      if (r->baud() == 0) r->set_baud(19200);
      if (r->parity() == pb::SerialRtu::PARITY_UNSPECIFIED) r->set_parity(pb::SerialRtu::EVEN);
      if (r->data_bits() == 0) r->set_data_bits(8);
      if (r->stop_bits() == 0) r->set_stop_bits(1);
    }
    for (auto& d : *bus.mutable_device()) {
      if (d.poll_interval_ms() == 0) d.set_poll_interval_ms(60000);
      if (d.response_timeout_ms() == 0) d.set_response_timeout_ms(bus.response_timeout_ms());
    }
  }
  if (c.has_lora()) {
    auto* l = c.mutable_lora();
    auto* pf = l->mutable_packet_forwarder();
    if (pf->bind().empty()) pf->set_bind("127.0.0.1");
    if (pf->port() == 0) pf->set_port(1700);
    if (l->dedup_window_ms() == 0) l->set_dedup_window_ms(200);
    if (l->max_fcnt_gap() == 0) l->set_max_fcnt_gap(16384);
  }
}

void checkReadableFile(const std::string& path, const Location& at, std::string_view what, const ReadPolicy& policy,
                       Diagnostics& diags) {
  if (auto refusal = policy.check(path); !refusal.empty()) {
    at.error(diags, std::string(what) + ": " + refusal);
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    at.error(diags, std::string(what) + " '" + path + "': " + std::strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    at.error(diags, std::string(what) + " '" + path + "' is not a regular file (" + fileTypeName(st.st_mode) + ")");
    return;
  }
  if (::access(path.c_str(), R_OK) != 0) {
    at.error(diags, std::string(what) + " '" + path + "' is not readable: " + std::strerror(errno));
  }
}

namespace {

std::string modeText(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string directoryOf(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// What is wrong with a secret's file (its status) and its directory; empty when nothing.
std::vector<std::string> secretProblems(const std::string& path, const struct stat& st, std::string_view what) {
  std::vector<std::string> out;
  const std::string name = std::string(what) + " '" + path + "'";
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    out.push_back(name + " belongs to uid " + std::to_string(st.st_uid) +
                  ": a file holding a secret must belong to the daemon's user (uid " + std::to_string(me) +
                  ") or root");
  }
  if ((st.st_mode & 077) != 0) {
    out.push_back(name + " has mode " + modeText(st.st_mode) +
                  ": a file holding a secret must be 0600 or stricter (chmod 600 '" + path + "')");
  }
  const std::string dir = directoryOf(path);
  struct stat ds {};
  if (::stat(dir.c_str(), &ds) == 0 && (ds.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    out.push_back(name + " is in '" + dir + "' (mode " + modeText(ds.st_mode) +
                  "), which group or others may write: they could put another file in its place (chmod go-w '" + dir +
                  "')");
  }
  return out;
}

}  // namespace

void checkSecretFile(const std::string& path, const Location& at, std::string_view what, const ReadPolicy& policy,
                     Diagnostics& diags) {
  if (auto refusal = policy.check(path); !refusal.empty()) {
    at.error(diags, std::string(what) + ": " + refusal);
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    at.error(diags, std::string(what) + " '" + path + "': " + std::strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    at.error(diags, std::string(what) + " '" + path + "' is not a regular file (" + fileTypeName(st.st_mode) + ")");
    return;
  }
  const auto problems = secretProblems(path, st, what);
  for (const auto& p : problems) at.error(diags, p);
  if (problems.empty() && ::access(path.c_str(), R_OK) != 0) {
    at.error(diags, std::string(what) + " '" + path + "' is not readable: " + std::strerror(errno));
  }
}

std::optional<std::string> readSecretFile(const std::string& path, const Location& at, std::string_view what,
                                          const ReadPolicy& policy, Diagnostics& diags) {
  if (auto refusal = policy.check(path); !refusal.empty()) {
    at.error(diags, std::string(what) + ": " + refusal);
    return std::nullopt;
  }
  std::vector<std::string> problems;
  SmallFile f = readSmallFile(path, kMaxSecretBytes, [&](const struct stat& st) {
    problems = secretProblems(path, st, what);
    return problems.empty() ? std::string() : problems.front();
  });
  if (f.fault == FileFault::Refused) {
    for (const auto& p : problems) at.error(diags, p);
    return std::nullopt;
  }
  if (!f.ok()) {
    // As checkSecretFile() says it: "key_file 'k': No such file or directory".
    at.error(diags,
             std::string(what) + " '" + path + "': " + (f.errorNumber != 0 ? std::strerror(f.errorNumber) : f.error));
    return std::nullopt;
  }
  return std::move(f.bytes);
}

namespace {

// A Sparkplug id (group, host, device): one topic level, so no '/', and no wildcard.
bool sparkplugId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '-';
  });
}

void checkSparkplug(const pb::GatewayConfig& c, const Location& root, Diagnostics& d) {
  const Location mqtt = root.child("mqtt");
  const auto& m = c.mqtt();
  if (m.format() > pb::MqttConfig::SPARKPLUG_B) {
    mqtt.field("format").error(d, "format must be NATIVE or SPARKPLUG_B");
    return;
  }
  if (m.format() != pb::MqttConfig::SPARKPLUG_B) {
    if (m.has_sparkplug()) mqtt.field("sparkplug").error(d, "sparkplug settings need format: SPARKPLUG_B");
    return;
  }
  const Location at = mqtt.child("sparkplug");
  const auto& s = m.sparkplug();
  if (s.group_id().empty()) {
    (m.has_sparkplug() ? at : mqtt).error(d, "format SPARKPLUG_B needs sparkplug { group_id: \"...\" }");
  } else if (!sparkplugId(s.group_id())) {
    at.field("group_id")
        .error(d,
               "sparkplug.group_id '" + s.group_id() + "' must be 1..64 of A-Z a-z 0-9 _ - (a Sparkplug topic level)");
  }
  if (!s.host_id().empty() && !sparkplugId(s.host_id())) {
    at.field("host_id").error(d, "sparkplug.host_id '" + s.host_id() + "' must be 1..64 of A-Z a-z 0-9 _ -");
  }
  // Device ids ([A-Za-z0-9._-], checked with the devices) are valid Sparkplug device_ids as they are.
}

void checkMqtt(const pb::GatewayConfig& c, const Location& root, const ReadPolicy& policy, Diagnostics& d) {
  const Location at = root.child("mqtt");
  const auto& m = c.mqtt();
  if (!c.has_mqtt() || m.uri().empty()) {
    (c.has_mqtt() ? at : root).error(d, "mqtt.uri is required (tcp://host:port or ssl://host:port)");
    return;
  }
  // Each uri one broker (a list is written as repeated `uri:` or `uri: [...]`, never one string
  // with commas or spaces), all with the same scheme (one TLS setting serves them all).
  bool tls = false;
  for (int i = 0; i < m.uri_size(); ++i) {
    const std::string& uri = m.uri(i);
    const Location u = at.field("uri");
    const bool isTls = uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0;
    const bool plain = uri.rfind("tcp://", 0) == 0 || uri.rfind("mqtt://", 0) == 0;
    if (i == 0) tls = isTls;
    if (!isTls && !plain) {
      u.error(d, "mqtt.uri '" + uri + "' must start with tcp:// or ssl://");
      continue;
    }
    if (isTls != tls) u.error(d, "mqtt.uri '" + uri + "': every uri must use the same scheme as the first");
    const std::string rest = uri.substr(uri.find("://") + 3);
    if (rest.empty()) {
      u.error(d, "mqtt.uri '" + uri + "' has no host");
    } else if (rest.find_first_of(", ;\t") != std::string::npos) {
      u.error(d, "mqtt.uri '" + uri +
                     "' holds more than one address: give each broker its own `uri:` (uri: [\"tcp://a:1883\", "
                     "\"tcp://b:1883\"])");
    } else if (rest.find('/') != std::string::npos) {
      u.error(d, "mqtt.uri '" + uri + "' has a path: only scheme://host:port");
    } else if (const auto colon = rest.rfind(':'); colon != std::string::npos && rest.back() != ']') {
      const std::string port = rest.substr(colon + 1);
      const bool digits =
          !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
      if (!digits || std::stoul(port) == 0 || std::stoul(port) > 65535) {
        u.error(d, "mqtt.uri '" + uri + "' has no valid port (1..65535)");
      }
    }
    for (int j = 0; j < i; ++j) {
      if (m.uri(j) == uri) u.error(d, "mqtt.uri '" + uri + "' is listed twice");
    }
  }
  if (m.uri_size() > 16) at.field("uri").error(d, "mqtt.uri lists more than 16 brokers");
  if (m.has_tls()) {
    const Location t = at.child("tls");
    if (!tls) at.field("tls").error(d, "tls settings need an ssl:// uri");
    if (!m.tls().ca_file().empty()) checkReadableFile(m.tls().ca_file(), t.field("ca_file"), "ca_file", policy, d);
    if (m.tls().cert_file().empty() != m.tls().key_file().empty()) {
      t.error(d, "cert_file and key_file go together (mutual TLS)");
    }
    if (!m.tls().cert_file().empty())
      checkReadableFile(m.tls().cert_file(), t.field("cert_file"), "cert_file", policy, d);
    if (!m.tls().key_file().empty()) checkSecretFile(m.tls().key_file(), t.field("key_file"), "key_file", policy, d);
  }
  if (!m.password_file().empty()) {
    // Read as the daemon will read it at start: regular, at most kMaxSecretBytes, owner and mode.
    if (auto secret = readSecretFile(m.password_file(), at.field("password_file"), "password_file", policy, d)) {
      std::fill(secret->begin(), secret->end(), '\0');
    }
    if (m.username().empty()) at.field("password_file").error(d, "password_file needs a username");
  }
  if (m.protocol_version() > 2) at.field("protocol_version").error(d, "protocol_version must be MQTT_3_1_1 or MQTT_5");
  if (m.max_batch_readings() > 10000) at.field("max_batch_readings").error(d, "max_batch_readings must be 1..10000");
  if (m.max_batch_delay_ms() > 60000) at.field("max_batch_delay_ms").error(d, "max_batch_delay_ms must be 0..60000");
  if (m.reconnect_min_ms() > m.reconnect_max_ms()) {
    at.field("reconnect_min_ms").error(d, "reconnect_min_ms is larger than reconnect_max_ms");
  }
  if (m.health_qos() > 1) at.field("health_qos").error(d, "health_qos must be 0 or 1");
  if (m.max_inflight_batches() > 64) at.field("max_inflight_batches").error(d, "max_inflight_batches must be 1..64");
  if (m.client_id().size() > 128) at.field("client_id").error(d, "client_id is longer than 128 characters");
  for (char ch : m.topic_prefix()) {
    if (ch == '+' || ch == '#' || ch == '\0') {
      at.field("topic_prefix").error(d, "topic_prefix must not contain MQTT wildcards");
      break;
    }
  }
  checkSparkplug(c, root, d);
}

void checkSpool(const pb::GatewayConfig& c, const Location& root, Diagnostics& d) {
  const Location at = root.child("spool");
  const auto& s = c.spool();
  if (!s.memory() && s.dir().empty()) {
    (c.has_spool() ? at : root).error(d, "spool.dir is required (or spool { memory: true })");
  }
  if (s.max_bytes() < (64U << 10)) at.field("max_bytes").error(d, "spool.max_bytes must be at least 65536");
  if (s.segment_bytes() < 4096) at.field("segment_bytes").error(d, "spool.segment_bytes must be at least 4096");
  if (s.durability_ms() > 10000) at.field("durability_ms").error(d, "spool.durability_ms must be 1..10000");
  if (s.sync_after_ms() > 60000) at.field("sync_after_ms").error(d, "spool.sync_after_ms must be 1..60000");
  if (s.retain_bytes() > s.max_bytes() / 2) {
    at.field("retain_bytes")
        .error(d, "spool.retain_bytes must be at most half of max_bytes (" + std::to_string(s.max_bytes() / 2) +
                      "): the rest is for readings not yet delivered");
  }
  if (s.retain_s() > 7 * 86400) at.field("retain_s").error(d, "spool.retain_s must be 1..604800 (7 days)");
  if (!c.runtime_dir().empty() && c.runtime_dir()[0] != '/') {
    root.field("runtime_dir").error(d, "runtime_dir must be an absolute path (a tmpfs directory)");
  }
}

}  // namespace

bool loadConfigText(const std::string& path, const std::string& text, LoadedConfig& out, Diagnostics& diags,
                    const ReadPolicy& policy) {
  const std::size_t before = diags.size();
  out.path = path;
  out.text = text;
  out.policy = policy;
  if (!parseText(path, text, out.config, diags, out.parsed)) return false;
  out.syntaxOk = true;
  pb::GatewayConfig& c = out.config;
  const Location& root = out.parsed.root;
  applyDefaults(c);

  // The gateway id is a topic level: only what every common broker keeps intact there (RabbitMQ
  // maps '.' to its own separator, and `citygate/v1/+/readings` would miss the gateway).
  if (!isValidId(c.gateway_id()) || c.gateway_id().find('.') != std::string::npos) {
    root.field("gateway_id")
        .error(diags, c.gateway_id().empty()
                          ? "gateway_id is required"
                          : "gateway_id '" + c.gateway_id() +
                                "' must be 1-64 of [A-Za-z0-9_-] (no '.': a topic level some brokers rewrite)");
  }
  if (c.has_location()) {
    const auto& l = c.location();
    if (l.lat() < -90 || l.lat() > 90 || l.lon() < -180 || l.lon() > 180) {
      root.field("location").error(diags, "location lat must be -90..90 and lon -180..180");
    }
  }
  checkMqtt(c, root, policy, diags);
  checkSpool(c, root, diags);
  if (c.health_interval_s() > 86400) root.field("health_interval_s").error(diags, "health_interval_s must be 1..86400");
  if (c.control().socket().size() >= 108) {
    root.child("control").field("socket").error(diags, "control.socket path is too long for a Unix socket");
  }
  if (!c.log_level().empty()) {
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (!levels.contains(c.log_level()))
      root.field("log_level").error(diags, "unknown log_level '" + c.log_level() + "'");
  }

  // Ids are unique across the whole gateway: they are the readings' sensor_id.
  std::map<std::string, Location> ids;
  auto claim = [&](const std::string& id, const Location& at, std::string_view what) {
    if (!isValidId(id)) {
      at.error(diags, std::string(what) + " id '" + id + "' must be 1-64 of [A-Za-z0-9._-]");
      return;
    }
    auto [it, fresh] = ids.emplace(id, at);
    if (!fresh) {
      at.error(diags,
               "duplicate device id '" + id + "' (first defined at line " + std::to_string(it->second.line()) + ")");
    }
  };
  std::map<std::string, int> busNames;
  for (int b = 0; b < c.modbus_bus_size(); ++b) {
    const Location bl = root.child("modbus_bus", b);
    const auto& bus = c.modbus_bus(b);
    if (!isValidId(bus.name())) {
      bl.field("name").error(diags, "modbus_bus name '" + bus.name() + "' must be 1-64 of [A-Za-z0-9._-]");
    } else if (!busNames.emplace(bus.name(), b).second) {
      bl.field("name").error(diags, "duplicate modbus_bus name '" + bus.name() + "'");
    }
    for (int i = 0; i < bus.device_size(); ++i) {
      claim(bus.device(i).id(), bl.child("device", i).field("id"), "device");
    }
  }
  if (c.has_lora()) {
    const Location ll = root.child("lora");
    for (int i = 0; i < c.lora().device_size(); ++i) {
      claim(c.lora().device(i).id(), ll.child("device", i).field("id"), "lora device");
    }
  }

  if (auto refusal = c.profile_dir().empty() ? std::string() : policy.check(c.profile_dir()); !refusal.empty()) {
    root.field("profile_dir").error(diags, "profile_dir: " + refusal);
    out.profiles.load("", diags);  // the shipped profiles only
  } else {
    out.profiles.load(c.profile_dir(), diags, policy);
  }
  return diags.size() == before;
}

bool loadConfigFile(const std::string& path, LoadedConfig& out, Diagnostics& diags) {
  std::string text;
  if (!readFile(path, text, diags, kMaxConfigBytes)) return false;
  return loadConfigText(path, text, out, diags);
}

std::string canonicalBytes(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

}  // namespace citygate::config
