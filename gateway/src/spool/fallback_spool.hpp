// FallbackSpool: the spool while the spool directory cannot be used at start (read-only, not
// writable, no space for the lock or ack file). The daemon starts anyway and keeps collecting:
// a bounded MemorySpool holds the readings (its when_full policy applies), stats() says the spool
// is unavailable and why, and the directory is tried again on a timer (FileSpool::open on a
// helper thread, so that a recovery reading a large spool never blocks the executor).
//
// When the directory opens, the file spool takes over. The readings held in memory move into it
// first, in seq order, before any new one (numbering started above what the directory held, see
// probeNextSeq, so they sort after its records): while some of them are in flight, nothing more
// is handed out until their batches are acknowledged or the link is lost (an acknowledgement of a
// memory batch must not acknowledge the file spool's older, unsent records). A held reading whose
// seq is not above the directory's (the directory could not even be read at start, so numbering
// did not know where to begin) cannot go into it: it is counted and logged as lost by seq, and
// onOpened tells the owner to number above the directory from now on. With several readers (sinks),
// "in flight" means handed out to any of them and not acknowledged by all: a sink that stays down
// keeps the held readings in memory until it has them too.
//
// close() makes one last attempt to open the directory; readings still only in memory are then
// logged by seq as lost.
//
// Threading: executor only, like every Spool; the helper thread only opens and posts back.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.hpp"
#include "spool/file_spool.hpp"
#include "spool/memory_spool.hpp"
#include "spool/names.hpp"

namespace spdlog {
class logger;
}

namespace citygate::spool {

struct FallbackOptions {
  FileSpoolOptions file;
  std::uint64_t memoryBytes = 8ULL << 20;  // the bound while the directory is unavailable
  std::chrono::milliseconds retryMin{1000};
  std::chrono::milliseconds retryMax{30000};
};

class FallbackSpool final : public Spool {
 public:
  enum class Phase : std::uint8_t {
    Memory,  // the directory is unavailable: the memory buffer is the spool
    Moving,  // the file spool is open; the memory buffer's readings wait to move into it
    File,    // the file spool is the spool
  };

  // `reason`: why the directory could not be opened. `floor`: probeNextSeq() of the directory
  // (none: it could not be read).
  // `clock` (the retry timer) must outlive the spool.
  FallbackSpool(boost::asio::any_io_executor executor, core::Clock& clock, FallbackOptions options, std::string reason,
                std::optional<std::uint64_t> floor, std::shared_ptr<spdlog::logger> log);
  ~FallbackSpool() override;
  FallbackSpool(const FallbackSpool&) = delete;
  FallbackSpool& operator=(const FallbackSpool&) = delete;

  // Starts retrying the directory.
  void start();
  // Called on the executor when the file spool has taken over, with its recovered next seq.
  void setOpenedCallback(std::function<void(std::uint64_t nextSeq)> cb) { opened_ = std::move(cb); }
  Phase phase() const { return phase_; }
  // Changes when the file spool becomes the spool: its backlog from an earlier run sorts below
  // the readings delivered from memory meanwhile.
  std::uint64_t generation() const override { return generation_; }

  AppendResult append(std::uint64_t seq, std::string_view record) override;
  ReaderId addReader() override;
  std::size_t readers() const override { return memory_.readers(); }
  ReadResult readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) override;
  void acknowledge(std::uint64_t lastSeq) override;
  void rewindReader(ReaderId reader, std::uint64_t afterSeq) override;
  SetAsideResult setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) override;
  std::uint64_t unreadBy(ReaderId reader) const override;
  SpoolStats stats() const override;
  std::uint64_t recoveredNextSeq() const override { return floor_.value_or(0); }
  void setReadableCallback(std::function<void()> cb) override;
  void close() override;

  // Tests: try the directory now (on the helper thread).
  void retryNow();

 private:
  struct Attempt;

  void schedule();
  void onTimer();
  void tryOpen();
  void onAttempt(const std::shared_ptr<Attempt>& a);
  void takeOver(std::unique_ptr<FileSpool> file);
  bool moveHeld();
  void logHeldLost(const std::deque<std::pair<std::uint64_t, std::string>>& lost, const char* why);

  boost::asio::any_io_executor executor_;
  core::Clock& clock_;
  FallbackOptions options_;
  std::string reason_;
  std::optional<std::uint64_t> floor_;
  std::shared_ptr<spdlog::logger> log_;
  MemorySpool memory_;
  std::unique_ptr<FileSpool> file_;
  Phase phase_ = Phase::Memory;
  std::unique_ptr<core::Timer> timer_;
  std::chrono::milliseconds wait_;
  bool attempting_ = false;
  bool closed_ = false;
  std::uint64_t attempts_ = 0;
  std::uint64_t lost_ = 0;        // held readings that could not move into the directory
  std::uint64_t generation_ = 0;  // 1 once the file spool is the spool (Spool::generation)
  std::thread helper_;
  std::shared_ptr<Attempt> pending_;  // the attempt under way
  std::shared_ptr<int> alive_;
  std::function<void()> readable_;
  std::function<void(std::uint64_t)> opened_;
};

}  // namespace citygate::spool
