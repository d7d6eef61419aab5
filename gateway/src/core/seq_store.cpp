#include "core/seq_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace citygate::core {

Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{"cannot create " + tmp + ": " + std::strerror(errno)};
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Error{"cannot write " + tmp + ": " + why};
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return Error{"cannot sync " + tmp + ": " + std::strerror(errno)};
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error{"cannot rename " + tmp + ": " + std::strerror(errno)};
  }
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Ok{};
}

SeqStore::SeqStore(std::string path, bool reserveBlocks) : path_(std::move(path)), reserveBlocks_(reserveBlocks) {}

Status SeqStore::open(std::uint64_t floor) {
  std::uint64_t stored = 0;
  if (!path_.empty()) {
    std::ifstream in(path_);
    if (in) {
      std::string line;
      std::getline(in, line);
      try {
        std::size_t used = 0;
        stored = std::stoull(line, &used);
        if (used != line.size()) return Error{path_ + ": not a sequence number: '" + line + "'"};
      } catch (const std::exception&) {
        return Error{path_ + ": not a sequence number: '" + line + "'"};
      }
    } else if (errno != ENOENT) {
      return Error{"cannot read " + path_ + ": " + std::strerror(errno)};
    }
  }
  next_ = std::max({stored, floor, std::uint64_t{1}});
  reservedUpTo_ = next_;
  if (reserveBlocks_ && !path_.empty()) {
    reservedUpTo_ = next_ + kBlock;
    return write(reservedUpTo_);
  }
  return Ok{};
}

std::uint64_t SeqStore::next() {
  const std::uint64_t v = next_++;
  if (reserveBlocks_ && !path_.empty() && next_ >= reservedUpTo_) {
    reservedUpTo_ = next_ + kBlock;
    (void)write(reservedUpTo_);  // a failed write is retried at the next block
  }
  return v;
}

Status SeqStore::close() {
  if (path_.empty()) return Ok{};
  return write(next_);
}

Status SeqStore::write(std::uint64_t value) {
  return writeFileAtomic(path_, std::to_string(value) + "\n");
}

}  // namespace citygate::core
