#include "config/config_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "config/files.hpp"

namespace citygate::config {

namespace {

std::string dirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string baseOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A new file beside `target` holding `data`, mode 0600, owned as `owner` where allowed, synced.
// Its name, or an error (nothing left behind).
Result<std::string> writeTemp(const std::string& target, std::string_view data, const struct stat* owner) {
  const std::string dir = dirOf(target);
  std::string name = dir + "/." + baseOf(target) + ".XXXXXX";
  std::vector<char> buf(name.begin(), name.end());
  buf.push_back('\0');
  const int fd = ::mkostemp(buf.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return Error{"cannot create a file in " + dir + ": " + std::strerror(errno)};
  name.assign(buf.data());
  auto failed = [&](const char* what) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(name.c_str());
    return Error{std::string("cannot ") + what + " " + name + ": " + why};
  };
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed("write");
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  // The original's owner and group (root may set any; another user only its own groups); the
  // mode stays 0600 either way: the file may hold LoRa session keys.
  if (owner != nullptr && (owner->st_uid != ::geteuid() || owner->st_gid != ::getegid())) {
    if (::fchown(fd, owner->st_uid, owner->st_gid) != 0) (void)::fchown(fd, static_cast<uid_t>(-1), owner->st_gid);
  }
  if (::fchmod(fd, 0600) != 0) return failed("chmod");
  if (::fsync(fd) != 0) return failed("sync");
  if (::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(name.c_str());
    return Error{"cannot write " + name + ": " + why};
  }
  return name;
}

}  // namespace

FileCheck compareConfigFile(const std::string& path, std::string_view runningText) {
  SmallFile f = readSmallFile(path, kMaxConfigBytes);
  if (f.ok()) return FileCheck{f.bytes == runningText ? FileState::Same : FileState::Differs, {}};
  return FileCheck{f.fault == FileFault::Missing ? FileState::Missing : FileState::Unreadable, f.error};
}

std::string backupPath(const std::string& path) {
  return path + ".bak";
}

Result<PreparedSave> prepareSave(const std::string& path, std::string_view text) {
  PreparedSave save;
  save.target = path;
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char real[PATH_MAX];
    if (::realpath(path.c_str(), real) == nullptr) {
      return Error{"cannot follow the link " + path + ": " + std::strerror(errno)};
    }
    save.target = real;
  }
  save.backup = backupPath(save.target);
  SmallFile old = readSmallFile(save.target, kMaxConfigBytes);
  const bool exists = old.ok();
  if (!exists && old.fault != FileFault::Missing) return Error{"cannot read " + save.target + ": " + old.error};
  if (exists && old.bytes == text) return save;  // already there: nothing to write, no backup
  auto tmp = writeTemp(save.target, text, exists ? &old.st : nullptr);
  if (!tmp) return Error{tmp.error()};
  save.tmp = std::move(tmp.value());
  if (exists) {
    auto bak = writeTemp(save.backup, old.bytes, &old.st);
    if (!bak) {
      ::unlink(save.tmp.c_str());
      return Error{bak.error()};
    }
    save.backupTmp = std::move(bak.value());
  }
  return save;
}

Status commitSave(const PreparedSave& save) {
  if (save.unchanged()) return Ok{};
  if (!save.backupTmp.empty() && ::rename(save.backupTmp.c_str(), save.backup.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    discardSave(save);
    return Error{"cannot write " + save.backup + ": " + why + "; " + save.target + " not changed"};
  }
  if (::rename(save.tmp.c_str(), save.target.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    discardSave(save);
    return Error{"cannot replace " + save.target + ": " + why + "; it still holds the previous configuration"};
  }
  // The renames made durable. The file is in place either way (as in core::writeFileAtomic).
  const int dfd = ::open(dirOf(save.target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Ok{};
}

void discardSave(const PreparedSave& save) {
  if (!save.tmp.empty()) ::unlink(save.tmp.c_str());
  if (!save.backupTmp.empty()) ::unlink(save.backupTmp.c_str());
}

Status saveConfigFile(const std::string& path, std::string_view text) {
  auto save = prepareSave(path, text);
  if (!save) return Error{save.error()};
  return commitSave(save.value());
}

}  // namespace citygate::config
