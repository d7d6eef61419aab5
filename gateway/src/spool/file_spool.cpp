#include "spool/file_spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/time.hpp"
#include "spool/sync_worker.hpp"

namespace citygate::spool {

namespace {

constexpr std::size_t kReadChunk = 256 * 1024;  // readBatch's read-ahead
constexpr std::size_t kStatChunk = 4096;        // locating a single record
constexpr std::size_t kMaxLedger = 4096;        // unacknowledged readBatch() calls remembered
const char kSegPrefix[] = "seg-";
const char kSegSuffix[] = ".cgs";
constexpr std::size_t kSegDigits = 20;

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

std::string segmentPath(const std::string& dir, std::uint64_t name) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%020" PRIu64 "%s", kSegPrefix, name, kSegSuffix);
  return dir + "/" + buf;
}

// "seg-<20 digits>.cgs" -> the number.
bool parseSegmentName(const char* entry, std::uint64_t& out) {
  const std::size_t n = std::strlen(entry);
  const std::size_t pre = sizeof kSegPrefix - 1;
  const std::size_t suf = sizeof kSegSuffix - 1;
  if (n != pre + kSegDigits + suf) return false;
  if (std::memcmp(entry, kSegPrefix, pre) != 0 || std::memcmp(entry + pre + kSegDigits, kSegSuffix, suf) != 0) {
    return false;
  }
  std::uint64_t v = 0;
  for (std::size_t i = pre; i < pre + kSegDigits; ++i) {
    if (entry[i] < '0' || entry[i] > '9') return false;
    const auto d = static_cast<std::uint64_t>(entry[i] - '0');
    if (v > (~0ULL - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

Status makeDirs(const std::string& path) {
  std::string cur;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || (path[i] == '/' && i > 0)) {
      cur = path.substr(0, i);
      if (::mkdir(cur.c_str(), 0750) != 0 && errno != EEXIST) return Error{errnoText("cannot create " + cur)};
    }
  }
  return Ok{};
}

bool preadAll(int fd, char* p, std::size_t n, std::uint64_t off) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
  return true;
}

bool pwriteAll(int fd, const char* p, std::size_t n, std::uint64_t off) {
  while (n > 0) {
    const ssize_t r = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      return false;
    }
    p += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
  return true;
}

}  // namespace

FileSpool::FileSpool(boost::asio::any_io_executor executor, FileSpoolOptions options,
                     std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      log_(std::move(log)),
      alive_(std::make_shared<int>(0)),
      opened_(std::chrono::steady_clock::now()) {
  std::uint64_t seg = std::clamp<std::uint64_t>(options_.segmentBytes, 4096, kMaxSegmentBytes);
  seg = std::min(seg, std::max<std::uint64_t>(4096, options_.maxBytes / 4));
  segmentBytes_ = seg;
}

Result<std::unique_ptr<FileSpool>> FileSpool::open(boost::asio::any_io_executor executor, FileSpoolOptions options,
                                                   std::shared_ptr<spdlog::logger> log, OpenFailure* failure) {
  if (options.dir.empty()) {
    if (failure) *failure = OpenFailure::Refused;
    return Error{"spool: no directory"};
  }
  if (!log) log = spdlog::default_logger();
  std::unique_ptr<FileSpool> s(new FileSpool(std::move(executor), std::move(options), std::move(log)));
  if (auto st = s->recover(); !st) {
    s->closed_ = true;
    if (failure) *failure = s->refused_ ? OpenFailure::Refused : OpenFailure::Unavailable;
    return Error{st.error()};
  }
  return s;
}

Result<std::uint64_t> FileSpool::probeNextSeq(const std::string& dir) {
  std::vector<std::uint64_t> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return std::uint64_t{0};
    return Error{errnoText("cannot list " + dir)};
  }
  while (const dirent* e = ::readdir(d)) {
    std::uint64_t n = 0;
    if (parseSegmentName(e->d_name, n)) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::uint64_t next = 0;
  // The ack file: the settled seq of its newest intact slot.
  if (const int fd = ::open((dir + "/spool.ack").c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK); fd >= 0) {
    FileHandle h(fd);
    std::string bytes(ack::kFileSize, '\0');
    const ssize_t n = ::pread(fd, bytes.data(), bytes.size(), 0);
    bytes.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    std::uint64_t generation = 0;
    for (std::size_t off : {std::size_t{0}, ack::kSlotStride}) {
      ack::Slot slot;
      if (off < bytes.size() &&
          ack::decodeSlot(std::string_view(bytes).substr(off, ack::kSlotSize), slot) == ack::SlotStatus::Ok &&
          slot.generation >= generation) {
        generation = slot.generation;
        next = std::max(next, slot.settledSeq + 1);
      }
    }
  }
  // The newest segment that holds a record decides; newer ones may add a floor.
  std::string file;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    const bool newest = it == names.rbegin();
    const std::string path = segmentPath(dir, *it);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return Error{errnoText("cannot open " + path)};
    FileHandle h(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Error{errnoText("cannot stat " + path)};
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > kMaxSegmentBytes + segment::kMaxPayload + segment::kFrameOverhead) continue;
    file.resize(size);
    if (size > 0 && !preadAll(fd, file.data(), size, 0)) return Error{errnoText("cannot read " + path)};
    const segment::ScanResult r = segment::scan(file, 0, *it);
    if (r.records > 0) {
      next = std::max(next, r.lastSeq + 1);
      break;
    }
    if (r.header == segment::HeaderStatus::Ok) {
      next = std::max(next, r.hdr.firstSeq);
    } else if (newest && r.header != segment::HeaderStatus::Short) {
      next = std::max(
          next, *it + (size > segment::kHeaderSize ? (size - segment::kHeaderSize) / segment::kFrameOverhead : 0) + 1);
    }
  }
  return next;
}

FileSpool::~FileSpool() {
  close();
  alive_.reset();
}

Status FileSpool::openAckFile(std::uint64_t& generation) {
  const std::string path = options_.dir + "/spool.ack";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) return Error{errnoText("cannot open " + path)};
  std::string bytes;
  if (fd >= 0) {
    ackFd_ = std::make_shared<FileHandle>(fd);
    bytes.assign(ack::kFileSize, '\0');
    std::size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t r = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error{errnoText("cannot read " + path)};
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    bytes.resize(got);
  }
  ack::Slot best;
  bool any = false;
  bool damaged = false;
  for (std::size_t off : {std::size_t{0}, ack::kSlotStride}) {
    if (off >= bytes.size()) continue;
    ack::Slot slot;
    const auto st = ack::decodeSlot(std::string_view(bytes).substr(off, ack::kSlotSize), slot);
    if (st == ack::SlotStatus::FutureVersion) {
      refused_ = true;
      return Error{path + ": ack file format version " + std::to_string(slot.version) +
                   " is newer than this citygated supports (" + std::to_string(ack::kVersion) +
                   "); refusing to start and leaving the spool untouched (upgrade citygated, or move the spool "
                   "directory away to start empty)"};
    }
    if (st == ack::SlotStatus::Damaged) damaged = true;
    if (st == ack::SlotStatus::Ok && (!any || slot.generation > best.generation)) {
      best = slot;
      any = true;
    }
  }
  if (damaged && !any) {
    log_->warn("{}: both slots damaged; every record on disk will be sent again (duplicates, no loss)", path);
  } else if (damaged) {
    log_->info("{}: one slot torn (an interrupted write); using the other", path);
  }
  settledSeq_ = any ? best.settledSeq : 0;
  ackedSeq_ = settledSeq_;
  generation = any ? best.generation : 0;
  return Ok{};
}

