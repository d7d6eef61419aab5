#include "spool/memory_spool.hpp"

namespace citygate::spool {

MemorySpool::MemorySpool(std::uint64_t maxBytes, pb::SpoolConfig::WhenFull whenFull)
    : maxBytes_(maxBytes), whenFull_(whenFull) {
  counters_.maxBytes = maxBytes;
}

AppendResult MemorySpool::append(std::uint64_t seq, std::string_view record) {
  const std::uint64_t size = record.size() + kRecordOverhead;
  if (size > maxBytes_) return AppendResult::Refused;
  AppendResult result = AppendResult::Ok;
  while (bytes_ + size > maxBytes_) {
    if (whenFull_ == pb::SpoolConfig::BLOCK_SOURCES) {
      counters_.blocked = true;
      return AppendResult::Full;
    }
    bytes_ -= records_.front().bytes.size() + kRecordOverhead;
    // Handed out and maybe still acknowledged: then it did arrive and is taken off the count.
    if (cursor_ > 0) droppedInFlight_.push_back(records_.front().seq);
    records_.pop_front();
    if (cursor_ > 0) --cursor_;
    if (maxHandedOut_ > 0) --maxHandedOut_;
    ++counters_.dropped;
    result = AppendResult::OkDroppedOldest;
  }
  counters_.blocked = false;
  records_.push_back(Record{seq, std::string(record)});
  bytes_ += size;
  counters_.bytesWritten += size;
  return result;
}

ReadResult MemorySpool::readBatch(std::size_t maxRecords, std::size_t maxBytes, std::string& out) {
  ReadResult r;
  std::size_t taken = 0;
  while (cursor_ < records_.size() && r.count < maxRecords) {
    const Record& rec = records_[cursor_];
    if (r.count > 0 && taken + rec.bytes.size() > maxBytes) break;
    appendBatchRecord(out, rec.bytes);
    taken += rec.bytes.size();
    if (r.count == 0) r.firstSeq = rec.seq;
    r.lastSeq = rec.seq;
    ++r.count;
    if (cursor_ < maxHandedOut_) ++counters_.replayed;
    ++cursor_;
  }
  if (cursor_ > maxHandedOut_) maxHandedOut_ = cursor_;
  return r;
}

void MemorySpool::acknowledge(std::uint64_t lastSeq) {
  while (!droppedInFlight_.empty() && droppedInFlight_.front() <= lastSeq) {
    --counters_.dropped;
    droppedInFlight_.pop_front();
  }
  while (!records_.empty() && records_.front().seq <= lastSeq) {
    bytes_ -= records_.front().bytes.size() + kRecordOverhead;
    records_.pop_front();
    if (cursor_ > 0) --cursor_;
    if (maxHandedOut_ > 0) --maxHandedOut_;
  }
  if (counters_.blocked && bytes_ < maxBytes_) counters_.blocked = false;
}

void MemorySpool::rewind() {
  cursor_ = 0;
  droppedInFlight_.clear();  // what was in flight is forgotten: dropped stays dropped
}

std::deque<std::pair<std::uint64_t, std::string>> MemorySpool::release() {
  std::deque<std::pair<std::uint64_t, std::string>> out;
  for (auto& r : records_) out.emplace_back(r.seq, std::move(r.bytes));
  records_.clear();
  droppedInFlight_.clear();
  cursor_ = 0;
  maxHandedOut_ = 0;
  bytes_ = 0;
  counters_.blocked = false;
  return out;
}

SpoolStats MemorySpool::stats() const {
  SpoolStats s = counters_;
  s.bytes = bytes_;
  s.readings = records_.size();
  s.unread = records_.size() - cursor_;
  s.oldestSeq = records_.empty() ? 0 : records_.front().seq;
  return s;
}

}  // namespace citygate::spool
