#include "config/profiles.hpp"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace citygate::config {

bool ProfileLibrary::add(const std::string& file, const std::string& text, bool builtin, Diagnostics& diags) {
  auto entry = std::make_shared<ProfileEntry>();
  entry->file = file;
  entry->builtin = builtin;
  if (!parseText(file, text, entry->profile, diags, entry->parsed)) return false;
  const std::string& name = entry->profile.name();
  if (name.empty()) {
    diags.add(file, 0, 0, "profile has no name");
    return false;
  }
  auto it = byName_.find(name);
  if (it != byName_.end() && !it->second->builtin) {
    entry->parsed.root.field("name").error(diags, "profile '" + name + "' is also defined in " + it->second->file);
    return false;
  }
  byName_[name] = std::move(entry);  // a profile_dir profile may override a shipped one
  return true;
}

bool ProfileLibrary::load(const std::string& extraDir, Diagnostics& diags, const ReadPolicy& policy) {
  bool ok = true;
  for (std::size_t i = 0; i < kEmbeddedProfileCount; ++i) {
    ok = add(kEmbeddedProfiles[i].file, kEmbeddedProfiles[i].text, true, diags) && ok;
  }
  if (extraDir.empty()) return ok;
  DIR* dir = ::opendir(extraDir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return ok;  // an empty profile_dir is fine: nothing extra to load
    diags.add(extraDir, 0, 0, std::string("cannot read profile_dir: ") + std::strerror(errno));
    return false;
  }
  std::vector<std::string> files;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.size() > 10 && name.ends_with(".textproto")) files.push_back(extraDir + "/" + name);
  }
  ::closedir(dir);
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (auto refusal = policy.check(f); !refusal.empty()) {
      diags.add(f, 0, 0, refusal);
      ok = false;
      continue;
    }
    std::string text;
    if (!readFile(f, text, diags, kMaxProfileBytes)) {
      ok = false;
      continue;
    }
    ok = add(f, text, false, diags) && ok;
  }
  return ok;
}

const ProfileEntry* ProfileLibrary::find(const std::string& name) const {
  auto it = byName_.find(name);
  return it == byName_.end() ? nullptr : it->second.get();
}

std::vector<std::string> ProfileLibrary::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : byName_) out.push_back(name);
  return out;
}

}  // namespace citygate::config