// Creates the ack file, or completes a short one, so it always has its full size on disk.
Status FileSpool::prepareAckFile() {
  const std::string path = options_.dir + "/spool.ack";
  if (!ackFd_) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return Error{errnoText("cannot create " + path)};
    ackFd_ = std::make_shared<FileHandle>(fd);
  }
  struct stat st {};
  if (::fstat(ackFd_->fd(), &st) != 0) return Error{errnoText("cannot stat " + path)};
  if (static_cast<std::uint64_t>(st.st_size) != ack::kFileSize) {
    if (::ftruncate(ackFd_->fd(), static_cast<off_t>(ack::kFileSize)) != 0 || ::fsync(ackFd_->fd()) != 0) {
      return Error{errnoText("cannot prepare " + path)};
    }
    return Ok{};
  }
  return Ok{};
}

Status FileSpool::recover() {
  const std::string& dir = options_.dir;
  if (auto st = makeDirs(dir); !st) return st;
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Error{errnoText("cannot open " + dir)};
  dirFd_ = std::make_shared<FileHandle>(dfd);
  const std::string lockPath = dir + "/spool.lock";
  const int lfd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lfd < 0) return Error{errnoText("cannot open " + lockPath)};
  lockFd_ = std::make_shared<FileHandle>(lfd);
  if (::flock(lfd, LOCK_EX | LOCK_NB) != 0) {
    refused_ = true;
    return Error{dir + " is in use by another process (" + lockPath + " is locked)"};
  }
  std::vector<std::uint64_t> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Error{errnoText("cannot list " + dir)};
  while (const dirent* e = ::readdir(d)) {
    std::uint64_t n = 0;
    if (parseSegmentName(e->d_name, n)) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());

  // Refuse before touching anything: one segment of a newer format stops the start.
  std::string file;
  for (const std::uint64_t name : names) {
    const std::string path = segmentPath(dir, name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error{errnoText("cannot open " + path)};
    FileHandle h(fd);
    char head[segment::kHeaderSize];
    const ssize_t n = ::pread(fd, head, sizeof head, 0);
    segment::Header hdr;
    if (n > 0 && segment::decodeHeader(std::string_view(head, static_cast<std::size_t>(n)), hdr) ==
                     segment::HeaderStatus::FutureVersion) {
      refused_ = true;
      return Error{path + ": segment format version " + std::to_string(hdr.version) +
                   " is newer than this citygated supports (" + std::to_string(segment::kVersion) +
                   "); refusing to start and leaving the file untouched (upgrade citygated, or move the file out "
                   "of the spool directory to discard its readings)"};
    }
  }

  std::uint64_t generation = 0;
  if (auto st = openAckFile(generation); !st) return st;
  if (auto st = prepareAckFile(); !st) return st;

  bool dirChanged = true;        // the ack file may have been created
  std::uint64_t maxSeq = 0;      // highest seq seen in an intact frame
  std::uint64_t headerNext = 0;  // first seq of the newest segment when it holds no record
  std::uint64_t cutBytes = 0;
  std::uint64_t corruptAtStart = 0;
  std::uint64_t floorSeq = 0;  // a seq an unreadable newest segment may have held: never reused
  bool ackPlaced = false;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool newest = i + 1 == names.size();
    const std::uint64_t name = names[i];
    // A segment is created for the record with the seq in its name, so every seq of a sealed
    // segment is below the next segment's name: that bounds what damage in it cost.
    const std::uint64_t nextName = newest ? 0 : names[i + 1];
    const std::string path = segmentPath(dir, name);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return Error{errnoText("cannot open " + path)};
    auto handle = std::make_shared<FileHandle>(fd);
    struct stat stt {};
    if (::fstat(fd, &stt) != 0) return Error{errnoText("cannot stat " + path)};
    const auto size = static_cast<std::uint64_t>(stt.st_size);
    auto quarantine = [&](const char* why) -> Status {
      const std::string to = path + ".corrupt";
      // The readings it held: up to the next segment's first seq; for the newest segment, as
      // many as its size could hold (the smallest frame is 16 bytes), and numbering goes on
      // above that, so no seq it may have held is given to another reading.
      std::uint64_t end = nextName;
      if (newest) {
        end = name + (size > segment::kHeaderSize ? (size - segment::kHeaderSize) / segment::kFrameOverhead : 0) + 1;
        floorSeq = std::max(floorSeq, end);
      }
      const segment::SeqRange gone = segment::lostBetween(name - 1, end, settledSeq_);
      log_->error("{}: {}; renamed to {} and skipped: {}", path, why, to,
                  gone.count() == 0 ? std::string("it held no unacknowledged reading")
                  : newest ? fmt::format("the readings with seq {}..{} in it (at most {}) are lost", gone.first,
                                         gone.last, gone.count())
                           : fmt::format("{} reading(s) lost, seq {}..{}", gone.count(), gone.first, gone.last));
      if (::rename(path.c_str(), to.c_str()) != 0) return Error{errnoText("cannot rename " + path)};
      ++corrupt_;
      corruptReadings_ += gone.count();
      dirChanged = true;
      return Ok{};
    };
    if (size > kMaxSegmentBytes + segment::kMaxPayload + segment::kFrameOverhead) {
      if (auto st = quarantine("larger than any segment citygated writes"); !st) return st;
      continue;
    }
    file.resize(size);
    if (size > 0 && !preadAll(fd, file.data(), size, 0)) return Error{errnoText("cannot read " + path)};
    const segment::ScanResult r = segment::scan(file, settledSeq_, name);
    switch (r.header) {
      case segment::HeaderStatus::FutureVersion:
        return Error{path + ": newer format version"};  // checked above; unreachable
      case segment::HeaderStatus::Short:
        // Too short to hold a record: a creation torn by a crash. Nothing to lose.
        log_->warn("{}: {} bytes, shorter than a segment header; removed", path, size);
        if (::unlink(path.c_str()) != 0) return Error{errnoText("cannot delete " + path)};
        dirChanged = true;
        continue;
      case segment::HeaderStatus::BadMagic:
        if (auto st = quarantine("not a spool segment (bad magic)"); !st) return st;
        continue;
      case segment::HeaderStatus::BadCrc:
        if (r.hdr.version != segment::kVersion) {
          if (auto st = quarantine("damaged header of an unknown version"); !st) return st;
          continue;
        }
        log_->error("{}: damaged segment header; its records are checked one by one", path);
        ++corrupt_;
        break;
      case segment::HeaderStatus::Ok:
        break;
    }
    if (r.corruptFrames > 0) {
      std::string ranges;
      for (const auto& g : r.lost) ranges += fmt::format("{}{}..{}", ranges.empty() ? "" : ", ", g.first, g.last);
      log_->error("{}: {} damaged stretch(es) skipped: {} reading(s) lost{}", path, r.corruptFrames, r.corruptReadings,
                  ranges.empty() ? std::string() : ", seq " + ranges);
      corrupt_ += r.corruptFrames;
      corruptReadings_ += r.corruptReadings;
    }
    if (r.tailBytes > 0 && newest) {
      // Only the newest segment is being appended to: its tail is a write a crash or a power cut
      // tore. Such a record was never durable, so never sent (FORMAT.md): cut, not counted.
      log_->warn("{}: cut a torn tail of {} byte(s) after offset {}", path, r.tailBytes, r.validEnd);
    } else if (r.tailBytes > 0) {
      // A sealed segment was complete (and synced) before the next one was created: a short or
      // damaged tail is the medium's doing, unless it is a write that failed (ENOSPC) and was
      // retried in the next segment, which the next segment's name shows.
      std::uint64_t before = r.records > 0 ? r.lastSeq : name - 1;
      const segment::SeqRange gone = segment::lostBetween(before, nextName, settledSeq_);
      if (gone.count() > 0) {
        log_->error(
            "{}: sealed segment damaged or truncated after offset {} ({} byte(s) unreadable): {} reading(s) "
            "lost, seq {}..{}",
            path, r.validEnd, r.tailBytes, gone.count(), gone.first, gone.last);
        ++corrupt_;
        corruptReadings_ += gone.count();
      } else {
        log_->warn(
            "{}: cut {} byte(s) after the last record of a sealed segment (a write that failed and was "
            "retried in the next segment; no reading lost)",
            path, r.tailBytes);
      }
    }
    if (r.tailBytes > 0) {
      if (::ftruncate(fd, static_cast<off_t>(r.validEnd)) != 0) return Error{errnoText("cannot truncate " + path)};
      cutBytes += r.tailBytes;
    }
    if (r.records > 0) maxSeq = std::max(maxSeq, r.lastSeq);
    const bool reusable = newest && r.header == segment::HeaderStatus::Ok;
    if (reusable && r.records == 0) headerNext = r.hdr.firstSeq;
    if (!reusable && (r.records == 0 || r.lastSeq <= settledSeq_)) {
      // Empty, or every record in it acknowledged (or dropped) before the restart.
      if (::unlink(path.c_str()) != 0) return Error{errnoText("cannot delete " + path)};
      dirChanged = true;
      continue;
    }
    // Whatever the last run wrote may still sit in the page cache only: make it durable before
    // any of it is handed out.
    if (::fdatasync(fd) != 0) return Error{errnoText("cannot sync " + path)};
    Segment s;
    s.name = name;
    s.path = path;
    s.size = r.validEnd;
    s.firstOrd = endOrd_;
    s.count = r.records;
    s.firstSeq = r.firstSeq;
    s.lastSeq = r.lastSeq;
    s.spans = r.spans;
    s.fd = handle;
    if (!ackPlaced) {
      ack_ =
          Pos{name, r.ackEnd, s.firstOrd + r.acked, r.acked > 0 ? settledSeq_ : (s.firstSeq > 0 ? s.firstSeq - 1 : 0)};
      ackPlaced = true;
    }
    endOrd_ += s.count;
    bytes_ += s.size;
    segs_.push_back(std::move(s));
    activeOpen_ = reusable;
  }
  // An unreadable newest segment may have held seqs up to floorSeq - 1: an empty newest segment
  // named floorSeq carries the next seq across this and every later restart (FORMAT.md).
  if (floorSeq > std::max(maxSeq + 1, std::max(headerNext, settledSeq_ + 1)) && !activeOpen_) {
    const std::string path = segmentPath(dir, floorSeq);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) return Error{errnoText("cannot create " + path)};
    auto handle = std::make_shared<FileHandle>(fd);
    segment::Header h;
    h.firstSeq = floorSeq;
    h.createdUnixMs = toMillis(WallClock::now());
    const std::string hdr = segment::encodeHeader(h);
    if (!pwriteAll(fd, hdr.data(), hdr.size(), 0) || ::fdatasync(fd) != 0) {
      return Error{errnoText("cannot write " + path)};
    }
    Segment s;
    s.name = floorSeq;
    s.path = path;
    s.size = hdr.size();
    s.firstOrd = endOrd_;
    s.fd = handle;
    if (!ackPlaced) {
      ack_ = Pos{floorSeq, segment::kHeaderSize, endOrd_, floorSeq - 1};
      ackPlaced = true;
    }
    bytes_ += s.size;
    segs_.push_back(std::move(s));
    activeOpen_ = true;
    headerNext = floorSeq;
    dirChanged = true;
  }
  // Only the active segment keeps its descriptor; the others are reopened when read.
  for (std::size_t i = 0; i + 1 < segs_.size(); ++i) segs_[i].fd.reset();
  if (!segs_.empty() && !activeOpen_) segs_.back().fd.reset();
  if (dirChanged && ::fsync(dirFd_->fd()) != 0) return Error{errnoText("cannot sync " + dir)};
  corruptAtStart = corrupt_;

  bytes_ += ack::kFileSize;
  durableOrd_ = endOrd_;
  for (Reader& rd : readers_) {
    rd.read = ack_;
    rd.maxHandedOrd = endOrd_;  // everything recovered counts as replayed when it is sent
  }
  recoveredNextSeq_ = 0;
  if (maxSeq > 0) recoveredNextSeq_ = maxSeq + 1;
  if (headerNext > recoveredNextSeq_) recoveredNextSeq_ = headerNext;
  if (floorSeq > recoveredNextSeq_) recoveredNextSeq_ = floorSeq;
  if (settledSeq_ > 0 && settledSeq_ + 1 > recoveredNextSeq_) recoveredNextSeq_ = settledSeq_ + 1;
  updateOldest();
  const SpoolStats st = stats();
  log_->info("spool {}: {} segment(s), {} reading(s) to send from seq {}, next seq {}, {} byte(s){}{}", dir,
             segs_.size(), st.readings, st.oldestSeq, recoveredNextSeq_, st.bytes,
             cutBytes > 0 ? fmt::format(", cut {} torn byte(s)", cutBytes) : std::string(),
             corruptAtStart > 0 ? fmt::format(", {} damaged stretch(es) or file(s), {} reading(s) lost to damage",
                                              corruptAtStart, corruptReadings_)
                                : std::string());
  startWorker(generation);
  return Ok{};
}

