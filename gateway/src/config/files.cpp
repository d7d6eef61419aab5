#include "config/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace citygate::config {

const char* fileTypeName(mode_t mode) {
  if (S_ISREG(mode)) return "regular file";
  if (S_ISFIFO(mode)) return "FIFO";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISLNK(mode)) return "symbolic link";
  return "special file";
}

std::string sizeText(std::size_t bytes) {
  if (bytes >= (1U << 20) && bytes % (1U << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1U << 10) && bytes % (1U << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

namespace {

SmallFile failed(FileFault fault, std::string error) {
  SmallFile f;
  f.fault = fault;
  f.error = std::move(error);
  return f;
}

SmallFile failedErrno(const char* what, int err) {
  const bool missing = err == ENOENT || err == ENOTDIR;
  SmallFile f = failed(missing ? FileFault::Missing : FileFault::Unreadable, std::string(what) + std::strerror(err));
  f.errorNumber = err;
  return f;
}

std::string tooLarge(std::uint64_t size, std::size_t maxBytes) {
  return std::to_string(size) + " bytes: larger than the " + sizeText(maxBytes) + " limit";
}

std::string notRegular(mode_t mode) {
  return std::string("not a regular file (") + fileTypeName(mode) + ")";
}

}  // namespace

SmallFile readSmallFile(const std::string& path, std::size_t maxBytes, const StatCheck& check) {
  // stat first: a FIFO or a device is refused without opening it (opening can have effects).
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return failedErrno("cannot open: ", errno);
  if (!S_ISREG(st.st_mode)) return failed(FileFault::NotRegular, notRegular(st.st_mode));
  if (static_cast<std::uint64_t>(st.st_size) > maxBytes) {
    return failed(FileFault::TooLarge, tooLarge(static_cast<std::uint64_t>(st.st_size), maxBytes));
  }
  // O_NONBLOCK: should the path have become a FIFO since the stat, the open does not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return failedErrno("cannot open: ", errno);
  SmallFile f;
  auto done = [&](SmallFile result) {
    ::close(fd);
    return result;
  };
  if (::fstat(fd, &f.st) != 0) return done(failedErrno("cannot stat: ", errno));
  if (!S_ISREG(f.st.st_mode)) return done(failed(FileFault::NotRegular, notRegular(f.st.st_mode)));
  if (static_cast<std::uint64_t>(f.st.st_size) > maxBytes) {
    return done(failed(FileFault::TooLarge, tooLarge(static_cast<std::uint64_t>(f.st.st_size), maxBytes)));
  }
  if (check) {
    if (std::string why = check(f.st); !why.empty()) {
      SmallFile refused = failed(FileFault::Refused, std::move(why));
      refused.st = f.st;
      return done(std::move(refused));
    }
  }
  // Read at most maxBytes + 1: one byte more than allowed says the file grew.
  f.bytes.resize(static_cast<std::size_t>(f.st.st_size) + 1);
  std::size_t have = 0;
  for (;;) {
    if (have == f.bytes.size()) {
      if (have > maxBytes) break;
      f.bytes.resize(std::min(maxBytes + 1, have * 2 + 4096));
    }
    const ssize_t n = ::read(fd, f.bytes.data() + have, f.bytes.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      return done(failedErrno("cannot read: ", errno));
    }
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  if (have > maxBytes) {
    return done(failed(FileFault::TooLarge, "grew past the " + sizeText(maxBytes) + " limit while it was read"));
  }
  f.bytes.resize(have);
  return done(std::move(f));
}

std::string absolutePath(const std::string& path) {
  std::string joined = path;
  if (path.empty() || path[0] != '/') {
    char cwd[PATH_MAX];
    joined = (::getcwd(cwd, sizeof cwd) != nullptr ? std::string(cwd) : std::string("/")) + "/" + path;
  }
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= joined.size()) {
    const std::size_t slash = std::min(joined.find('/', i), joined.size());
    const std::string part = joined.substr(i, slash - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = slash + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

namespace {

bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string realPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return {};
  return buf;
}

}  // namespace

ReadPolicy ReadPolicy::within(const std::vector<std::string>& dirs, const std::vector<std::string>& files,
                              std::string description) {
  ReadPolicy p;
  p.restricted_ = true;
  p.description_ = std::move(description);
  for (const auto& d : dirs) {
    if (d.empty()) continue;
    p.dirs_.push_back(absolutePath(d));
    // The roots are the running configuration's own: asking the file system about them is fine.
    const std::string real = realPath(p.dirs_.back());
    p.realDirs_.push_back(real.empty() ? p.dirs_.back() : real);
  }
  for (const auto& f : files) {
    if (!f.empty()) p.files_.push_back(absolutePath(f));
  }
  return p;
}

bool ReadPolicy::inside(const std::string& absolute, const std::vector<std::string>& dirs) const {
  for (const auto& d : dirs) {
    if (under(absolute, d)) return true;
  }
  return false;
}

std::string ReadPolicy::check(const std::string& path) const {
  if (!restricted_) return {};
  const std::string abs = absolutePath(path);
  for (const auto& f : files_) {
    if (abs == f) return {};  // named by the running configuration: vetted when it was loaded
  }
  if (!inside(abs, dirs_)) return "not allowed: " + path + " is outside " + description_;
  // Inside by its text; a symbolic link in there may still lead elsewhere.
  const std::string real = realPath(abs);
  if (!real.empty() && !inside(real, realDirs_)) return "not allowed: " + path + " leads outside " + description_;
  return {};
}

std::string kernelBootId() {
  const SmallFile f = readSmallFile("/proc/sys/kernel/random/boot_id", 128);
  return f.ok() ? f.bytes.substr(0, f.bytes.find('\n')) : std::string();
}

std::string preparePrivateDir(const std::string& dir) {
  std::string cur;
  for (std::size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      cur = dir.substr(0, i);
      if (::mkdir(cur.c_str(), 0750) != 0 && errno != EEXIST)
        return "cannot create " + cur + ": " + std::strerror(errno);
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "cannot stat " + dir + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return dir + " is not a directory of this user that only it can write";
  }
  return {};
}

}  // namespace citygate::config
