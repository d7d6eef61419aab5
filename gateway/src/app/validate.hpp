// The whole configuration check, shared by `citygated --check-config`, start-up, `config apply`
// and `citygatectl config validate`: the gateway-wide checks, then every source's validator.
// No sockets, no spool files: only the config, its profiles and the files it names are read.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "config/plan.hpp"
#include "sources/kind.hpp"

namespace citygate::app {

struct ValidatedConfig {
  config::LoadedConfig loaded;
  sources::SpecList sources;  // every source, as its kind compiled it (registration order)
};

// The kinds of source citygated and citygatectl know (app/sources.cpp: one line per kind).
const sources::SourceRegistry& sourceRegistry();

// nullptr when the configuration has errors (all of them are in `diags`). The file is read through
// config::readSmallFile (a regular file of at most kMaxConfigBytes). `policy`: which files the
// configuration may make the check read (any, for the daemon's own file; applyReadPolicy() for a
// text sent through the control socket).
// `registry`: the kinds of source to validate (sourceRegistry(), or a test's).
std::unique_ptr<ValidatedConfig> validateFile(const std::string& path, config::Diagnostics& diags,
                                              const sources::SourceRegistry& registry = sourceRegistry());
std::unique_ptr<ValidatedConfig> validateText(const std::string& path, const std::string& text,
                                              config::Diagnostics& diags,
                                              const config::ReadPolicy& policy = config::ReadPolicy::any(),
                                              const sources::SourceRegistry& registry = sourceRegistry());

// What a configuration sent through the control socket (`config apply`, `config diff`) may make
// the daemon read or open: files inside the running configuration's directory and its
// profile_dir, and the files the running configuration names (its key, password, CA and
// certificate files, its serial ports). Anything else is refused by its path alone.
config::ReadPolicy applyReadPolicy(const ValidatedConfig& running,
                                   const sources::SourceRegistry& registry = sourceRegistry());

// The ports `next`'s sources open (a serial port; a LoRa UDP port), checked as before a change
// (SourceKind::checkPorts): with a `plan`, the sources it adds or changes, against `running`
// (`config diff`, `config apply`, SIGHUP); without one, every source as if it ran already
// (offline `config validate`: a UDP port a running daemon may hold is not checked, a serial
// port must open). One FILE:LINE:COL diagnostic per source that fails, at its port's setting,
// with the same message in both cases. True when all open.
bool checkPorts(const ValidatedConfig* running, const ValidatedConfig& next, const config::ConfigPlan* plan,
                const config::ReadPolicy& policy, config::Diagnostics& diags,
                const sources::SourceRegistry& registry = sourceRegistry());

// ---- configuration changes at run time (config apply, SIGHUP) ----
// What replacing `running` by `next` takes, per source (by name: a Modbus bus's name, "lora"): its
// kind decides whether it is unchanged (SourceKind::unchanged: settings, devices, the profiles
// they use, the location they inherit, session keys from key files). Settings the running daemon
// cannot change without a restart (gateway_id, mqtt, spool, state_dir, control.socket) go to
// `refused`. Pure: no I/O.
using config::ConfigPlan;  // config/plan.hpp (the control socket reports it too)

ConfigPlan planChange(const ValidatedConfig& running, const ValidatedConfig& next,
                      const sources::SourceRegistry& registry = sourceRegistry());

}  // namespace citygate::app