void FileSpool::startWorker(std::uint64_t ackGeneration) {
  std::weak_ptr<int> alive = alive_;
  auto executor = executor_;
  worker_ = std::make_unique<SyncWorker>(options_.dir, dirFd_, ackFd_, ackGeneration, options_.durability,
                                         options_.ackInterval, options_.durable,
                                         [alive, executor, this](const SyncWorker::Result& r) {
                                           boost::asio::post(executor, [alive, this, r] {
                                             if (alive.lock()) onSynced(r);
                                           });
                                         });
}

void FileSpool::onSynced(const SyncWorker::Result& r) {
  if (!r.error.empty()) setError(r.error);
  bool call = false;
  if (r.token > durableOrd_ && r.token <= endOrd_) {
    durableOrd_ = r.token;
    for (std::size_t i = 0; i < readers_.size(); ++i) call = call || unreadBy(static_cast<ReaderId>(i)) > 0;
  }
  if (roomAfterUnlinks_ && r.unlinks >= *roomAfterUnlinks_) {
    roomAfterUnlinks_.reset();  // the segments dropped for room are gone: try again
    call = true;
  }
  if (readable_ && call) readable_();
}

// A write failed. When the file system is full before max_bytes and the policy is DROP_OLDEST,
// the oldest segment goes (counted in dropped, like at the cap) rather than the sources being
// blocked; one at a time: the next only after its deletion (on the worker) did not make room.
// True when room is coming: the readable callback says when (append() then returns Full).
bool FileSpool::makeRoom() {
  if (lastErrno_ != ENOSPC && lastErrno_ != EDQUOT) return false;
  if (options_.whenFull == pb::SpoolConfig::BLOCK_SOURCES || segs_.empty()) return false;
  if (roomAfterUnlinks_) return true;  // a deletion for room is under way
  const Segment& s = segs_.front();
  if (segs_.size() == 1 && s.endOrd() <= ack_.ord) return false;  // nothing of ours to drop
  // Said once a minute at most; each drop has its own line (dropOldest).
  const auto now = std::chrono::steady_clock::now();
  const bool say = !lastRoomLine_ || now - *lastRoomLine_ >= std::chrono::minutes(1);
  if (say) lastRoomLine_ = now;
  log_->log(say ? spdlog::level::warn : spdlog::level::debug,
            "{}: the file system is full at {} byte(s) of spool (max_bytes {}): dropping the oldest readings to make "
            "room",
            options_.dir, bytes_, options_.maxBytes);
  dropOldest();
  roomAfterUnlinks_ = unlinksSubmitted_;
  worker_->flush();
  return true;
}

