// Loading the gateway's configuration: text format -> GatewayConfig with defaults applied, the
// profile library, and the gateway-wide semantic checks (ids, MQTT, spool, files and their modes).
// Source-specific checks (Modbus buses and profiles, LoRa devices) run in their own validators;
// app/validate.cpp runs them all. Nothing here opens a socket or writes a file.
#pragma once

#include <string>

#include "citygate/v1/config.pb.h"
#include "config/diagnostics.hpp"
#include "config/profiles.hpp"

namespace citygate::config {

namespace pb = citygate::v1;

struct LoadedConfig {
  std::string path;
  std::string text;
  pb::GatewayConfig config;  // defaults applied
  ParsedText parsed;
  ProfileLibrary profiles;
  bool syntaxOk = false;  // parsed; semantic errors may remain
};

// Defaults, written once here so every reader sees the same values.
inline constexpr const char* kDefaultTopicPrefix = "citygate/v1";
inline constexpr const char* kDefaultControlSocket = "/run/citygate/control.sock";

bool loadConfigText(const std::string& path, const std::string& text, LoadedConfig& out, Diagnostics& diags);
bool loadConfigFile(const std::string& path, LoadedConfig& out, Diagnostics& diags);

void applyDefaults(pb::GatewayConfig& c);

// A file holding a secret must exist, be a regular readable file and not be readable by group
// or others (0600 or stricter).
void checkSecretFile(const std::string& path, const Location& at, std::string_view what, Diagnostics& diags);
void checkReadableFile(const std::string& path, const Location& at, std::string_view what, Diagnostics& diags);

bool isValidId(std::string_view id);

}  // namespace citygate::config
