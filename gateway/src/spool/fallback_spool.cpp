#include "spool/fallback_spool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

namespace citygate::spool {

// One attempt to open the directory, made on the helper thread.
struct FallbackSpool::Attempt {
  std::unique_ptr<FileSpool> file;
  std::string error;
  bool refused = false;
};

FallbackSpool::FallbackSpool(boost::asio::any_io_executor executor, core::Clock& clock, FallbackOptions options,
                             std::string reason, std::optional<std::uint64_t> floor,
                             std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      clock_(clock),
      options_(std::move(options)),
      reason_(std::move(reason)),
      floor_(floor),
      log_(std::move(log)),
      memory_(std::min(options_.memoryBytes, options_.file.maxBytes), options_.file.whenFull),
      timer_(clock_.makeTimer()),
      wait_(options_.retryMin),
      alive_(std::make_shared<int>(0)) {}

FallbackSpool::~FallbackSpool() {
  alive_.reset();  // nothing posted runs any more
  try {
    close();  // the owner has normally done so (Gateway::stop)
  } catch (...) {
    // A destructor must not throw; close() only allocates and joins.
  }
}

void FallbackSpool::start() {
  schedule();
}

void FallbackSpool::schedule() {
  if (closed_ || phase_ == Phase::File) return;
  timer_->start(wait_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.lock()) onTimer();
  });
}

void FallbackSpool::onTimer() {
  if (closed_) return;
  wait_ = std::min(wait_ * 2, options_.retryMax);
  if (phase_ == Phase::Memory) {
    tryOpen();
    return;
  }
  // Moving: the file spool had no room for the held readings last time.
  if (moveHeld()) {
    if (readable_) readable_();
  } else {
    schedule();
  }
}

void FallbackSpool::retryNow() {
  timer_->cancel();
  tryOpen();
}

void FallbackSpool::tryOpen() {
  if (attempting_ || closed_ || phase_ != Phase::Memory) return;
  attempting_ = true;
  if (helper_.joinable()) helper_.join();  // the previous attempt, long over
  ++attempts_;
  auto attempt = std::make_shared<Attempt>();
  pending_ = attempt;
  helper_ = std::thread(
      [executor = executor_, options = options_.file, log = log_, attempt, alive = std::weak_ptr<int>(alive_), this] {
        FileSpool::OpenFailure failure = FileSpool::OpenFailure::Unavailable;
        auto opened = FileSpool::open(executor, options, log, &failure);
        if (opened) {
          attempt->file = std::move(opened).value();
        } else {
          attempt->error = opened.error();
          attempt->refused = failure == FileSpool::OpenFailure::Refused;
        }
        boost::asio::post(executor, [attempt, alive, this] {
          if (alive.lock()) onAttempt(attempt);
        });
      });
}

void FallbackSpool::onAttempt(const std::shared_ptr<Attempt>& a) {
  attempting_ = false;
  pending_.reset();
  if (closed_) return;  // close() took what it opened
  if (!a->file) {
    if (a->error != reason_) {
      log_->warn("spool {} still unavailable: {}", options_.file.dir, a->error);
      reason_ = a->error;
    } else {
      log_->debug("spool {} still unavailable (attempt {})", options_.file.dir, attempts_);
    }
    schedule();
    return;
  }
  takeOver(std::move(a->file));
}

void FallbackSpool::takeOver(std::unique_ptr<FileSpool> file) {
  file_ = std::move(file);
  while (file_->readers() < memory_.readers()) file_->addReader();
  const std::uint64_t next = file_->recoveredNextSeq();
  log_->warn(
      "spool {} is available again (after {} attempt(s)): the file spool takes over; {} reading(s) held in "
      "memory move into it",
      options_.file.dir, attempts_, memory_.stats().readings);
  if (readable_) file_->setReadableCallback(readable_);
  phase_ = Phase::Moving;
  wait_ = options_.retryMin;
  if (opened_) opened_(next);
  if (memory_.inFlight() == 0 && !moveHeld()) schedule();
  if (readable_) readable_();  // the file spool's recovered records, or the moved ones
}

// Appends the memory buffer's readings to the file spool, oldest first; true when all moved.
bool FallbackSpool::moveHeld() {
  if (phase_ != Phase::Moving || memory_.inFlight() > 0) return false;
  auto held = memory_.release();
  const std::uint64_t floor = file_->recoveredNextSeq();
  std::deque<std::pair<std::uint64_t, std::string>> below;
  while (!held.empty() && held.front().first < floor) {
    below.push_back(std::move(held.front()));
    held.pop_front();
  }
  if (!below.empty()) logHeldLost(below, "their seqs are not above the seqs the spool directory holds");
  std::uint64_t moved = 0;
  while (!held.empty()) {
    const auto r = file_->append(held.front().first, held.front().second);
    if (r == AppendResult::Error || r == AppendResult::Full) break;
    if (r == AppendResult::Refused) logHeldLost({held.front()}, "the file spool refused it");
    held.pop_front();
    ++moved;
  }
  if (!held.empty()) {
    // The file spool has no room yet: they go back to memory and move on the timer.
    log_->warn("spool {}: {} of the readings held in memory could not move yet ({})", options_.file.dir, held.size(),
               file_->stats().lastError);
    for (auto& [seq, bytes] : held) (void)memory_.append(seq, bytes);
    return false;
  }
  log_->info("spool {}: {} reading(s) moved from memory into the file spool", options_.file.dir, moved);
  phase_ = Phase::File;
  ++generation_;
  file_->syncNow();
  return true;
}