void FileSpool::setError(std::string what, bool log) {
  if (log && what != lastError_) log_->error("{}", what);
  lastError_ = std::move(what);
}

std::size_t FileSpool::indexOf(const Segment& s) const {
  auto it = std::lower_bound(segs_.begin(), segs_.end(), s.name,
                             [](const Segment& a, std::uint64_t n) { return a.name < n; });
  return static_cast<std::size_t>(it - segs_.begin());
}

FileSpool::Segment* FileSpool::find(std::uint64_t name) {
  auto it =
      std::lower_bound(segs_.begin(), segs_.end(), name, [](const Segment& s, std::uint64_t n) { return s.name < n; });
  return it != segs_.end() && it->name == name ? &*it : nullptr;
}

const FileSpool::Segment* FileSpool::find(std::uint64_t name) const {
  auto it =
      std::lower_bound(segs_.begin(), segs_.end(), name, [](const Segment& s, std::uint64_t n) { return s.name < n; });
  return it != segs_.end() && it->name == name ? &*it : nullptr;
}

void FileSpool::resolve(Pos& p) const {
  if (find(p.seg)) return;
  // Its segment is gone (dropped or deleted): continue at the first segment after it.
  for (const Segment& s : segs_) {
    if (s.firstOrd >= p.ord) {
      p = startOf(s);
      return;
    }
  }
}

