// Reading a file named by a configuration or a request (the config file, profiles, key and
// password files, the LoRa frame-counter state): one way, so that a FIFO, a device or a huge file
// can neither block the reader nor make it read without bound (style habit 15).
//
// readSmallFile() stats the path first (a FIFO or a device is refused without being opened), then
// opens it with O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, checks the open file again with
// fstat (the path may have changed in between), refuses anything but a regular file and anything
// larger than `maxBytes`, and reads at most maxBytes + 1 bytes: a file that grows while it is read
// is refused, not followed. Any thread; it blocks only on a regular file's own I/O.
//
// ReadPolicy says which files a configuration may make the daemon read: any for the daemon's own
// configuration file (start, --check-config, SIGHUP), only the configured directories for a
// configuration sent through the control socket (`config apply`, `config diff`). A path outside
// is refused by its text alone: nothing about it is asked of the file system.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace citygate::config {

// The limits, in one place.
inline constexpr std::size_t kMaxConfigBytes = 1U << 20;   // a gateway configuration (as a control request)
inline constexpr std::size_t kMaxProfileBytes = 1U << 20;  // one device profile in profile_dir
inline constexpr std::size_t kMaxSecretBytes = 4U << 10;   // a LoRa key file, an MQTT password file
inline constexpr std::size_t kMaxStateBytes = 4U << 20;    // the LoRa frame-counter state file

enum class FileFault : std::uint8_t {
  None,
  Missing,     // ENOENT (or a path component is not a directory)
  Unreadable,  // open or read failed otherwise (EACCES, EIO...)
  NotRegular,  // a FIFO, a device, a directory, a socket
  TooLarge,    // above the limit, or grew past it while being read
  Refused,     // the caller's check of the open file said no (mode, owner)
};

struct SmallFile {
  FileFault fault = FileFault::None;
  std::string error;    // why, without the path: "not a regular file (FIFO)"
  int errorNumber = 0;  // errno for Missing and Unreadable
  std::string bytes;
  struct stat st {};  // of the open file (valid when it could be opened)

  bool ok() const { return fault == FileFault::None; }
};

// Sees the open file's status before anything is read; a non-empty answer refuses the file.
using StatCheck = std::function<std::string(const struct stat&)>;

SmallFile readSmallFile(const std::string& path, std::size_t maxBytes, const StatCheck& check = {});

// "FIFO", "directory", "character device", "block device", "socket", "symbolic link", "regular file".
const char* fileTypeName(mode_t mode);
// "1 MiB", "4 KiB", "17 bytes".
std::string sizeText(std::size_t bytes);

// `path` made absolute against the current directory, with ".", ".." and repeated slashes
// resolved by their text (symbolic links are not followed; nothing is asked of the file system
// but the current directory).
std::string absolutePath(const std::string& path);

class ReadPolicy {
 public:
  // Any file (the daemon's own configuration).
  static ReadPolicy any() { return ReadPolicy(); }
  // Only files inside `dirs` (and their subdirectories) and the exact `files`; `description` names
  // the places for the message ("the running configuration's directory /etc/citygate ...").
  static ReadPolicy within(const std::vector<std::string>& dirs, const std::vector<std::string>& files,
                           std::string description);

  bool restricted() const { return restricted_; }
  // Empty when `path` may be read; otherwise "not allowed: PATH is outside ...". A path outside by
  // its text is refused without a system call; one inside whose real path (symbolic links
  // followed) leads outside is refused too.
  std::string check(const std::string& path) const;
  const std::string& describe() const { return description_; }

 private:
  bool inside(const std::string& absolute, const std::vector<std::string>& dirs) const;

  bool restricted_ = false;
  std::vector<std::string> dirs_;      // absolute, as written
  std::vector<std::string> realDirs_;  // the same, symbolic links resolved
  std::vector<std::string> files_;     // absolute
  std::string description_;
};

// The kernel's id of this boot (/proc/sys/kernel/random/boot_id): state kept in RAM (runtime_dir)
// under another id is not this boot's. Empty when unknown.
std::string kernelBootId();

// runtime_dir, made ready for state that must be trusted: created (mode 0750) if missing, and
// refused unless it is a directory of this user that group and others cannot write (a name planted
// in /dev/shm by another user could hold forged state). Empty when usable, else why not.
std::string preparePrivateDir(const std::string& dir);

}  // namespace citygate::config
