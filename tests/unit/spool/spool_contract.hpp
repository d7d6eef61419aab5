// The Spool contract, run against every implementation (memory and file) with the same cases.
// A factory type provides:
//   static std::unique_ptr<Spool> make(maxBytes, whenFull)  a spool on the current state
//   static void reset()                                     forget persisted state between cases
//   static void settle(Spool&)                              wait (with a deadline) until every
//                                                           appended record is readable
//   static std::uint64_t slack()                            bytes allowed beyond max_bytes
//   static constexpr bool kDurable                          survives a restart
//   static std::unique_ptr<Spool> restart(std::unique_ptr<Spool>, maxBytes, whenFull, bool crash)
//       close it (crash: stop as kill -9 would) and open it again on the same state
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "citygate/v1/reading.pb.h"
#include "core/spool.hpp"
#include "core/wire.hpp"

namespace spool_contract {

using namespace citygate::core;
namespace pb = citygate::v1;

// Frames the records a read hands out as a ReadingBatch's readings, as the native sink does.
class BatchFramer final : public RecordVisitor {
 public:
  explicit BatchFramer(std::string& out) : out_(out) {}
  void record(std::uint64_t /*seq*/, std::string_view record) override {
    wire::appendLengthDelimited(out_, pb::ReadingBatch::kReadingsFieldNumber, record);
  }

 private:
  std::string& out_;
};

// readBatch() into a ReadingBatch payload.
inline ReadResult readInto(Spool& s, std::size_t maxRecords, std::size_t maxBytes, std::string& out,
                           ReaderId reader = 0) {
  BatchFramer framer(out);
  return s.readBatch(reader, maxRecords, maxBytes, framer);
}

inline std::vector<std::uint64_t> seqsOf(const std::string& payload) {
  pb::ReadingBatch b;
  REQUIRE(b.ParseFromString(payload));
  std::vector<std::uint64_t> s;
  for (const auto& r : b.readings()) s.push_back(r.seq());
  return s;
}

inline std::string record(std::uint64_t seq, std::size_t pad = 20) {
  pb::Reading r;
  r.set_seq(seq);
  r.set_sensor_id(std::string(pad, 'x'));
  return r.SerializeAsString();
}

// Reads everything readable in batches of `batch` records, returning the seqs.
inline std::vector<std::uint64_t> drain(Spool& s, std::size_t batch = 1000,
                                        std::vector<ReadResult>* results = nullptr) {
  std::vector<std::uint64_t> all;
  for (;;) {
    std::string out;
    const ReadResult r = readInto(s, batch, 1 << 24, out);
    if (r.count == 0) break;
    if (results) results->push_back(r);
    const auto seqs = seqsOf(out);
    REQUIRE(seqs.size() == r.count);
    REQUIRE(seqs.front() == r.firstSeq);
    REQUIRE(seqs.back() == r.lastSeq);
    all.insert(all.end(), seqs.begin(), seqs.end());
  }
  return all;
}

inline std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = from; i <= to; ++i) v.push_back(i);
  return v;
}

// Two readers (two sinks): each reads every record on its own cursor, in order; acknowledge()
// (the lowest both have) frees records; one reader goes back after a lost link without moving the
// other; a reader that does not read never stops the other.
template <class F>
void twoReaders() {
  F::reset();
  auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);
  const ReaderId second = s->addReader();
  CHECK(second == 1);
  CHECK(s->readers() == 2);
  for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  F::settle(*s);
  std::string out;
  CHECK(readInto(*s, 100, 1 << 20, out, 0).lastSeq == 10);
  CHECK(seqsOf(out) == range(1, 10));
  CHECK(s->unreadBy(0) == 0);
  CHECK(s->unreadBy(second) == 10);  // the other reader has read nothing
  CHECK(s->stats().unread == 10);    // the reader furthest behind
  out.clear();
  CHECK(readInto(*s, 4, 1 << 20, out, second).lastSeq == 4);
  CHECK(seqsOf(out) == range(1, 4));
  s->acknowledge(4);  // both have 1..4
  CHECK(s->stats().readings == 6);
  // The second reader lost its link after delivering up to 2 (acknowledged already: from 5).
  s->rewindReader(second, 2);
  out.clear();
  readInto(*s, 100, 1 << 20, out, second);
  CHECK(seqsOf(out) == range(5, 10));
  // The first lost its link having delivered up to 7: it reads 8.. again, the second is untouched.
  s->rewindReader(0, 7);
  CHECK(s->unreadBy(0) == 3);
  CHECK(s->unreadBy(second) == 0);
  out.clear();
  readInto(*s, 100, 1 << 20, out, 0);
  CHECK(seqsOf(out) == range(8, 10));
  for (std::uint64_t i = 11; i <= 12; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);
  F::settle(*s);
  CHECK(s->unreadBy(0) == 2);
  CHECK(s->unreadBy(second) == 2);
  s->acknowledge(12);
  CHECK(s->stats().readings == 0);
  CHECK(s->unreadBy(0) == 0);
  CHECK(s->unreadBy(second) == 0);
  s->close();
}

