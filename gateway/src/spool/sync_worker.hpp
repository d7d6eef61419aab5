// SyncWorker: the file spool's group commit. The executor writes records with plain write()s and
// tells the worker what became dirty; the worker, on its own thread, waits until the oldest dirty
// write is `window` old, then in this order: fdatasync()s every dirty segment, fsync()s the
// directory if files were created, writes the ack slot (throttled to `ackInterval`), unlinks the
// segments queued for deletion and fsync()s the directory again. Because the worker takes a
// snapshot of everything submitted so far, a deletion is never made durable before the data
// submitted ahead of it (the newest segment, which carries the last seq, always is).
//
// Without `sync` (a spool on tmpfs) the same steps run with no fdatasync()/fsync() at all: the
// worker then only writes the ack slot and deletes segments off the executor.
//
// Threading: submit*/flush are called on the executor and only take a mutex; `done` is invoked on
// the worker thread with the token of the newest synced write and is expected to post to the
// executor. stop() joins the thread (shutdown only).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace citygate::spool {

// An owned file descriptor shared between the executor and the worker (a segment may be deleted
// while its sync is under way; the descriptor then lives until the sync is over).
class FileHandle {
 public:
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

class SyncWorker {
 public:
  struct Result {
    std::uint64_t token = 0;    // every write submitted with a token <= this one is durable
    std::string error;          // empty, or what failed (the data stays readable; see FORMAT.md)
    std::uint64_t unlinks = 0;  // submitUnlink() calls carried out so far (tried, whatever came of it)
  };
  using Done = std::function<void(const Result&)>;

  SyncWorker(std::string dir, std::shared_ptr<FileHandle> dirFd, std::shared_ptr<FileHandle> ackFd,
             std::uint64_t ackGeneration, std::chrono::milliseconds window, std::chrono::milliseconds ackInterval,
             bool sync, Done done);
  ~SyncWorker();

  void submitWrite(const std::shared_ptr<FileHandle>& fd, std::uint64_t token);
  void submitCreated();                 // a file was created in the directory
  void submitUnlink(std::string path);  // delete after everything submitted before is durable
  // The ack slot's new value: written at most once per ackInterval, or at once when `soon` (many
  // records were acknowledged since the last write).
  void submitSettled(std::uint64_t seq, bool soon = false);
  void flush();  // commit now, ack slot included

  // Final commit (flush) and join; with `crash`, exit at once without syncing anything (tests).
  void stop(bool crash = false);

  std::uint64_t ackBytesWritten() const { return ackBytes_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool pendingLocked() const;

  std::string dir_;
  std::shared_ptr<FileHandle> dirFd_;
  std::shared_ptr<FileHandle> ackFd_;
  std::uint64_t ackGeneration_;
  std::chrono::milliseconds window_;
  std::chrono::milliseconds ackInterval_;
  bool sync_;  // false: the files live on tmpfs; writes, creations and deletions need no fsync
  Done done_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<FileHandle>> dirty_;
  std::uint64_t token_ = 0;
  bool created_ = false;
  std::vector<std::string> unlinks_;
  std::uint64_t unlinksDone_ = 0;                               // worker thread only
  std::optional<std::chrono::steady_clock::time_point> since_;  // oldest unsynced submission
  std::optional<std::uint64_t> settled_;                        // not yet written
  bool settledSoon_ = false;
  // When the ack slot was last written; none yet: the first write is never held back (the
  // steady clock's epoch is the boot, which may be seconds ago: it is no "long ago").
  std::optional<std::chrono::steady_clock::time_point> lastAck_;
  bool flush_ = false;
  bool stop_ = false;
  bool crash_ = false;
  std::atomic<std::uint64_t> ackBytes_{0};
  std::thread thread_;
};

// The ack file: two 32-byte slots at offsets 0 and 512, written alternately (FORMAT.md).
namespace ack {
inline constexpr char kMagic[4] = {'C', 'G', 'A', 'K'};
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kSlotSize = 32;
inline constexpr std::size_t kSlotStride = 512;
inline constexpr std::size_t kFileSize = kSlotStride + kSlotSize;

struct Slot {
  std::uint16_t version = kVersion;
  std::uint64_t generation = 0;
  std::uint64_t settledSeq = 0;
};
enum class SlotStatus : std::uint8_t { Ok, Missing, Damaged, FutureVersion };

std::string encodeSlot(const Slot& s);
SlotStatus decodeSlot(std::string_view bytes, Slot& out);
}  // namespace ack

}  // namespace citygate::spool
