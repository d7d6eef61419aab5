#include "spool/sync_worker.hpp"

#include <pthread.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "spool/segment.hpp"

namespace citygate::spool {

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

namespace ack {

namespace {
void putLe(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
std::uint64_t getLe(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
}  // namespace

std::string encodeSlot(const Slot& s) {
  std::string out;
  out.reserve(kSlotSize);
  out.append(kMagic, sizeof kMagic);
  putLe(out, s.version, 2);
  putLe(out, kSlotSize, 2);
  putLe(out, s.generation, 8);
  putLe(out, s.settledSeq, 8);
  putLe(out, 0, 4);
  putLe(out, segment::crc32(out), 4);
  return out;
}

SlotStatus decodeSlot(std::string_view bytes, Slot& out) {
  if (bytes.size() < 8) return bytes.empty() ? SlotStatus::Missing : SlotStatus::Damaged;
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    // A slot never written is all zeroes.
    for (char c : bytes) {
      if (c != 0) return SlotStatus::Damaged;
    }
    return SlotStatus::Missing;
  }
  const auto version = static_cast<std::uint16_t>(getLe(bytes.data() + 4, 2));
  const auto size = static_cast<std::size_t>(getLe(bytes.data() + 6, 2));
  if (size < 12 || bytes.size() < size) return SlotStatus::Damaged;
  if (segment::crc32(bytes.substr(0, size - 4)) != getLe(bytes.data() + size - 4, 4)) return SlotStatus::Damaged;
  out.version = version;
  if (version > kVersion) return SlotStatus::FutureVersion;
  if (version == 0 || size != kSlotSize) return SlotStatus::Damaged;
  out.generation = getLe(bytes.data() + 8, 8);
  out.settledSeq = getLe(bytes.data() + 16, 8);
  return SlotStatus::Ok;
}

}  // namespace ack

SyncWorker::SyncWorker(std::string dir, std::shared_ptr<FileHandle> dirFd, std::shared_ptr<FileHandle> ackFd,
                       std::uint64_t ackGeneration, std::chrono::milliseconds window,
                       std::chrono::milliseconds ackInterval, bool sync, Done done)
    : dir_(std::move(dir)),
      dirFd_(std::move(dirFd)),
      ackFd_(std::move(ackFd)),
      ackGeneration_(ackGeneration),
      window_(window),
      ackInterval_(ackInterval),
      sync_(sync),
      done_(std::move(done)),
      thread_([this] { run(); }) {}

SyncWorker::~SyncWorker() {
  stop();
}

void SyncWorker::submitWrite(const std::shared_ptr<FileHandle>& fd, std::uint64_t token) {
  std::lock_guard lock(mu_);
  if (dirty_.empty() || dirty_.back() != fd) dirty_.push_back(fd);
  token_ = token;
  if (!since_) {
    since_ = std::chrono::steady_clock::now();
    cv_.notify_one();
  }
}

void SyncWorker::submitCreated() {
  std::lock_guard lock(mu_);
  created_ = true;
  if (!since_) {
    since_ = std::chrono::steady_clock::now();
    cv_.notify_one();
  }
}

void SyncWorker::submitUnlink(std::string path) {
  std::lock_guard lock(mu_);
  unlinks_.push_back(std::move(path));
  if (!since_) {
    since_ = std::chrono::steady_clock::now();
    cv_.notify_one();
  }
}

void SyncWorker::submitSettled(std::uint64_t seq, bool soon) {
  std::lock_guard lock(mu_);
  // A slot already pending keeps its due time: no need to wake the worker (one ack per batch).
  const bool wake = soon || !settled_.has_value();
  settled_ = seq;
  if (soon) settledSoon_ = true;  // due at once (with whatever data is dirty by then)
  if (wake) cv_.notify_one();
}

void SyncWorker::flush() {
  std::lock_guard lock(mu_);
  flush_ = true;
  cv_.notify_one();
}

void SyncWorker::stop(bool crash) {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
    crash_ = crash;
    cv_.notify_one();
  }
  thread_.join();
}

bool SyncWorker::pendingLocked() const {
  return since_.has_value() || flush_ || settled_.has_value();
}

void SyncWorker::run() {
  pthread_setname_np(pthread_self(), "cg-spool-sync");
  std::unique_lock lock(mu_);
  for (;;) {
    if (stop_ && (crash_ || !pendingLocked())) return;
    if (!pendingLocked()) {
      cv_.wait(lock);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    // When is the next commit due? Data: window after the oldest dirty write. Ack slot alone:
    // ackInterval after the last slot write.
    // The first slot write is due at once.
    const auto ackDue = lastAck_ ? *lastAck_ + ackInterval_ : now;
    auto due = std::chrono::steady_clock::time_point::max();
    if (since_) due = *since_ + window_;
    if (settled_) due = std::min(due, ackDue);
    if (flush_ || stop_ || settledSoon_) due = now;
    if (now < due) {
      cv_.wait_until(lock, due);
      continue;
    }
    const bool writeAck = settled_ && (flush_ || stop_ || settledSoon_ || now >= ackDue);
    auto dirty = std::move(dirty_);
    dirty_.clear();
    auto unlinks = std::move(unlinks_);
    unlinks_.clear();
    const bool created = created_;
    created_ = false;
    const std::uint64_t token = token_;
    std::optional<std::uint64_t> settled;
    if (writeAck) {
      settled = settled_;
      settled_.reset();
      settledSoon_ = false;
      lastAck_ = now;
    }
    since_.reset();
    flush_ = false;
    lock.unlock();

    Result result;
    result.token = token;
    auto fail = [&result](const std::string& what) {
      if (result.error.empty()) result.error = what + ": " + std::strerror(errno);
    };
    for (const auto& f : dirty) {
      if (sync_ && ::fdatasync(f->fd()) != 0) fail("fdatasync of a segment failed");
    }
    dirty.clear();
    if (sync_ && created && ::fsync(dirFd_->fd()) != 0) fail("fsync of " + dir_ + " failed");
    if (settled) {
      ack::Slot s;
      s.generation = ++ackGeneration_;
      s.settledSeq = *settled;
      const std::string bytes = ack::encodeSlot(s);
      const auto off = static_cast<off_t>((s.generation % 2) * ack::kSlotStride);
      if (::pwrite(ackFd_->fd(), bytes.data(), bytes.size(), off) != static_cast<ssize_t>(bytes.size())) {
        fail("writing the ack file failed");
      } else {
        ackBytes_.fetch_add(bytes.size(), std::memory_order_relaxed);
        if (sync_ && ::fdatasync(ackFd_->fd()) != 0) fail("fdatasync of the ack file failed");
      }
    }
    if (!unlinks.empty()) {
      for (const auto& p : unlinks) {
        if (::unlink(p.c_str()) != 0 && errno != ENOENT) fail("cannot delete " + p);
      }
      if (sync_ && ::fsync(dirFd_->fd()) != 0) fail("fsync of " + dir_ + " failed");
      unlinksDone_ += unlinks.size();
    }
    result.unlinks = unlinksDone_;
    if (done_) done_(result);
    lock.lock();
  }
}

}  // namespace citygate::spool
