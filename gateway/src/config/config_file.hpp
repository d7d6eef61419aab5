// The daemon's own configuration file (its --config: what SIGHUP and a restart load): whether it
// still holds the running text, and saving an applied text to it so that a `config apply --save`
// survives a SIGHUP, a restart and a power cut.
//
// A save is two steps, so that the slow part (writing and syncing) runs on a helper thread before
// the running configuration changes, and the part after the change is two renames:
//   prepareSave()  the new text to a temporary file beside the config file (mode 0600, the old
//                  file's owner and group where the daemon may set them), fsync; the old file's
//                  bytes to a second temporary file for <config>.bak (0600), fsync.
//   commitSave()   rename the backup into place, then the new file over the config file, fsync
//                  the directory. A power cut at any point leaves the old or the new file whole.
//   discardSave()  removes the temporary files (the change did not happen).
// A config file that is a symbolic link is followed: its target is replaced, the link stays.
// Any thread; every call blocks on the file system only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace citygate::config {

enum class FileState : std::uint8_t {
  Same,        // the file holds `runningText`, byte for byte
  Differs,     // edited since it was loaded, or the running text was applied without --save
  Missing,     // the file is gone
  Unreadable,  // not a regular file, too large, no permission...
};

struct FileCheck {
  FileState state = FileState::Unreadable;
  std::string error;  // why (Missing, Unreadable); no file content
};

// Reads `path` through readSmallFile (regular files only, without blocking, at most
// kMaxConfigBytes) and compares it with the running text.
FileCheck compareConfigFile(const std::string& path, std::string_view runningText);

// `path` + ".bak".
std::string backupPath(const std::string& path);

struct PreparedSave {
  std::string target;     // the file replaced (the config file, or the file its link points to)
  std::string tmp;        // the new text, synced; empty when the file already holds it
  std::string backup;     // target + ".bak"
  std::string backupTmp;  // the previous file's bytes, synced; empty when there was no file
  bool unchanged() const { return tmp.empty(); }
};

// Writes and syncs the temporary files; nothing visible changes. An error names the file and the
// reason ("cannot create a file in /etc/citygate: Read-only file system"); nothing is left behind.
Result<PreparedSave> prepareSave(const std::string& path, std::string_view text);
// Puts them in place. On an error the config file is the old one (the backup may be new).
Status commitSave(const PreparedSave& save);
void discardSave(const PreparedSave& save);

// prepareSave + commitSave.
Status saveConfigFile(const std::string& path, std::string_view text);

}  // namespace citygate::config
