#include "app/validate.hpp"

#include <google/protobuf/text_format.h>

#include <algorithm>

namespace citygate::app {

std::unique_ptr<ValidatedConfig> validateText(const std::string& path, const std::string& text,
                                              config::Diagnostics& diags, const config::ReadPolicy& policy,
                                              const sources::SourceRegistry& registry) {
  auto v = std::make_unique<ValidatedConfig>();
  const std::size_t before = diags.size();
  config::loadConfigText(path, text, v->loaded, diags, policy);
  if (!v->loaded.syntaxOk) return nullptr;
  // Keep checking after gateway-wide errors so the technician sees every problem at once.
  v->sources = registry.validate(v->loaded, diags);
  if (diags.size() != before) return nullptr;
  return v;
}

std::unique_ptr<ValidatedConfig> validateFile(const std::string& path, config::Diagnostics& diags,
                                              const sources::SourceRegistry& registry) {
  std::string text;
  if (!config::readFile(path, text, diags, config::kMaxConfigBytes)) return nullptr;
  return validateText(path, text, diags, config::ReadPolicy::any(), registry);
}

config::ReadPolicy applyReadPolicy(const ValidatedConfig& running, const sources::SourceRegistry& registry) {
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
  registry.namedFiles(running.loaded, files);
  return config::ReadPolicy::within(dirs, files, description);
}

// ---- configuration changes at run time (config apply, SIGHUP) ----

namespace {

namespace pb = citygate::v1;

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
      va = config::canonicalBytes(a);
      vb = config::canonicalBytes(b);
    } else if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      va = config::canonicalBytes(ra->GetMessage(a, f));
      vb = config::canonicalBytes(rb->GetMessage(b, f));
    } else {
      google::protobuf::TextFormat::PrintFieldValueToString(a, f, -1, &va);
      google::protobuf::TextFormat::PrintFieldValueToString(b, f, -1, &vb);
    }
    if (va != vb) refused.push_back(prefix + f->name() + " changed: needs a restart (systemctl restart citygated)");
  }
}

}  // namespace

ConfigPlan planChange(const ValidatedConfig& running, const ValidatedConfig& next,
                      const sources::SourceRegistry& registry) {
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
  if (config::canonicalBytes(a.location()) != config::canonicalBytes(b.location())) plan.live.push_back("location");
  if (a.profile_dir() != b.profile_dir()) plan.live.push_back("profile_dir");
  if (config::canonicalBytes(a.commands()) != config::canonicalBytes(b.commands())) plan.live.push_back("commands");

  registry.plan(running.sources, next.sources, plan);
  return plan;
}

namespace {

// Where a source's port is written: a Modbus bus's rtu.device, the LoRa packet forwarder's port.
config::Location portLocation(const config::LoadedConfig& cfg, const sources::SourceSpec& spec) {
  const config::Location& root = cfg.parsed.root;
  if (spec.kind == "modbus") {
    for (int i = 0; i < cfg.config.modbus_bus_size(); ++i) {
      const auto& bus = cfg.config.modbus_bus(i);
      if (bus.name() != spec.name) continue;
      const auto at = root.child("modbus_bus", i);
      return bus.has_rtu() ? at.child("rtu").field("device") : at;
    }
  } else if (spec.kind == "lora" && cfg.config.has_lora()) {
    return root.child("lora").child("packet_forwarder").field("port");
  }
  return config::Location(cfg.path, nullptr, nullptr, 0, 0);
}

}  // namespace

bool checkPorts(const ValidatedConfig* running, const ValidatedConfig& next, const config::ConfigPlan* plan,
                const config::ReadPolicy& policy, config::Diagnostics& diags, const sources::SourceRegistry& registry) {
  bool ok = true;
  for (const auto& s : next.sources) {
    if (plan != nullptr && !plan->touches(s->name)) continue;
    const sources::SourceKind* kind = registry.find(s->kind);
    if (kind == nullptr) continue;
    const sources::SourceSpec* before = s.get();  // offline: as if it ran already
    if (plan != nullptr) {
      before = running != nullptr ? sources::findSpec(running->sources, s->name) : nullptr;
      if (before != nullptr && before->kind != s->kind) before = nullptr;
    }
    if (auto why = kind->checkPorts(*s, before, policy); !why.empty()) {
      portLocation(next.loaded, *s).error(diags, why);
      ok = false;
    }
  }
  return ok;
}

}  // namespace citygate::app
