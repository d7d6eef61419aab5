// ProfileLibrary: device profiles by name. The library shipped in gateway/profiles/ is compiled
// into the binary (so it is always there); profile_dir adds or overrides profiles from *.textproto
// files. Parsing only: Modbus-specific checks happen when a device uses a profile.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "citygate/v1/config.pb.h"
#include "config/diagnostics.hpp"
#include "config/files.hpp"

namespace citygate::config {

struct ProfileEntry {
  citygate::v1::DeviceProfile profile;
  std::string file;  // where it came from ("<builtin>/vaisala-aqt530.textproto" for shipped ones)
  ParsedText parsed;
  bool builtin = false;
};

class ProfileLibrary {
 public:
  // Loads the shipped profiles, then every *.textproto in extraDir (when not empty), each through
  // readSmallFile() (regular files of at most kMaxProfileBytes: a FIFO or a link to /dev/zero is
  // reported, not waited on or read) and only when `policy` allows it.
  bool load(const std::string& extraDir, Diagnostics& diags, const ReadPolicy& policy = ReadPolicy::any());
  // Adds one profile from text (tests).
  bool add(const std::string& file, const std::string& text, bool builtin, Diagnostics& diags);

  const ProfileEntry* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::shared_ptr<ProfileEntry>> byName_;
};

struct EmbeddedProfile {
  const char* file;
  const char* text;
};
// Generated at build time from gateway/profiles/*.textproto.
extern const EmbeddedProfile kEmbeddedProfiles[];
extern const std::size_t kEmbeddedProfileCount;

}  // namespace citygate::config
