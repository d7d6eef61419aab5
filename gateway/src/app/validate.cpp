#include "app/validate.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <map>
#include <set>

namespace citygate::app {

std::unique_ptr<ValidatedConfig> validateText(const std::string& path, const std::string& text,
                                              config::Diagnostics& diags, const config::ReadPolicy& policy) {
  auto v = std::make_unique<ValidatedConfig>();
  const std::size_t before = diags.size();
  config::loadConfigText(path, text, v->loaded, diags, policy);
  if (!v->loaded.syntaxOk) return nullptr;
  // Keep checking after gateway-wide errors so the technician sees every problem at once.
  v->buses = modbus::compileBuses(v->loaded, diags);
  v->lora = lora::compile(v->loaded, diags);
  if (diags.size() != before) return nullptr;
  return v;
}

std::unique_ptr<ValidatedConfig> validateFile(const std::string& path, config::Diagnostics& diags) {
  std::string text;
  if (!config::readFile(path, text, diags, config::kMaxConfigBytes)) return nullptr;
  return validateText(path, text, diags);
}

config::ReadPolicy applyReadPolicy(const ValidatedConfig& running) {
  const auto& c = running.loaded.config;
  const std::string configDir = config::absolutePath(running.loaded.path + "/..");
  std::vector<std::string> dirs{configDir};
  std::string description = configDir + " (the running configuration's directory)";
  if (!c.profile_dir().empty()) {
    dirs.push_back(c.profile_dir());
    description += " and " + config::absolutePath(c.profile_dir()) + " (its profile_dir)";
  }
  std::vector<std::string> files;
  const auto& tls = c.mqtt().tls();
  for (const auto* f : {&tls.ca_file(), &tls.cert_file(), &tls.key_file(), &c.mqtt().password_file()}) {
    files.push_back(*f);
  }
  for (const auto& bus : c.modbus_bus()) {
    if (bus.has_rtu()) files.push_back(bus.rtu().device());
  }
  if (c.has_lora()) {
    for (const auto& d : c.lora().device()) {
      files.push_back(d.nwk_s_key_file());
      files.push_back(d.app_s_key_file());
    }
  }
  return config::ReadPolicy::within(dirs, files, description);
}

// ---- configuration changes at run time (config apply, SIGHUP) ----

namespace {

namespace pb = citygate::v1;

std::string serialized(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// Everything a running bus depends on: its settings and devices, the profiles they use and the
// gateway location a device without its own inherits.
std::string busFingerprint(const config::LoadedConfig& cfg, const pb::ModbusBus& bus) {
  std::string fp = serialized(bus);
  for (const auto& dev : bus.device()) {
    fp += '\x1f';
    if (const auto* prof = cfg.profiles.find(dev.profile())) fp += serialized(prof->profile);
    if (!dev.has_location() && cfg.config.has_location()) fp += serialized(cfg.config.location());
  }
  return fp;
}

bool sameLora(const ValidatedConfig& a, const ValidatedConfig& b) {
  const auto& ca = a.loaded.config;
  const auto& cb = b.loaded.config;
  if (serialized(ca.lora()) != serialized(cb.lora())) return false;
  if (ca.state_dir() != cb.state_dir()) return false;
  if (serialized(ca.location()) != serialized(cb.location())) return false;
  // Keys read from key files: same file names, possibly new content.
  if (a.lora->devices.size() != b.lora->devices.size()) return false;
  for (std::size_t i = 0; i < a.lora->devices.size(); ++i) {
    const auto& da = a.lora->devices[i];
    const auto& db = b.lora->devices[i];
    if (!(da.nwkSKey == db.nwkSKey) || !(da.appSKey == db.appSKey)) return false;
  }
  return true;
}

void refuseIfChanged(const google::protobuf::Message& a, const google::protobuf::Message& b, const std::string& prefix,
                     std::vector<std::string>& refused) {
  const auto* d = a.GetDescriptor();
  const auto* ra = a.GetReflection();
  const auto* rb = b.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    std::string va;
    std::string vb;
    if (f->is_repeated()) {
      // None of the refused messages has repeated fields today; compare them whole if one appears.
      va = serialized(a);
      vb = serialized(b);
    } else if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      va = serialized(ra->GetMessage(a, f));
      vb = serialized(rb->GetMessage(b, f));
    } else {
      google::protobuf::TextFormat::PrintFieldValueToString(a, f, -1, &va);
      google::protobuf::TextFormat::PrintFieldValueToString(b, f, -1, &vb);
    }
    if (va != vb) refused.push_back(prefix + f->name() + " changed: needs a restart (systemctl restart citygated)");
  }
}

}  // namespace

ConfigPlan planChange(const ValidatedConfig& running, const ValidatedConfig& next) {
  ConfigPlan plan;
  const pb::GatewayConfig& a = running.loaded.config;
  const pb::GatewayConfig& b = next.loaded.config;

  if (a.gateway_id() != b.gateway_id()) {
    plan.refused.push_back(
        "gateway_id changed: it names every MQTT topic; needs a restart (systemctl restart citygated)");
  }
  refuseIfChanged(a.mqtt(), b.mqtt(), "mqtt.", plan.refused);
  refuseIfChanged(a.spool(), b.spool(), "spool.", plan.refused);
  if (a.state_dir() != b.state_dir())
    plan.refused.push_back("state_dir changed: needs a restart (systemctl restart citygated)");
  if (a.control().socket() != b.control().socket()) {
    plan.refused.push_back("control.socket changed: needs a restart (systemctl restart citygated)");
  }
  if (a.log_level() != b.log_level()) plan.live.push_back("log_level");
  if (a.health_interval_s() != b.health_interval_s()) plan.live.push_back("health_interval_s");
  if (serialized(a.location()) != serialized(b.location())) plan.live.push_back("location");
  if (a.profile_dir() != b.profile_dir()) plan.live.push_back("profile_dir");

  std::map<std::string, const pb::ModbusBus*> before;
  for (const auto& bus : a.modbus_bus()) before.emplace(bus.name(), &bus);
  std::set<std::string> seen;
  for (const auto& bus : b.modbus_bus()) {
    seen.insert(bus.name());
    auto it = before.find(bus.name());
    if (it == before.end()) {
      plan.added.push_back(bus.name());
    } else if (busFingerprint(running.loaded, *it->second) != busFingerprint(next.loaded, bus)) {
      plan.changed.push_back(bus.name());
    } else {
      plan.unchanged.push_back(bus.name());
    }
  }
  for (const auto& bus : a.modbus_bus()) {
    if (!seen.contains(bus.name())) plan.removed.push_back(bus.name());
  }

  if (running.lora && !next.lora) {
    plan.removed.push_back(kLoraSourceName);
  } else if (!running.lora && next.lora) {
    plan.added.push_back(kLoraSourceName);
  } else if (running.lora && next.lora) {
    (sameLora(running, next) ? plan.unchanged : plan.changed).push_back(kLoraSourceName);
  }
  return plan;
}

}  // namespace citygate::app
