// TieredSpool: acknowledgement-driven durability (spool.durability ACK_DRIVEN; FORMAT.md, "Tiers").
//
// Two FileSpools of the same format: `young`, in runtime_dir on tmpfs (never synced: it survives a
// crash of the process, not a power cut), and `durable`, in spool.dir on the storage (group commit;
// a record is readable there once synced). A reading is appended to the young tier and is readable
// at once. It is moved to the durable tier (appended there and synced) only when the broker has not
// acknowledged it within `syncAfter`: then every young record moves, and new readings go straight to
// the durable tier ("direct") until every reader has read the durable tier to its end and an
// acknowledgement came within `syncAfter` again. With a healthy broker the storage gets nothing.
//
// Order: every durable record's seq is below every young record's (records move oldest first and
// all at once; after a move, appends go to the young tier again only when nothing is left for
// readers to read in the durable one), so a reader reads the durable tier to its end, then the young.
// A moved record that a reader already had is not handed to it again: its durable cursor is put after
// the highest seq it was handed.
//
// Threading: executor only, like every Spool. The age check runs on a timer of the injected clock.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "spool/file_spool.hpp"
#include "spool/names.hpp"

namespace spdlog {
class logger;
}

namespace citygate::spool {

struct TieredOptions {
  std::chrono::milliseconds syncAfter{1000};
  std::uint64_t youngMaxBytes = 8ULL << 20;  // more than this in RAM: moved regardless of age
};

class TieredSpool final : public Spool {
 public:
  // The young tier's options for `dir` (in runtime_dir): never synced, never dropping.
  static FileSpoolOptions youngOptions(std::string dir, const TieredOptions& options);
  // Whether `dir` (the young tier's) was written on this boot: it holds a `boot_id` file equal to
  // `bootId`. Writes `bootId` there for the next start. Call before opening the young tier.
  static bool sameBoot(const std::string& dir, const std::string& bootId);

  // Takes over both opened tiers. Young records that the durable tier does not hold (a crash left
  // them in RAM) move to it at once.
  TieredSpool(boost::asio::any_io_executor executor, core::Clock& clock, TieredOptions options,
              std::unique_ptr<FileSpool> durable, std::unique_ptr<FileSpool> young,
              std::shared_ptr<spdlog::logger> log);
  ~TieredSpool() override;
  TieredSpool(const TieredSpool&) = delete;
  TieredSpool& operator=(const TieredSpool&) = delete;

  AppendResult append(std::uint64_t seq, std::string_view record) override;
  ReaderId addReader() override;
  std::size_t readers() const override { return durable_->readers(); }
  ReadResult readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) override;
  void acknowledge(std::uint64_t lastSeq) override;
  void rewindReader(ReaderId reader, std::uint64_t afterSeq) override;
  SetAsideResult setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) override;
  std::uint64_t unreadBy(ReaderId reader) const override;
  SpoolStats stats() const override;
  std::uint64_t recoveredNextSeq() const override { return recoveredNextSeq_; }
  void setReadableCallback(std::function<void()> cb) override;
  // Moves every young record to the durable tier and closes both (a clean stop costs the storage
  // only what was not acknowledged).
  void close() override;

  // Appends go straight to the durable tier (the broker did not acknowledge in time).
  bool direct() const { return direct_; }
  // Records moved to the durable tier since start.
  std::uint64_t moved() const { return moved_; }
  FileSpool& durableTier() { return *durable_; }
  FileSpool& youngTier() { return *young_; }
  // Stop the way kill -9 would (tests).
  void abandon();

 private:
  struct Age {
    std::uint64_t lastSeq;  // the newest record of the bucket
    SteadyTime since;       // when its oldest record was appended
  };

  // Moves every young record to the durable tier; false when the durable tier refused one (the
  // rest stay young, in order, and are tried again).
  bool moveAll(const char* why);
  void checkAge();
  void armAgeTimer();
  void maybeLeaveDirect();
  ReaderId youngId(ReaderId reader) const { return youngIds_[reader]; }

  boost::asio::any_io_executor executor_;
  core::Clock& clock_;
  TieredOptions options_;
  std::unique_ptr<FileSpool> durable_;
  std::unique_ptr<FileSpool> young_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::Timer> ageTimer_;

  ReaderId mover_ = 0;                 // the young tier's reader that moves records
  std::vector<ReaderId> youngIds_;     // reader -> its cursor in the young tier
  std::vector<std::uint64_t> handed_;  // reader -> the highest seq handed out since its last rewind
  std::deque<Age> ages_;               // young records not acknowledged, in buckets of kAgeBucket
  bool direct_ = false;
  std::optional<SteadyTime> lastAck_;
  std::uint64_t ackedSeq_ = 0;
  std::uint64_t moved_ = 0;
  std::uint64_t recoveredNextSeq_ = 0;
  bool closed_ = false;
  AppendResult lastMoveFailure_ = AppendResult::Ok;
};

}  // namespace citygate::spool
