// The whole configuration check, shared by `citygated --check-config`, start-up, `config apply`
// and `citygatectl config validate`: the gateway-wide checks, then every source's validator.
// No sockets, no spool files: only the config, its profiles and the files it names are read.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "inputs/lora/spec.hpp"
#include "inputs/modbus/spec.hpp"

namespace citygate::app {

struct ValidatedConfig {
  config::LoadedConfig loaded;
  std::vector<modbus::BusSpec> buses;
  std::optional<lora::LoraSpec> lora;  // when the config has a lora block
};

// nullptr when the configuration has errors (all of them are in `diags`).
std::unique_ptr<ValidatedConfig> validateFile(const std::string& path, config::Diagnostics& diags);
std::unique_ptr<ValidatedConfig> validateText(const std::string& path, const std::string& text,
                                              config::Diagnostics& diags);

}  // namespace citygate::app