void FallbackSpool::logHeldLost(const std::deque<std::pair<std::uint64_t, std::string>>& lost, const char* why) {
  if (lost.empty()) return;
  std::string seqs;
  std::uint64_t lo = lost.front().first;
  std::uint64_t hi = lo;
  auto flush = [&] {
    seqs += (seqs.empty() ? "" : ", ") + std::to_string(lo) + (hi > lo ? ".." + std::to_string(hi) : "");
  };
  for (std::size_t i = 1; i < lost.size(); ++i) {
    if (lost[i].first == hi + 1) {
      hi = lost[i].first;
      continue;
    }
    flush();
    lo = hi = lost[i].first;
  }
  flush();
  lost_ += lost.size();
  log_->error("not stored ({}): {} reading(s) held in memory lost, seq {}", why, lost.size(), seqs);
}

AppendResult FallbackSpool::append(std::uint64_t seq, std::string_view record) {
  if (phase_ == Phase::File) return file_->append(seq, record);
  if (phase_ == Phase::Moving && memory_.stats().readings == 0 && moveHeld()) return file_->append(seq, record);
  // Behind the held readings (seq order), in memory and bounded, until they move.
  return memory_.append(seq, record);
}

ReaderId FallbackSpool::addReader() {
  const ReaderId id = memory_.addReader();
  if (file_) file_->addReader();
  return id;
}

ReadResult FallbackSpool::readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) {
  switch (phase_) {
    case Phase::Memory:
      return memory_.readBatch(reader, maxRecords, maxBytes, to);
    case Phase::Moving:
      return ReadResult{};  // nothing until the held readings have moved (see the header)
    case Phase::File:
      return file_->readBatch(reader, maxRecords, maxBytes, to);
  }
  return ReadResult{};
}

void FallbackSpool::acknowledge(std::uint64_t lastSeq) {
  if (phase_ == Phase::File) {
    file_->acknowledge(lastSeq);
    return;
  }
  memory_.acknowledge(lastSeq);
  if (phase_ == Phase::Moving && moveHeld() && readable_) readable_();
}

void FallbackSpool::rewindReader(ReaderId reader, std::uint64_t afterSeq) {
  if (phase_ == Phase::File) {
    file_->rewindReader(reader, afterSeq);
    return;
  }
  memory_.rewindReader(reader, afterSeq);
  if (phase_ == Phase::Moving && moveHeld() && readable_) readable_();
}

SetAsideResult FallbackSpool::setAside(std::uint64_t firstSeq, std::uint64_t lastSeq) {
  if (phase_ == Phase::File) return file_->setAside(firstSeq, lastSeq);
  return SetAsideResult{0, {}, "the spool directory is unavailable (" + reason_ + ")"};
}

std::uint64_t FallbackSpool::unreadBy(ReaderId reader) const {
  switch (phase_) {
    case Phase::Memory:
      return memory_.unreadBy(reader);
    case Phase::Moving:
      return 0;
    case Phase::File:
      return file_->unreadBy(reader);
  }
  return 0;
}

SpoolStats FallbackSpool::stats() const {
  SpoolStats s;
  if (phase_ == Phase::Memory) {
    s = memory_.stats();
    s.unavailable = true;
    s.lastError = options_.file.dir + " unavailable (" + reason_ + "): readings are held in memory (at most " +
                  std::to_string(memory_.stats().maxBytes) + " bytes) and the directory is tried again";
  } else {
    s = file_->stats();
    const SpoolStats m = memory_.stats();
    s.readings += m.readings;  // still waiting to move (Moving)
    s.bytes += m.bytes;
    s.dropped += m.dropped;  // dropped while in memory
  }
  s.notStored += lost_;
  return s;
}

void FallbackSpool::setReadableCallback(std::function<void()> cb) {
  readable_ = std::move(cb);
  if (file_) file_->setReadableCallback(readable_);
}

void FallbackSpool::close() {
  if (closed_) return;
  closed_ = true;
  timer_->cancel();
  if (helper_.joinable()) helper_.join();  // an attempt under way ends
  if (pending_ && pending_->file && phase_ == Phase::Memory) {
    file_ = std::move(pending_->file);  // it opened just now: use it
    phase_ = Phase::Moving;
  }
  pending_.reset();
  if (phase_ == Phase::Memory && memory_.stats().readings > 0) {
    // One last attempt: a directory writable again keeps what is held.
    FileSpool::OpenFailure failure = FileSpool::OpenFailure::Unavailable;
    auto opened = FileSpool::open(executor_, options_.file, log_, &failure);
    if (opened) {
      file_ = std::move(opened).value();
      phase_ = Phase::Moving;
    } else {
      reason_ = opened.error();
    }
  }
  if (phase_ == Phase::Moving) {
    memory_.rewind();  // nothing is in flight any more
    moveHeld();
  }
  if (memory_.stats().readings > 0) {
    logHeldLost(memory_.release(), ("stopping; the spool directory is unavailable: " + reason_).c_str());
  }
  if (file_) file_->close();
}

}  // namespace citygate::spool
