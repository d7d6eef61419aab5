#include "spool/tiered_spool.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "config/files.hpp"
#include "core/seq_store.hpp"

namespace citygate::spool {

namespace {

constexpr auto kAgeBucket = std::chrono::milliseconds(10);  // appends closer than this share an age
constexpr std::size_t kMoveBatch = 4096;
constexpr std::size_t kMoveBytes = 1U << 20;

// Appends what a young reader hands out to the durable tier, until one is refused.
class Mover final : public RecordVisitor {
 public:
  explicit Mover(FileSpool& to) : to_(to) {}
  void record(std::uint64_t seq, std::string_view record) override {
    if (failed_) return;
    if (seq <= to_.lastSeq()) {  // already there (a crash between a move and its acknowledgement)
      last_ = seq;
      return;
    }
    const AppendResult r = to_.append(seq, record);
    if (r == AppendResult::Ok || r == AppendResult::OkDroppedOldest) {
      last_ = seq;
      ++moved_;
    } else if (r == AppendResult::Refused) {
      last_ = seq;  // can never be stored (FileSpool logged why): holding it would stop the rest
      ++refused_;
    } else {
      failed_ = true;
      failure_ = r;
    }
  }
  std::uint64_t last_ = 0;
  std::uint64_t moved_ = 0;
  std::uint64_t refused_ = 0;
  bool failed_ = false;
  AppendResult failure_ = AppendResult::Ok;

 private:
  FileSpool& to_;
};

}  // namespace

FileSpoolOptions TieredSpool::youngOptions(std::string dir, const TieredOptions& options) {
  FileSpoolOptions o;
  o.dir = std::move(dir);
  o.durable = false;
  o.maxBytes = options.youngMaxBytes * 4;  // never reached: records move at youngMaxBytes
  o.whenFull = pb::SpoolConfig::BLOCK_SOURCES;
  o.segmentBytes = std::max<std::uint64_t>(options.youngMaxBytes / 8, 4096);
  return o;
}

bool TieredSpool::sameBoot(const std::string& dir, const std::string& bootId) {
  const std::string path = dir + "/boot_id";
  const config::SmallFile f = config::readSmallFile(path, 128);
  const bool same = !bootId.empty() && f.ok() && f.bytes.substr(0, f.bytes.find('\n')) == bootId;
  if (!same) (void)core::writeFileAtomic(path, bootId + "\n", 0600);  // tmpfs: the fsync costs nothing
  return same;
}

TieredSpool::TieredSpool(boost::asio::any_io_executor executor, core::Clock& clock, TieredOptions options,
                         std::unique_ptr<FileSpool> durable, std::unique_ptr<FileSpool> young,
                         std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      clock_(clock),
      options_(options),
      durable_(std::move(durable)),
      young_(std::move(young)),
      log_(log ? std::move(log) : spdlog::default_logger()),
      ageTimer_(clock_.makeTimer()) {
  youngIds_.push_back(0);
  handed_.push_back(0);
  mover_ = young_->addReader();
  recoveredNextSeq_ = std::max(durable_->recoveredNextSeq(), young_->recoveredNextSeq());
  // A crash left readings in RAM: they go to the storage first, so that the durable tier holds
  // every record below the young one's and the next start finds them even after a power cut.
  if (young_->held() > 0) {
    const std::uint64_t before = moved_;
    moveAll("recovered from runtime_dir after an unclean stop");
    log_->info("spool: {} reading(s) recovered from RAM (runtime_dir) moved to the storage", moved_ - before);
  }
  direct_ = durable_->held() > 0;  // replay from the storage first
}

TieredSpool::~TieredSpool() {
  close();
}

bool TieredSpool::moveAll(const char* why) {
  Mover m(*durable_);
  const std::uint64_t durableLast = durable_->lastSeq();
  while (!m.failed_) {
    const ReadResult r = young_->readBatch(mover_, kMoveBatch, kMoveBytes, m);
    if (r.count == 0) break;
  }
  if (m.failed_) {
    // The rest stays young and is read again from the first record not moved.
    young_->rewindReader(mover_, m.last_);
    lastMoveFailure_ = m.failure_;
  } else {
    lastMoveFailure_ = AppendResult::Ok;
  }
  if (m.moved_ > 0 && !direct_) {
    log_->warn(
        "spool: seq {} not acknowledged within {} ms ({}): {} reading(s) written to the storage, and "
        "every reading until the broker acknowledges again",
        ages_.empty() ? m.last_ : std::min(m.last_, ages_.front().lastSeq), options_.syncAfter.count(), why, m.moved_);
  }
  moved_ += m.moved_;
  direct_ = true;
  ages_.clear();
  ageTimer_->cancel();
  if (m.last_ > 0) {
    young_->acknowledge(m.last_);
    // Readers that had some of them already read on after what they had.
    for (ReaderId r = 0; r < handed_.size(); ++r) {
      if (handed_[r] > durableLast) durable_->rewindReader(r, handed_[r]);
    }
  }
  return !m.failed_;
}

AppendResult TieredSpool::append(std::uint64_t seq, std::string_view record) {
  if (closed_) return durable_->append(seq, record);  // fails as a closed spool does
  if (!direct_) {
    if (young_->heldBytes() + record.size() > options_.youngMaxBytes) {
      moveAll("more than the RAM bound unacknowledged");
    } else {
      const AppendResult r = young_->append(seq, record);
      if (r == AppendResult::Ok || r == AppendResult::OkDroppedOldest) {
        const SteadyTime now = clock_.steadyNow();
        if (ages_.empty() || now - ages_.back().since >= kAgeBucket) {
          ages_.push_back(Age{seq, now});
        } else {
          ages_.back().lastSeq = seq;
        }
        armAgeTimer();
        return AppendResult::Ok;
      }
      if (r == AppendResult::Refused) return r;
      log_->warn("spool: runtime_dir refused a reading ({}): writing to the storage instead",
                 young_->stats().lastError);
      moveAll("runtime_dir refused a write");
    }
  }
  // Direct: young records that could not move yet go first, in order.
  if (young_->pendingFor(mover_) > 0 && !moveAll("retrying the move")) return lastMoveFailure_;
  return durable_->append(seq, record);
}

void TieredSpool::armAgeTimer() {
  if (ageTimer_->armed() || ages_.empty()) return;
  const SteadyTime due = ages_.front().since + options_.syncAfter;
  const SteadyTime now = clock_.steadyNow();
  ageTimer_->start(due > now ? due - now : SteadyClock::duration::zero(), [this] { checkAge(); });
}

void TieredSpool::checkAge() {
  if (closed_ || ages_.empty()) return;
  if (clock_.steadyNow() - ages_.front().since >= options_.syncAfter) {
    moveAll("the broker is slow or away");
    return;
  }
  armAgeTimer();
}

void TieredSpool::maybeLeaveDirect() {
  if (!direct_ || closed_ || young_->pendingFor(mover_) > 0) return;
  if (!lastAck_ || clock_.steadyNow() - *lastAck_ >= options_.syncAfter) return;
  for (ReaderId r = 0; r < handed_.size(); ++r) {
    if (durable_->unreadBy(r) > 0) return;
  }
  direct_ = false;
  log_->info("spool: the broker acknowledges again: new readings stay in RAM (runtime_dir) until acknowledged");
}

ReaderId TieredSpool::addReader() {
  const ReaderId r = durable_->addReader();
  youngIds_.push_back(young_->addReader());
  handed_.push_back(0);
  return r;
}

ReadResult TieredSpool::readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) {
  ReadResult r;
  if (durable_->pendingFor(reader) > 0) {
    r = durable_->readBatch(reader, maxRecords, maxBytes, to);
  } else {
    r = young_->readBatch(youngId(reader), maxRecords, maxBytes, to);
  }
  if (r.count > 0) handed_[reader] = std::max(handed_[reader], r.lastSeq);
  maybeLeaveDirect();
  return r;
}

void TieredSpool::acknowledge(std::uint64_t lastSeq) {
  if (lastSeq <= ackedSeq_) return;
  ackedSeq_ = lastSeq;
  lastAck_ = clock_.steadyNow();
  // The durable tier only when it holds some of them (an acknowledgement of young records alone
  // must not make it write its ack file).
  const std::uint64_t durableLast = durable_->lastSeq();
  if (durable_->held() > 0) durable_->acknowledge(std::min(lastSeq, durableLast));
  young_->acknowledge(lastSeq);
  // The age timer is left to fire (at most once per sync_after): cancelling it here and arming it
  // again at the next append would cost two timer calls per batch.
  while (!ages_.empty() && ages_.front().lastSeq <= lastSeq) ages_.pop_front();
  maybeLeaveDirect();
}

void TieredSpool::rewindReader(ReaderId reader, std::uint64_t afterSeq) {
  durable_->rewindReader(reader, afterSeq);
  young_->rewindReader(youngId(reader), afterSeq);
  handed_[reader] = afterSeq;
}

SetAsideResult TieredSpool::setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) {
  // rejected.cgs lives with the storage: young records of the batch move there first.
  if (lastSeq > durable_->lastSeq()) moveAll("a rejected batch is set aside");
  return durable_->setAside(firstSeq, lastSeq);
}