bool FileSpool::openForRead(Segment& s) {
  if (s.fd) return true;
  const int fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    setError(errnoText("cannot open " + s.path));
    return false;
  }
  s.fd = std::make_shared<FileHandle>(fd);
  return true;
}

bool FileSpool::fill(Segment& s, std::uint64_t off, std::size_t want, ReadBuffer& rb, std::size_t chunk) {
  if (rb.seg == s.name && off >= rb.off && off + want <= rb.off + rb.data.size()) return true;
  if (!openForRead(s)) return false;
  const std::uint64_t avail = s.size > off ? s.size - off : 0;
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(std::max(want, chunk), avail));
  rb.seg = kNoSegment;
  rb.data.resize(n);
  if (!preadAll(s.fd->fd(), rb.data.data(), n, off)) {
    setError(errnoText("cannot read " + s.path));
    return false;
  }
  rb.seg = s.name;
  rb.off = off;
  return n >= want;
}

FileSpool::Step FileSpool::readFrame(Segment& s, std::uint64_t& off, std::uint64_t afterSeq, segment::Frame& f,
                                     ReadBuffer& rb, std::size_t chunk) {
  if (off >= s.size) return Step::End;
  const std::size_t head = static_cast<std::size_t>(std::min<std::uint64_t>(segment::kFrameOverhead, s.size - off));
  if (!fill(s, off, head, rb, chunk)) return Step::End;
  std::string_view view = std::string_view(rb.data).substr(static_cast<std::size_t>(off - rb.off));
  segment::FrameStatus st = segment::decodeFrame(view, f);
  if (st == segment::FrameStatus::Truncated && view.size() >= segment::kFrameOverhead) {
    std::uint32_t len = 0;
    for (int i = 3; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(view[static_cast<std::size_t>(i)]);
    const std::uint64_t need = segment::kFrameOverhead + len;
    if (len <= segment::kMaxPayload && off + need <= s.size) {
      if (!fill(s, off, static_cast<std::size_t>(need), rb, chunk)) return Step::End;
      view = std::string_view(rb.data).substr(static_cast<std::size_t>(off - rb.off));
      st = segment::decodeFrame(view, f);
    }
  }
  if (st == segment::FrameStatus::Ok && f.seq > afterSeq) return Step::Record;
  // Damaged. Recovery found most damage already and noted where the frames resume.
  auto it = std::lower_bound(s.spans.begin(), s.spans.end(), off,
                             [](const segment::CorruptSpan& c, std::uint64_t o) { return c.offset < o; });
  if (it != s.spans.end() && it->offset == off) {
    off = it->resume;
    return Step::Skipped;
  }
  // New damage (the medium changed under us): resynchronise over the rest of the segment. What it
  // costs is counted by seq: up to the next intact frame, or to the segment's last record.
  auto lost = [&](std::uint64_t before, std::uint64_t after) {
    const segment::SeqRange gone = segment::lostBetween(before, after, ackedSeq_);
    corruptReadings_ += gone.count();
    return gone.count() == 0 ? std::string("no unacknowledged reading lost")
                             : fmt::format("{} reading(s) lost, seq {}..{}", gone.count(), gone.first, gone.last);
  };
  std::string rest(static_cast<std::size_t>(s.size - off), '\0');
  if (!openForRead(s) || !preadAll(s.fd->fd(), rest.data(), rest.size(), off)) {
    const std::string why = errnoText("cannot read " + s.path);
    ++corrupt_;
    setError(why + " after offset " + std::to_string(off) + ": " + lost(afterSeq, s.lastSeq + 1));
    off = s.size;
    return Step::End;
  }
  ++corrupt_;
  const std::size_t next = segment::resync(rest, 0, afterSeq);
  if (next == std::string_view::npos) {
    setError(s.path + ": damaged record at offset " + std::to_string(off) +
             "; the rest of the segment is unreadable: " + lost(afterSeq, s.lastSeq + 1));
    off = s.size;
    return Step::End;
  }
  segment::Frame resumed;
  (void)segment::decodeFrame(std::string_view(rest).substr(next), resumed);  // intact: resync() checked it
  setError(s.path + ": damaged record at offset " + std::to_string(off) + " skipped: " + lost(afterSeq, resumed.seq));
  if (s.spans.size() < segment::kMaxSpans) s.spans.insert(it, segment::CorruptSpan{off, off + next});
  off += next;
  return Step::Skipped;
}

std::uint64_t FileSpool::chargedBytes() const {
  std::uint64_t acked = 0;
  if (!segs_.empty() && ack_.seg == segs_.front().name && ack_.off > segment::kHeaderSize) {
    acked = ack_.off - segment::kHeaderSize;
  }
  return bytes_ - acked;
}

AppendResult FileSpool::append(std::uint64_t seq, std::string_view record) {
  if (closed_) {
    setError("append after close");
    return AppendResult::Error;
  }
  const std::uint64_t frame = segment::frameSize(record.size());
  if (record.size() > segment::kMaxPayload || frame + segment::kHeaderSize + ack::kFileSize > options_.maxBytes) {
    setError("a record of " + std::to_string(record.size()) + " bytes can never fit in the spool");
    return AppendResult::Refused;
  }
  auto needRotate = [&] {
    return !activeOpen_ || (segs_.back().count > 0 && segs_.back().size + frame > segmentBytes_);
  };
  AppendResult result = AppendResult::Ok;
  while (chargedBytes() + frame + (needRotate() ? segment::kHeaderSize : 0) > options_.maxBytes) {
    if (options_.whenFull == pb::SpoolConfig::BLOCK_SOURCES) {
      blocked_ = true;
      return AppendResult::Full;
    }
    if (!dropOldest()) break;
    result = AppendResult::OkDroppedOldest;
  }
  blocked_ = false;
  if (needRotate()) {
    if (const AppendResult r = rotate(seq); r != AppendResult::Ok) {
      if (r == AppendResult::Error && makeRoom()) return AppendResult::Full;
      return r;
    }
  }
  Segment& s = segs_.back();
  scratch_.clear();
  segment::encodeFrame(scratch_, seq, record);
  if (!pwriteAll(s.fd->fd(), scratch_.data(), scratch_.size(), s.size)) {
    lastErrno_ = errno;
    std::string why = errnoText("cannot write " + s.path);
    // Leave no partial frame behind; if even that fails, never append to this file again.
    if (::ftruncate(s.fd->fd(), static_cast<off_t>(s.size)) != 0) activeOpen_ = false;
    forgetBuffers(s.name);
    setError(std::move(why), false);
    return makeRoom() ? AppendResult::Full : AppendResult::Error;
  }
  const bool wasEmpty = endOrd_ == ack_.ord;
  s.size += frame;
  ++s.count;
  if (s.firstSeq == 0) s.firstSeq = seq;
  s.lastSeq = seq;
  bytes_ += frame;
  bytesWritten_ += frame;
  ++endOrd_;
  if (wasEmpty) oldestSeq_ = seq;
  if (options_.durable) worker_->submitWrite(s.fd, endOrd_);  // tmpfs: nothing to sync, no wake-up
  sampleWear();
  return result;
}

void FileSpool::sampleWear() {
  const auto now = std::chrono::steady_clock::now();
  if (!wear_.empty() && now - wear_.back().first < std::chrono::hours(1)) return;
  wear_.emplace_back(now, bytesWritten_);
  while (wear_.size() > 26) wear_.pop_front();
}

AppendResult FileSpool::rotate(std::uint64_t seq) {
  // The old newest segment (if any) is sealed. A durable spool syncs its tail before the successor
  // exists, so that a power cut can tear only the newest segment (FORMAT.md, Recovery); the tail is
  // what was appended since the last group commit, at most one window's worth.
  if (activeOpen_ && options_.durable && !segs_.empty() && segs_.back().fd && ::fdatasync(segs_.back().fd->fd()) != 0) {
    setError(errnoText("fdatasync of " + segs_.back().path + " failed"));
  }
  activeOpen_ = false;
  const std::string path = segmentPath(options_.dir, seq);
  if (!segs_.empty() && segs_.back().name >= seq) {
    setError("seq " + std::to_string(seq) + " does not sort after the newest segment; not stored");
    return AppendResult::Refused;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    lastErrno_ = errno;
    setError(errnoText("cannot create " + path), false);
    return AppendResult::Error;
  }
  auto handle = std::make_shared<FileHandle>(fd);
  segment::Header h;
  h.firstSeq = seq;
  h.createdUnixMs = toMillis(WallClock::now());
  const std::string hdr = segment::encodeHeader(h);
  if (!pwriteAll(fd, hdr.data(), hdr.size(), 0)) {
    lastErrno_ = errno;
    setError(errnoText("cannot write " + path), false);
    ::unlink(path.c_str());
    return AppendResult::Error;
  }
  Segment s;
  s.name = seq;
  s.path = path;
  s.size = hdr.size();
  s.firstOrd = endOrd_;
  s.fd = handle;
  segs_.push_back(std::move(s));
  activeOpen_ = true;
  bytes_ += hdr.size();
  bytesWritten_ += hdr.size();
  if (options_.durable) {
    worker_->submitWrite(handle, endOrd_);
    worker_->submitCreated();
  }
  if (!find(ack_.seg)) resolve(ack_);
  for (Reader& rd : readers_) {
    if (!find(rd.read.seg)) resolve(rd.read);
  }
  // The segment that was the newest may go now if it is fully acknowledged (the new one carries
  // the seq forward and is submitted for sync ahead of the deletion).
  while (segs_.size() > 1 && ack_.ord >= segs_.front().endOrd()) deleteSegmentFront();
  return AppendResult::Ok;
}

void FileSpool::deleteSegmentFront() {
  Segment& s = segs_.front();
  bytes_ -= s.size;
  worker_->submitUnlink(s.path);
  ++unlinksSubmitted_;
  forgetBuffers(s.name);
  const bool wasActive = segs_.size() == 1 && activeOpen_;
  const Pos end = endOf(s, 0);
  const std::uint64_t name = s.name;
  segs_.pop_front();
  if (wasActive) activeOpen_ = false;
  for (Pos* p : positions()) {
    if (p->seg != name) continue;
    if (segs_.empty()) {
      *p = Pos{kNoSegment, 0, std::max(p->ord, end.ord), end.prevSeq};
    } else {
      *p = startOf(segs_.front());
    }
  }
}

bool FileSpool::dropOldest() {
  if (segs_.empty()) return false;
  const Segment& s = segs_.front();
  const std::uint64_t lo = std::max(ack_.ord, s.firstOrd);
  const std::uint64_t hi = s.endOrd();
  if (hi > lo) {
    dropped_ += hi - lo;
    // Records of it already handed out may still be acknowledged: then they did arrive.
    std::uint64_t handed = 0;
    for (const Reader& rd : readers_) handed = std::max(handed, rd.read.ord);
    const std::uint64_t handedHi = std::min(handed, hi);
    if (handedHi > lo) droppedInFlight_.push_back(Range{lo, handedHi});
    log_->warn("spool full: dropped {} reading(s), seq {}..{}", hi - lo, s.firstSeq, s.lastSeq);
  }
  if (s.lastSeq > settledSeq_) {
    settledSeq_ = s.lastSeq;
    worker_->submitSettled(settledSeq_);
  }
  deleteSegmentFront();
  // Positions that pointed into the dropped segment moved to the next one in deleteSegmentFront;
  // those behind it move too.
  for (Pos* p : positions()) {
    if (p->ord < hi) {
      if (segs_.empty()) {
        *p = Pos{kNoSegment, 0, hi, 0};
      } else {
        *p = startOf(segs_.front());
      }
    }
  }
  updateOldest();
  return true;
}

std::vector<FileSpool::Pos*> FileSpool::positions() {
  std::vector<Pos*> v{&ack_};
  for (Reader& rd : readers_) v.push_back(&rd.read);
  return v;
}

void FileSpool::forgetBuffers(std::uint64_t seg) {
  for (Reader& rd : readers_) {
    if (rd.buf.seg == seg) rd.buf.seg = kNoSegment;
  }
  if (statBuf_.seg == seg) statBuf_.seg = kNoSegment;
}

ReaderId FileSpool::addReader() {
  Reader rd;
  rd.read = ack_;
  rd.maxHandedOrd = readers_.front().maxHandedOrd;
  readers_.push_back(std::move(rd));
  return static_cast<ReaderId>(readers_.size() - 1);
}

ReadResult FileSpool::readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) {
  Reader& rd = readers_[reader];
  ReadResult r;
  std::size_t taken = 0;
  const std::uint64_t readable = readableOrd();
  while (r.count < maxRecords && rd.read.ord < readable) {
    resolve(rd.read);
    Segment* s = find(rd.read.seg);
    if (!s) break;
    if (rd.read.ord >= s->endOrd()) {
      const auto idx = indexOf(*s);
      if (idx + 1 >= segs_.size()) break;
      rd.read = startOf(segs_[idx + 1]);
      continue;
    }
    segment::Frame f;
    std::uint64_t off = rd.read.off;
    const Step step = readFrame(*s, off, rd.read.prevSeq, f, rd.buf, kReadChunk);
    if (step == Step::Skipped) {
      rd.read.off = off;
      continue;
    }
    if (step == Step::End) {  // records lost to damage found only now
      rd.read = endOf(*s, rd.read.prevSeq);
      continue;
    }
    if (r.count > 0 && taken + f.payload.size() > maxBytes) break;
    to.record(f.seq, f.payload);
    taken += f.payload.size();
    if (r.count == 0) r.firstSeq = f.seq;
    r.lastSeq = f.seq;
    ++r.count;
    if (rd.read.ord < rd.maxHandedOrd) ++replayed_;
    rd.read = Pos{s->name, off + f.size, rd.read.ord + 1, f.seq};
  }
  rd.maxHandedOrd = std::max(rd.maxHandedOrd, rd.read.ord);
  if (r.count > 0) {
    rd.ledger.push_back(Handed{r.lastSeq, rd.read});
    if (rd.ledger.size() > kMaxLedger) rd.ledger.pop_front();
  }
  return r;
}

