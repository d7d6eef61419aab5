#include "core/seq_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string_view>

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

namespace {

// The file's bytes (at most SeqStore::kMaxFileBytes + 1): a regular file only, opened without
// blocking. nullopt with `why` when it cannot be read; "" for ENOENT with `missing` set.
std::optional<std::string> readSmallFile(const std::string& path, bool& missing, std::string& why) {
  missing = false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) {
      missing = true;
      return std::string();
    }
    why = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    why = S_ISREG(st.st_mode) ? std::strerror(errno) : "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  std::string out(SeqStore::kMaxFileBytes + 1, '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

// "123" -> 123; anything else (empty, signs, spaces, garbage, more than fits) -> nullopt.
std::optional<std::uint64_t> parseNumber(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (~0ULL - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// The file: "N\n" (exact: written by a clean stop) or "R from F\n" (a reservation: every seq
// handed out is below R, and those handed out since it was made are at least F).
struct Stored {
  std::uint64_t value = 0;
  std::optional<std::uint64_t> from;
};

std::optional<Stored> parseSeq(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  Stored out;
  const auto sep = text.find(" from ");
  const auto value = parseNumber(text.substr(0, sep));
  if (!value) return std::nullopt;
  out.value = *value;
  if (sep != std::string_view::npos) {
    out.from = parseNumber(text.substr(sep + 6));
    if (!out.from || *out.from > out.value) return std::nullopt;
  }
  return out;
}

std::string reservationText(std::uint64_t value, std::uint64_t from) {
  return std::to_string(value) + " from " + std::to_string(from) + "\n";
}

// What a damaged file held, fit for a log line: printable ASCII kept, the rest as \xNN, cut.
std::string describe(std::string_view bytes) {
  if (bytes.empty()) return "empty";
  std::string out = "not a sequence number: '";
  std::size_t shown = 0;
  for (const char c : bytes) {
    if (++shown > 24) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F && c != '\'') {
      out.push_back(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out + "' (" + std::to_string(bytes.size()) + " byte(s))";
}

}  // namespace

SeqStore::SeqStore(std::string path, bool reserveBlocks) : path_(std::move(path)), reserveBlocks_(reserveBlocks) {}

SeqStore::~SeqStore() {
  *alive_ = false;
}

Status SeqStore::writeOn(boost::asio::any_io_executor executor, FileWriter::WriteFn write) {
  if (path_.empty()) return Ok{};
  auto w = std::make_unique<FileWriter>(std::move(executor), path_, 0644, std::move(write));
  if (auto st = w->start(); !st) return st;
  writer_ = std::move(w);
  return Ok{};
}

Status SeqStore::open(std::uint64_t floor, bool floorExact) {
  std::uint64_t stored = 0;
  std::optional<std::uint64_t> reservedFrom;
  bool damaged = false;
  std::string found;
  if (!path_.empty()) {
    bool missing = false;
    std::string why;
    const auto bytes = readSmallFile(path_, missing, why);
    if (!bytes) {
      damaged = true;
      found = "unreadable: " + why;
    } else if (!missing) {
      const auto value = bytes->size() <= kMaxFileBytes ? parseSeq(*bytes) : std::nullopt;
      if (value) {
        stored = value->value;
        reservedFrom = value->from;
      } else {
        damaged = true;
        found = describe(*bytes);
      }
    }
  }
  next_ = std::max({stored, floor, std::uint64_t{1}});
  if (reservedFrom && floorExact && floor >= *reservedFrom) {
    // An unclean stop on this boot: the spool (in RAM and on disk) holds every record numbered
    // up to the crash, so its tail is exact and the rest of the reservation need not be skipped.
    next_ = std::max(floor, std::uint64_t{1});
  } else if (reservedFrom && next_ > floor) {
    skipped_ = Skip{floor, next_};
  }
  if (damaged) {
    // A write interrupted before its rename leaves the new value complete in seq.tmp.
    Damage d;
    d.found = std::move(found);
    d.floor = floor;
    bool missing = false;
    std::string why;
    if (const auto tmp = readSmallFile(path_ + ".tmp", missing, why); tmp && !missing) {
      if (const auto v = parseSeq(*tmp)) d.tmp = v->value;
    }
    next_ = std::max(next_, d.tmp);
    d.chosen = next_;
    damage_ = std::move(d);
  }
  // The numbering goes on when the seq file was read whole, or the spool says where it stood.
  openEpoch(!path_.empty() && ((!damaged && (stored != 0 || reservedFrom.has_value())) || floor > 0));
  reservedUpTo_ = next_;
  if (reserving()) {
    reserve();  // before anything is numbered: on this thread (writeOn() comes later)
  } else if (damaged && !path_.empty()) {
    (void)write(std::to_string(next_) + "\n");  // replace the damaged file: the next start finds it whole
  }
  return Ok{};
}

void SeqStore::openEpoch(bool continues) {
  if (path_.empty()) {
    epoch_ = randomHex(8);
    epochRenewed_ = "nothing is persisted";
    return;
  }
  const std::string file = path_ + ".epoch";
  bool missing = false;
  std::string why;
  const auto bytes = readSmallFile(file, missing, why);
  std::string kept;
  if (bytes && !missing) {
    std::string_view v(*bytes);
    if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    if (v.size() == 16 &&
        std::all_of(v.begin(), v.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
      kept = std::string(v);
    }
  }
  if (!kept.empty() && continues) {
    epoch_ = std::move(kept);
    epochRenewed_.clear();
    return;
  }
  epoch_ = randomHex(8);
  epochRenewed_ = !bytes         ? "the epoch file is unreadable: " + why
                  : missing      ? std::string("there was no epoch file")
                  : kept.empty() ? std::string("the epoch file was damaged")
                                 : std::string(
                                       "the seq file was missing or damaged and the spool empty: the seq "
                                       "starts again");
  if (auto st = writeFileAtomic(file, epoch_ + "\n"); !st) writeError_ = st.error();
}

std::optional<std::uint64_t> SeqStore::next() {
  if (!reserving()) return next_++;
  if (next_ >= reservedUpTo_) {
    reserve();  // numbering stopped: ask again (on this thread when there is no writer)
    if (next_ >= reservedUpTo_) return std::nullopt;
  }
  const std::uint64_t v = next_++;
  if (reservedUpTo_ - next_ < kBlock / 2) reserve();  // half of the block used: the next one
  return v;
}

bool SeqStore::ready() {
  if (!reserving() || next_ < reservedUpTo_) return true;
  reserve();
  return next_ < reservedUpTo_;
}

std::string SeqStore::numberingError() const {
  if (!reserving() || next_ < reservedUpTo_) return {};
  return "no sequence numbers reserved on disk (" +
         (writeError_.empty() ? std::string("the reservation is still being written") : writeError_) +
         "): numbering stopped so that no seq can repeat after a crash";
}

void SeqStore::reserve() {
  if (reservationInFlight_) return;
  const std::uint64_t value = next_ + kBlock;
  if (!writer_) {
    onReserved(value, write(reservationText(value, next_)));
    return;
  }
  reservationInFlight_ = true;
  writer_->write(reservationText(value, next_), [alive = alive_, this, value](const Status& st) {
    if (*alive) onReserved(value, st);
  });
}

void SeqStore::onReserved(std::uint64_t value, const Status& st) {
  reservationInFlight_ = false;
  writeError_ = st ? std::string() : st.error();
  if (st) reservedUpTo_ = std::max(reservedUpTo_, value);
}

void SeqStore::raiseTo(std::uint64_t floor) {
  if (floor <= next_) return;
  next_ = floor;
  if (reserving() && (next_ >= reservedUpTo_ || reservedUpTo_ - next_ < kBlock / 2)) reserve();
}

void SeqStore::setReserveBlocks(bool on) {
  if (on == reserveBlocks_) return;
  reserveBlocks_ = on;
  if (reserving() && (next_ >= reservedUpTo_ || reservedUpTo_ - next_ < kBlock / 2)) reserve();
}

Status SeqStore::close() {
  if (path_.empty()) return Ok{};
  const std::string exact = std::to_string(next_) + "\n";
  Status st = writer_ ? writer_->writeNow(exact) : write(exact);
  if (writer_) {
    writer_->stop();
    writer_->join();
    writer_.reset();
  }
  return st;
}

Status SeqStore::write(const std::string& text) {
  auto st = writeFileAtomic(path_, text);
  writeError_ = st ? std::string() : st.error();
  return st;
}

std::string randomHex(std::size_t bytes) {
  std::random_device rd;
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rd() & 0xFF);
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 0xF]);
  }
  return s;
}

}  // namespace citygate::core