// A reader that never reads (its sink is down) holds records in the spool; when the spool fills,
// DROP_OLDEST still makes room, and that reader goes on from the oldest record kept.
template <class F>
void laggingReaderDropOldest() {
  F::reset();
  const std::uint64_t cap = 64 * 1024;
  auto s = F::make(cap, pb::SpoolConfig::DROP_OLDEST);
  const ReaderId lagging = s->addReader();
  std::uint64_t last = 0;
  for (std::uint64_t i = 1; i <= 2000; ++i) {
    const auto res = s->append(i, record(i, 100));
    REQUIRE((res == AppendResult::Ok || res == AppendResult::OkDroppedOldest));
    last = i;
    if (i % 50 == 0) {
      F::settle(*s);
      std::string out;
      while (readInto(*s, 1000, 1 << 24, out, 0).count > 0) {
      }
    }
  }
  F::settle(*s);
  const SpoolStats st = s->stats();
  CHECK(st.dropped > 0);
  CHECK(st.bytes <= cap + F::slack());
  std::string out;
  readInto(*s, 100000, 1 << 30, out, lagging);
  const auto seqs = seqsOf(out);
  REQUIRE_FALSE(seqs.empty());
  CHECK(seqs.front() == st.oldestSeq);
  CHECK(seqs.back() == last);
  CHECK(seqs.size() == st.readings);
  s->close();
}

}  // namespace spool_contract