FileSpool::Pos FileSpool::locate(std::uint64_t seq, Pos p) {
  resolve(p);
  Segment* s = find(p.seg);
  while (s) {
    if (s->count == 0 || s->lastSeq <= seq) {
      p = endOf(*s, p.prevSeq);
    } else {
      while (p.ord < s->endOrd()) {
        segment::Frame f;
        std::uint64_t off = p.off;
        const Step step = readFrame(*s, off, p.prevSeq, f, statBuf_, kStatChunk);
        if (step == Step::Skipped) {
          p.off = off;
          continue;
        }
        if (step == Step::End) {
          p = endOf(*s, p.prevSeq);
          break;
        }
        if (f.seq > seq) return p;
        p = Pos{s->name, off + f.size, p.ord + 1, f.seq};
      }
    }
    const auto idx = indexOf(*s);
    if (idx + 1 >= segs_.size()) break;
    s = &segs_[idx + 1];
    p = startOf(*s);
  }
  return p;
}

void FileSpool::acknowledge(std::uint64_t lastSeq) {
  if (lastSeq <= ackedSeq_) return;
  Pos target = ack_;
  bool exact = false;
  // Any reader's batch that ended at lastSeq says where that is without reading the segments.
  for (Reader& rd : readers_) {
    while (!rd.ledger.empty() && rd.ledger.front().lastSeq <= lastSeq) {
      if (rd.ledger.front().end.ord > target.ord) target = rd.ledger.front().end;
      exact = exact || rd.ledger.front().lastSeq == lastSeq;
      rd.ledger.pop_front();
    }
  }
  if (!exact) target = locate(lastSeq, target);
  applyAck(target, lastSeq);
}

