#include "spool/memory_spool.hpp"

#include <algorithm>

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
    // Handed out and maybe still acknowledged: then it did arrive and is taken off the count.
    if (inFlight() > 0) droppedInFlight_.push_back(records_.front().seq);
    popFront();
    ++counters_.dropped;
    result = AppendResult::OkDroppedOldest;
  }
  counters_.blocked = false;
  records_.push_back(Record{seq, std::string(record)});
  bytes_ += size;
  counters_.bytesWritten += size;
  return result;
}

void MemorySpool::popFront() {
  bytes_ -= records_.front().bytes.size() + kRecordOverhead;
  records_.pop_front();
  for (Reader& rd : readers_) {
    if (rd.cursor > 0) --rd.cursor;
    if (rd.maxHandedOut > 0) --rd.maxHandedOut;
  }
}

std::uint64_t MemorySpool::inFlight() const {
  std::size_t n = 0;
  for (const Reader& rd : readers_) n = std::max(n, rd.cursor);
  return n;
}

ReaderId MemorySpool::addReader() {
  readers_.emplace_back();
  return static_cast<ReaderId>(readers_.size() - 1);
}

ReadResult MemorySpool::readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) {
  Reader& rd = readers_[reader];
  ReadResult r;
  std::size_t taken = 0;
  while (rd.cursor < records_.size() && r.count < maxRecords) {
    const Record& rec = records_[rd.cursor];
    if (r.count > 0 && taken + rec.bytes.size() > maxBytes) break;
    to.record(rec.seq, rec.bytes);
    taken += rec.bytes.size();
    if (r.count == 0) r.firstSeq = rec.seq;
    r.lastSeq = rec.seq;
    ++r.count;
    if (rd.cursor < rd.maxHandedOut) ++counters_.replayed;
    ++rd.cursor;
  }
  if (rd.cursor > rd.maxHandedOut) rd.maxHandedOut = rd.cursor;
  return r;
}

void MemorySpool::acknowledge(std::uint64_t lastSeq) {
  while (!droppedInFlight_.empty() && droppedInFlight_.front() <= lastSeq) {
    --counters_.dropped;
    droppedInFlight_.pop_front();
  }
  while (!records_.empty() && records_.front().seq <= lastSeq) popFront();
  if (counters_.blocked && bytes_ < maxBytes_) counters_.blocked = false;
}

void MemorySpool::rewindReader(ReaderId reader, std::uint64_t afterSeq) {
  Reader& rd = readers_[reader];
  rd.cursor = 0;
  while (rd.cursor < records_.size() && records_[rd.cursor].seq <= afterSeq) ++rd.cursor;
  // What was in flight is forgotten: dropped stays dropped.
  if (inFlight() == 0) droppedInFlight_.clear();
}

std::deque<std::pair<std::uint64_t, std::string>> MemorySpool::release() {
  std::deque<std::pair<std::uint64_t, std::string>> out;
  for (auto& r : records_) out.emplace_back(r.seq, std::move(r.bytes));
  records_.clear();
  droppedInFlight_.clear();
  for (Reader& rd : readers_) rd = Reader{};
  bytes_ = 0;
  counters_.blocked = false;
  return out;
}

SpoolStats MemorySpool::stats() const {
  SpoolStats s = counters_;
  s.bytes = bytes_;
  s.readings = records_.size();
  std::size_t least = records_.size();
  for (const Reader& rd : readers_) least = std::min(least, rd.cursor);
  s.unread = records_.size() - least;
  s.oldestSeq = records_.empty() ? 0 : records_.front().seq;
  return s;
}

}  // namespace citygate::spool