std::uint64_t TieredSpool::unreadBy(ReaderId reader) const {
  if (durable_->pendingFor(reader) > 0) return durable_->unreadBy(reader);
  return young_->unreadBy(youngId(reader));
}

SpoolStats TieredSpool::stats() const {
  SpoolStats s = durable_->stats();
  const SpoolStats y = young_->stats();
  s.readings += y.readings;
  s.unread = 0;
  for (ReaderId r = 0; r < handed_.size(); ++r) s.unread = std::max(s.unread, unreadBy(r));
  if (s.oldestSeq == 0) s.oldestSeq = y.oldestSeq;
  s.replayed += y.replayed;
  s.corruptRecords += y.corruptRecords;
  s.corruptReadings += y.corruptReadings;
  if (s.lastError.empty()) s.lastError = y.lastError;
  s.ackDriven = true;
  s.ramReadings = y.readings;
  s.movedToStorage = moved_;
  s.syncing = direct_;
  return s;
}

void TieredSpool::setReadableCallback(std::function<void()> cb) {
  young_->setReadableCallback(cb);
  durable_->setReadableCallback(std::move(cb));
}

void TieredSpool::close() {
  if (closed_) return;
  if (young_->pendingFor(mover_) > 0) moveAll("clean stop");
  closed_ = true;
  ageTimer_->cancel();
  durable_->close();
  young_->close();
}

void TieredSpool::abandon() {
  if (closed_) return;
  closed_ = true;
  ageTimer_->cancel();
  young_->abandon();
  durable_->abandon();
}

}  // namespace citygate::spool