void FileSpool::applyAck(const Pos& target, std::uint64_t seq) {
  ackedSeq_ = seq;
  // Dropped records that were in flight and are now acknowledged did reach the broker.
  while (!droppedInFlight_.empty() && droppedInFlight_.front().lo < target.ord) {
    Range& rg = droppedInFlight_.front();
    const std::uint64_t upto = std::min(rg.hi, target.ord);
    dropped_ -= upto - rg.lo;
    rg.lo = upto;
    if (rg.lo < rg.hi) break;
    droppedInFlight_.pop_front();
  }
  if (target.ord > ack_.ord) {
    ackedSinceWrite_ += target.ord - ack_.ord;
    Pos t = target;
    if (!find(t.seg)) resolve(t);
    if (find(t.seg) || segs_.empty()) ack_ = t;
  }
  for (Reader& rd : readers_) {
    if (rd.read.ord < ack_.ord) rd.read = ack_;
  }
  while (segs_.size() > 1 && ack_.ord >= segs_.front().endOrd()) deleteSegmentFront();
  if (seq > settledSeq_) {
    settledSeq_ = seq;
    // Bound the duplicates a crash causes: by time (ackInterval) and, during a fast replay, by count.
    const bool soon = ackedSinceWrite_ >= options_.ackEveryRecords;
    if (soon) ackedSinceWrite_ = 0;
    worker_->submitSettled(settledSeq_, soon);
  }
  updateOldest();
}

