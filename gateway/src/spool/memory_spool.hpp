// MemorySpool: the Spool contract in RAM, bounded by max_bytes (records plus a fixed per-record
// overhead, so the accounting matches the file spool's). Used for diskless setups and as the
// reference implementation the contract suite checks the file spool against.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "spool/names.hpp"

namespace citygate::spool {

class MemorySpool final : public Spool {
 public:
  static constexpr std::uint64_t kRecordOverhead = 16;  // seq + length + crc, as on disk

  MemorySpool(std::uint64_t maxBytes, pb::SpoolConfig::WhenFull whenFull);

  AppendResult append(std::uint64_t seq, std::string_view record) override;
  ReaderId addReader() override;
  std::size_t readers() const override { return readers_.size(); }
  ReadResult readBatch(ReaderId reader, std::size_t maxRecords, std::size_t maxBytes, RecordVisitor& to) override;
  void acknowledge(std::uint64_t lastSeq) override;
  void rewindReader(ReaderId reader, std::uint64_t afterSeq) override;
  std::uint64_t unreadBy(ReaderId reader) const override { return records_.size() - readers_[reader].cursor; }
  SpoolStats stats() const override;
  std::uint64_t recoveredNextSeq() const override { return 0; }
  void setReadableCallback(std::function<void()> cb) override { readable_ = std::move(cb); }
  void close() override {}

  // Hands over every unacknowledged record, oldest first, and empties the spool (counters stay).
  std::deque<std::pair<std::uint64_t, std::string>> release();
  // Records handed out (to any reader) and not yet acknowledged.
  std::uint64_t inFlight() const;

 private:
  struct Record {
    std::uint64_t seq;
    std::string bytes;
  };
  std::deque<Record> records_;
  struct Reader {
    std::size_t cursor = 0;        // index of the first unread record
    std::size_t maxHandedOut = 0;  // records handed out at least once (for `replayed`)
  };
  // Every cursor and count moves down by one: the front record left.
  void popFront();

  std::deque<std::uint64_t> droppedInFlight_;  // seqs dropped after they were handed out
  std::vector<Reader> readers_{1};
  std::uint64_t bytes_ = 0;
  std::uint64_t maxBytes_;
  pb::SpoolConfig::WhenFull whenFull_;
  SpoolStats counters_;
  std::function<void()> readable_;
};

}  // namespace citygate::spool
