// Loading the gateway's configuration: text format -> GatewayConfig with defaults applied, the
// profile library, and the gateway-wide semantic checks (ids, MQTT, spool, files and their modes).
// Source-specific checks (Modbus buses and profiles, LoRa devices) run in their own validators;
// app/validate.cpp runs them all. Nothing here opens a socket or writes a file.
#pragma once

#include <optional>
#include <string>

#include "citygate/v1/config.pb.h"
#include "config/diagnostics.hpp"
#include "config/files.hpp"
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
  ReadPolicy policy;      // the files this configuration may make the daemon read
};

// Defaults, written once here so every reader sees the same values.
inline constexpr const char* kDefaultTopicPrefix = "citygate/v1";
inline constexpr const char* kDefaultControlSocket = "/run/citygate/control.sock";

// `policy`: which files the text may make the loader read (profile_dir, key and password files);
// kept in `out.policy` for the source-specific checks.
bool loadConfigText(const std::string& path, const std::string& text, LoadedConfig& out, Diagnostics& diags,
                    const ReadPolicy& policy = ReadPolicy::any());
bool loadConfigFile(const std::string& path, LoadedConfig& out, Diagnostics& diags);

void applyDefaults(pb::GatewayConfig& c);
// runtime_dir's default: $RUNTIME_DIRECTORY (systemd), else /dev/shm/citygate-<FNV-1a of stateDir>.
std::string defaultRuntimeDir(const std::string& stateDir);

// A file holding a secret (a TLS private key, an MQTT password, a LoRa session key) must be a
// regular file owned by the daemon's user or root, with mode 0600 or stricter, in a directory that
// group and others cannot write (they could put another file in its place). Every problem is a
// diagnostic at `at` (FILE:LINE:COL); the secret never appears in one. A path the policy does not
// allow is refused without being looked at.
//
// checkSecretFile() does not read the file (the TLS library does); readSecretFile() reads it
// through readSmallFile() (at most kMaxSecretBytes), checking the file it opened.
void checkSecretFile(const std::string& path, const Location& at, std::string_view what, const ReadPolicy& policy,
                     Diagnostics& diags);
std::optional<std::string> readSecretFile(const std::string& path, const Location& at, std::string_view what,
                                          const ReadPolicy& policy, Diagnostics& diags);
// A public file the daemon hands to a library (a CA bundle, a client certificate): regular and
// readable.
void checkReadableFile(const std::string& path, const Location& at, std::string_view what, const ReadPolicy& policy,
                       Diagnostics& diags);

bool isValidId(std::string_view id);

// A message's bytes, serialized deterministically: equal settings give equal bytes (the plan of a
// configuration change compares sources and settings this way).
std::string canonicalBytes(const google::protobuf::Message& m);

}  // namespace citygate::config