void FileSpool::updateOldest() {
  if (endOrd_ <= ack_.ord) {
    oldestSeq_ = 0;
    return;
  }
  Pos p = ack_;
  resolve(p);
  Segment* s = find(p.seg);
  while (s) {
    while (p.ord < s->endOrd()) {
      segment::Frame f;
      std::uint64_t off = p.off;
      const Step step = readFrame(*s, off, p.prevSeq, f, statBuf_, kStatChunk);
      if (step == Step::Skipped) {
        p.off = off;
        continue;
      }
      if (step == Step::End) break;
      oldestSeq_ = f.seq;
      return;
    }
    const auto idx = indexOf(*s);
    if (idx + 1 >= segs_.size()) break;
    s = &segs_[idx + 1];
    p = startOf(*s);
  }
  oldestSeq_ = 0;
}

SetAsideResult FileSpool::setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) {
  SetAsideResult res;
  const std::string path = options_.dir + "/" + kRejectedFile;
  // The frames, as they are in the segments, from the first record above firstSeq - 1.
  std::string frames;
  std::uint64_t n = 0;
  Pos p = locate(firstSeq > 0 ? firstSeq - 1 : 0, ack_);
  resolve(p);
  for (Segment* s = find(p.seg); s != nullptr;) {
    bool past = false;
    while (p.ord < s->endOrd() && !past) {
      segment::Frame f;
      std::uint64_t off = p.off;
      const Step step = readFrame(*s, off, p.prevSeq, f, statBuf_, kStatChunk);
      if (step == Step::Skipped) {
        p.off = off;
        continue;
      }
      if (step == Step::End) break;
      if (f.seq > lastSeq) {
        past = true;
        break;
      }
      segment::encodeFrame(frames, f.seq, f.payload);
      ++n;
      p = Pos{s->name, off + f.size, p.ord + 1, f.seq};
    }
    const auto idx = indexOf(*s);
    if (past || idx + 1 >= segs_.size()) break;
    s = &segs_[idx + 1];
    p = startOf(*s);
  }
  if (n == 0) {
    res.why = "its records are no longer in the spool";
    return res;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) {
    res.why = errnoText("cannot open " + path);
    return res;
  }
  FileHandle h(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    res.why = path + " is not a regular file";
    return res;
  }
  std::string out;
  if (st.st_size == 0) {
    segment::Header hdr;
    hdr.firstSeq = firstSeq;
    hdr.createdUnixMs = toMillis(WallClock::now());
    out = segment::encodeHeader(hdr);
  }
  out += frames;
  if (static_cast<std::uint64_t>(st.st_size) + out.size() > kMaxRejectedBytes) {
    res.why = path + " already holds " + std::to_string(st.st_size) + " of its " + std::to_string(kMaxRejectedBytes) +
              " bytes";
    return res;
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t w = ::write(fd, out.data() + done, out.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      res.why = errnoText("cannot write " + path);
      // Leave whole frames only: a reader stops at a partial one anyway.
      if (::ftruncate(fd, st.st_size) != 0) res.why += " (and cannot cut what was written)";
      return res;
    }
    done += static_cast<std::size_t>(w);
  }
  // Durable before the acknowledgement deletes the originals.
  if (::fdatasync(fd) != 0) {
    res.why = errnoText("cannot sync " + path);
    return res;
  }
  bytesWritten_ += out.size();
  res.kept = n;
  res.where = path;
  return res;
}

void FileSpool::rewindReader(ReaderId reader, std::uint64_t afterSeq) {
  Reader& rd = readers_[reader];
  rd.read = afterSeq > ackedSeq_ ? locate(afterSeq, ack_) : ack_;
  rd.ledger.clear();
  // What was in flight is forgotten: dropped stays dropped.
  bool any = false;
  for (const Reader& other : readers_) any = any || other.read.ord > ack_.ord;
  if (!any) droppedInFlight_.clear();
}

std::uint64_t FileSpool::unreadBy(ReaderId reader) const {
  const Pos& read = readers_[reader].read;
  const std::uint64_t readable = readableOrd();
  return readable > read.ord ? readable - read.ord : 0;
}

std::uint64_t FileSpool::pendingFor(ReaderId reader) const {
  const Pos& read = readers_[reader].read;
  return endOrd_ > read.ord ? endOrd_ - read.ord : 0;
}

SpoolStats FileSpool::stats() const {
  SpoolStats s;
  s.bytes = bytes_;
  s.readings = endOrd_ > ack_.ord ? endOrd_ - ack_.ord : 0;
  for (std::size_t i = 0; i < readers_.size(); ++i) s.unread = std::max(s.unread, unreadBy(static_cast<ReaderId>(i)));
  s.oldestSeq = s.readings > 0 ? oldestSeq_ : 0;
  s.dropped = dropped_;
  s.replayed = replayed_;
  s.bytesWritten = bytesWritten_ + (worker_ ? worker_->ackBytesWritten() : 0);
  {
    // Bytes written in the last 24 h: from the hourly samples once there is a day of them,
    // extrapolated from the time since start before that.
    const auto now = std::chrono::steady_clock::now();
    const auto day = std::chrono::hours(24);
    if (!wear_.empty() && now - wear_.front().first >= day) {
      std::uint64_t base = wear_.front().second;
      for (const auto& [t, b] : wear_) {
        if (now - t >= day) base = b;
      }
      s.bytesWrittenPerDay = s.bytesWritten - base;
    } else {
      const double secs = std::chrono::duration<double>(now - opened_).count();
      s.bytesWrittenPerDay =
          secs < 60 ? s.bytesWritten : static_cast<std::uint64_t>(static_cast<double>(s.bytesWritten) * 86400.0 / secs);
    }
  }
  s.corruptRecords = corrupt_;
  s.corruptReadings = corruptReadings_;
  s.maxBytes = options_.maxBytes;
  s.blocked = blocked_;
  s.lastError = lastError_;
  return s;
}

void FileSpool::syncNow() {
  if (worker_) worker_->flush();
}

void FileSpool::close() {
  if (closed_) return;
  closed_ = true;
  if (worker_) worker_->stop(false);
  durableOrd_ = endOrd_;
}

void FileSpool::abandon() {
  if (closed_) return;
  closed_ = true;
  if (worker_) worker_->stop(true);
}

}  // namespace citygate::spool
