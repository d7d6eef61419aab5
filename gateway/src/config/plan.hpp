// ConfigPlan: what replacing the running configuration by another takes, per source (a Modbus
// bus by name, the LoRa source as "lora"). app::planChange() computes it (it needs the sources'
// validated specs); the control socket reports it (`config diff`, `config apply`). Pure data.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace citygate::config {

struct ConfigPlan {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<std::string> changed;
  std::vector<std::string> unchanged;
  std::vector<std::string> live;     // log_level, health_interval_s, location, profile_dir, commands
  std::vector<std::string> refused;  // "mqtt.uri: needs a restart" ...

  // Added or changed.
  bool touches(const std::string& source) const {
    return std::find(added.begin(), added.end(), source) != added.end() ||
           std::find(changed.begin(), changed.end(), source) != changed.end();
  }
  bool empty() const { return added.empty() && removed.empty() && changed.empty() && live.empty(); }
};

}  // namespace citygate::config