#define CITYGATE_SPOOL_CONTRACT(Factory)                                                                            \
  TEST_CASE_TEMPLATE("spool contract: two readers, one cursor each", F, Factory) {                                  \
    spool_contract::twoReaders<F>();                                                                                \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: a reader that never reads does not stop DROP_OLDEST", F, Factory) {           \
    spool_contract::laggingReaderDropOldest<F>();                                                                   \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: FIFO, cursor, acknowledge", F, Factory) {                                     \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                                        \
    for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);                   \
    F::settle(*s);                                                                                                  \
    CHECK(s->unread() == 10);                                                                                       \
    std::string out;                                                                                                \
    auto r = readInto(*s, 4, 1 << 20, out);                                                                         \
    CHECK(r.count == 4);                                                                                            \
    CHECK(r.firstSeq == 1);                                                                                         \
    CHECK(r.lastSeq == 4);                                                                                          \
    CHECK(seqsOf(out) == std::vector<std::uint64_t>{1, 2, 3, 4});                                                   \
    CHECK(s->unread() == 6);                                                                                        \
    out.clear();                                                                                                    \
    r = readInto(*s, 100, 1 << 20, out);                                                                            \
    CHECK(seqsOf(out) == std::vector<std::uint64_t>{5, 6, 7, 8, 9, 10});                                            \
    s->acknowledge(4);                                                                                              \
    CHECK(s->stats().readings == 6);                                                                                \
    CHECK(s->stats().oldestSeq == 5);                                                                               \
    s->rewind();                                                                                                    \
    out.clear();                                                                                                    \
    r = readInto(*s, 100, 1 << 20, out);                                                                            \
    CHECK(seqsOf(out) == std::vector<std::uint64_t>{5, 6, 7, 8, 9, 10});                                            \
    CHECK(s->stats().replayed == 6);                                                                                \
    s->acknowledge(10);                                                                                             \
    CHECK(s->stats().readings == 0);                                                                                \
    CHECK(s->unread() == 0);                                                                                        \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: DROP_OLDEST counts exactly what it drops", F, Factory) {                      \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    const std::uint64_t cap = 64 * 1024;                                                                            \
    auto s = F::make(cap, pb::SpoolConfig::DROP_OLDEST);                                                            \
    std::uint64_t appended = 0;                                                                                     \
    for (std::uint64_t i = 1; i <= 3000; ++i) {                                                                     \
      auto res = s->append(i, record(i, 100));                                                                      \
      REQUIRE((res == AppendResult::Ok || res == AppendResult::OkDroppedOldest));                                   \
      ++appended;                                                                                                   \
    }                                                                                                               \
    F::settle(*s);                                                                                                  \
    const auto st = s->stats();                                                                                     \
    CHECK(st.bytes <= cap + F::slack());                                                                            \
    CHECK(st.dropped + st.readings == appended);                                                                    \
    CHECK(st.oldestSeq == st.dropped + 1);                                                                          \
    std::string out;                                                                                                \
    auto r = readInto(*s, 1, 1 << 20, out);                                                                         \
    CHECK(r.firstSeq == st.dropped + 1);                                                                            \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: BLOCK_SOURCES refuses and keeps everything", F, Factory) {                    \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    auto s = F::make(64 * 1024, pb::SpoolConfig::BLOCK_SOURCES);                                                    \
    std::uint64_t seq = 0;                                                                                          \
    while (seq < 100000) {                                                                                          \
      auto res = s->append(seq + 1, record(seq + 1, 100));                                                          \
      if (res == AppendResult::Full) break;                                                                         \
      REQUIRE(res == AppendResult::Ok);                                                                             \
      ++seq;                                                                                                        \
    }                                                                                                               \
    F::settle(*s);                                                                                                  \
    CHECK(seq > 100);                                                                                               \
    CHECK(s->stats().dropped == 0);                                                                                 \
    CHECK(s->stats().readings == seq);                                                                              \
    CHECK(s->stats().blocked);                                                                                      \
    std::string out;                                                                                                \
    auto r = readInto(*s, 50, 1 << 20, out);                                                                        \
    s->acknowledge(r.lastSeq);                                                                                      \
    F::settle(*s);                                                                                                  \
    CHECK(s->append(seq + 1, record(seq + 1, 100)) == AppendResult::Ok);                                            \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: readBatch respects maxBytes but always makes progress", F, Factory) {         \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                                        \
    for (std::uint64_t i = 1; i <= 5; ++i) REQUIRE(s->append(i, record(i, 1000)) == AppendResult::Ok);              \
    F::settle(*s);                                                                                                  \
    std::string out;                                                                                                \
    auto r = readInto(*s, 100, 10, out);                                                                            \
    CHECK(r.count == 1);                                                                                            \
    out.clear();                                                                                                    \
    r = readInto(*s, 100, 2500, out);                                                                               \
    CHECK(r.count == 2);                                                                                            \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: acknowledging inside a batch keeps the rest", F, Factory) {                   \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                                        \
    for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i * 2, record(i * 2)) == AppendResult::Ok);           \
    F::settle(*s);                                                                                                  \
    CHECK(drain(*s).size() == 10);                                                                                  \
    s->acknowledge(11); /* not a batch boundary, not even a stored seq */                                           \
    CHECK(s->stats().readings == 5);                                                                                \
    CHECK(s->stats().oldestSeq == 12);                                                                              \
    s->rewind();                                                                                                    \
    CHECK(drain(*s) == std::vector<std::uint64_t>{12, 14, 16, 18, 20});                                             \
    s->acknowledge(20);                                                                                             \
    CHECK(s->stats().readings == 0);                                                                                \
    CHECK(s->stats().oldestSeq == 0);                                                                               \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: stats follow appends, reads and acknowledgements", F, Factory) {              \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                                        \
    const auto empty = s->stats();                                                                                  \
    CHECK(empty.readings == 0);                                                                                     \
    CHECK(empty.oldestSeq == 0);                                                                                    \
    CHECK(empty.maxBytes == (1u << 20));                                                                            \
    for (std::uint64_t i = 1; i <= 100; ++i) REQUIRE(s->append(i, record(i, 50)) == AppendResult::Ok);              \
    F::settle(*s);                                                                                                  \
    auto st = s->stats();                                                                                           \
    CHECK(st.readings == 100);                                                                                      \
    CHECK(st.unread == 100);                                                                                        \
    CHECK(s->unread() == 100);                                                                                      \
    CHECK(st.oldestSeq == 1);                                                                                       \
    const std::uint64_t payload = record(1, 50).size();                                                             \
    CHECK(st.bytes >= empty.bytes + 100 * payload);                                                                 \
    CHECK(st.bytesWritten >= 100 * payload);                                                                        \
    CHECK(st.dropped == 0);                                                                                         \
    CHECK(st.replayed == 0);                                                                                        \
    CHECK(st.corruptRecords == 0);                                                                                  \
    CHECK_FALSE(st.blocked);                                                                                        \
    std::vector<ReadResult> batches;                                                                                \
    CHECK(drain(*s, 30, &batches) == range(1, 100));                                                                \
    CHECK(batches.size() == 4);                                                                                     \
    CHECK(s->stats().unread == 0);                                                                                  \
    CHECK(s->stats().readings == 100);                                                                              \
    s->acknowledge(batches[0].lastSeq);                                                                             \
    s->acknowledge(batches[1].lastSeq);                                                                             \
    st = s->stats();                                                                                                \
    CHECK(st.readings == 40);                                                                                       \
    CHECK(st.oldestSeq == 61);                                                                                      \
    CHECK(st.bytes < empty.bytes + 100 * (payload + 16) + 4096);                                                    \
    s->rewind();                                                                                                    \
    CHECK(s->unread() == 40);                                                                                       \
    CHECK(drain(*s) == range(61, 100));                                                                             \
    CHECK(s->stats().replayed == 40);                                                                               \
    s->acknowledge(100);                                                                                            \
    CHECK(s->stats().readings == 0);                                                                                \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: DROP_OLDEST takes in-flight records that arrive off the count", F, Factory) { \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    const std::uint64_t cap = 64 * 1024;                                                                            \
    auto s = F::make(cap, pb::SpoolConfig::DROP_OLDEST);                                                            \
    std::uint64_t seq = 0;                                                                                          \
    while (s->stats().dropped == 0) {                                                                               \
      ++seq;                                                                                                        \
      auto res = s->append(seq, record(seq, 100));                                                                  \
      REQUIRE((res == AppendResult::Ok || res == AppendResult::OkDroppedOldest));                                   \
      if (seq == 20) {                                                                                              \
        F::settle(*s);                                                                                              \
        std::string out;                                                                                            \
        REQUIRE(readInto(*s, 20, 1 << 20, out).lastSeq == 20); /* in flight */                                      \
      }                                                                                                             \
    }                                                                                                               \
    F::settle(*s);                                                                                                  \
    const auto before = s->stats();                                                                                 \
    CHECK(before.dropped > 0);                                                                                      \
    s->acknowledge(20); /* the batch in flight did arrive */                                                        \
    const auto st = s->stats();                                                                                     \
    /* every appended record is exactly one of: delivered, dropped, still stored */                                 \
    CHECK(st.dropped + st.readings + 20 == seq);                                                                    \
    CHECK(st.dropped == before.dropped - std::min<std::uint64_t>(20, before.dropped));                              \
    s->rewind();                                                                                                    \
    const auto rest = drain(*s);                                                                                    \
    REQUIRE(!rest.empty());                                                                                         \
    CHECK(rest.front() == st.oldestSeq);                                                                            \
    CHECK(rest.back() == seq);                                                                                      \
    CHECK(rest.size() == st.readings);                                                                              \
    CHECK(rest.front() - 21 == st.dropped); /* the gap a subscriber sees equals the counter */                      \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: a restart keeps what was not acknowledged", F, Factory) {                     \
    using namespace spool_contract;                                                                                 \
    if (!F::kDurable) return;                                                                                       \
    F::reset();                                                                                                     \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                                        \
    for (std::uint64_t i = 1; i <= 20; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);                   \
    F::settle(*s);                                                                                                  \
    std::string out;                                                                                                \
    REQUIRE(readInto(*s, 5, 1 << 20, out).lastSeq == 5);                                                            \
    s->acknowledge(5);                                                                                              \
    REQUIRE(readInto(*s, 5, 1 << 20, out).lastSeq == 10); /* in flight when it stops */                             \
    s = F::restart(std::move(s), 1 << 20, pb::SpoolConfig::DROP_OLDEST, false);                                     \
    CHECK(s->recoveredNextSeq() == 21);                                                                             \
    CHECK(s->stats().readings == 15);                                                                               \
    CHECK(s->stats().oldestSeq == 6);                                                                               \
    CHECK(s->unread() == 15);                                                                                       \
    CHECK(drain(*s, 4) == range(6, 20));                                                                            \
    CHECK(s->stats().replayed == 15);                                                                               \
    s->rewind(); /* rewind after a restart starts at the oldest unacknowledged record again */                      \
    CHECK(drain(*s) == range(6, 20));                                                                               \
    s->acknowledge(20);                                                                                             \
    s = F::restart(std::move(s), 1 << 20, pb::SpoolConfig::DROP_OLDEST, false);                                     \
    CHECK(s->recoveredNextSeq() == 21);                                                                             \
    CHECK(s->stats().readings == 0);                                                                                \
    CHECK(s->unread() == 0);                                                                                        \
    CHECK(s->append(21, record(21)) == AppendResult::Ok);                                                           \
    F::settle(*s);                                                                                                  \
    CHECK(drain(*s) == range(21, 21));                                                                              \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: a crash loses nothing and repeats at most the unsaved acks", F, Factory) {    \
    using namespace spool_contract;                                                                                 \
    if (!F::kDurable) return;                                                                                       \
    F::reset();                                                                                                     \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                                        \
    for (std::uint64_t i = 1; i <= 300; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);                  \
    F::settle(*s);                                                                                                  \
    std::vector<ReadResult> batches;                                                                                \
    CHECK(drain(*s, 50, &batches) == range(1, 300));                                                                \
    for (std::size_t b = 0; b < 4; ++b) s->acknowledge(batches[b].lastSeq);                                         \
    for (std::uint64_t i = 301; i <= 310; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);                \
    s = F::restart(std::move(s), 1 << 20, pb::SpoolConfig::DROP_OLDEST, true);                                      \
    CHECK(s->recoveredNextSeq() == 311); /* exactly after the last append, even unsynced */                         \
    const auto seqs = drain(*s);                                                                                    \
    REQUIRE(!seqs.empty());                                                                                         \
    CHECK(seqs.front() <= 201);              /* duplicates allowed */                                               \
    CHECK(seqs == range(seqs.front(), 310)); /* gaps never */                                                       \
    CHECK(s->stats().replayed == seqs.size());                                                                      \
    s->close();                                                                                                     \
  }                                                                                                                 \
  TEST_CASE_TEMPLATE("spool contract: BLOCK_SOURCES keeps order across Full", F, Factory) {                         \
    using namespace spool_contract;                                                                                 \
    F::reset();                                                                                                     \
    auto s = F::make(64 * 1024, pb::SpoolConfig::BLOCK_SOURCES);                                                    \
    std::uint64_t seq = 1;                                                                                          \
    std::uint64_t delivered = 0;                                                                                    \
    std::vector<std::uint64_t> got;                                                                                 \
    for (int round = 0; round < 6; ++round) {                                                                       \
      while (s->append(seq, record(seq, 100)) != AppendResult::Full) ++seq;                                         \
      CHECK(s->stats().blocked);                                                                                    \
      F::settle(*s);                                                                                                \
      std::string out;                                                                                              \
      auto r = readInto(*s, 200, 1 << 24, out);                                                                     \
      REQUIRE(r.count > 0);                                                                                         \
      const auto seqs = seqsOf(out);                                                                                \
      got.insert(got.end(), seqs.begin(), seqs.end());                                                              \
      s->acknowledge(r.lastSeq);                                                                                    \
      delivered += r.count;                                                                                         \
      F::settle(*s);                                                                                                \
    }                                                                                                               \
    CHECK(s->stats().dropped == 0);                                                                                 \
    s->rewind();                                                                                                    \
    const auto rest = drain(*s);                                                                                    \
    got.insert(got.end(), rest.begin(), rest.end());                                                                \
    CHECK(got == range(1, seq - 1)); /* everything stored, in order, once */                                        \
    s->close();                                                                                                     \
  }
