// The Spool contract, run against every implementation (memory and file) with the same cases.
// A factory type provides: static std::unique_ptr<Spool> make(maxBytes, whenFull), and
// static void reset() to forget persisted state between cases.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "citygate/v1/reading.pb.h"
#include "spool/spool.hpp"

namespace spool_contract {

using namespace citygate::spool;
namespace pb = citygate::v1;

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

}  // namespace spool_contract

#define CITYGATE_SPOOL_CONTRACT(Factory)                                                                   \
  TEST_CASE_TEMPLATE("spool contract: FIFO, cursor, acknowledge", F, Factory) {                            \
    using namespace spool_contract;                                                                        \
    F::reset();                                                                                            \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                               \
    for (std::uint64_t i = 1; i <= 10; ++i) REQUIRE(s->append(i, record(i)) == AppendResult::Ok);          \
    F::settle(*s);                                                                                         \
    CHECK(s->unread() == 10);                                                                              \
    std::string out;                                                                                       \
    auto r = s->readBatch(4, 1 << 20, out);                                                                \
    CHECK(r.count == 4);                                                                                   \
    CHECK(r.firstSeq == 1);                                                                                \
    CHECK(r.lastSeq == 4);                                                                                 \
    CHECK(seqsOf(out) == std::vector<std::uint64_t>{1, 2, 3, 4});                                          \
    CHECK(s->unread() == 6);                                                                               \
    out.clear();                                                                                           \
    r = s->readBatch(100, 1 << 20, out);                                                                   \
    CHECK(seqsOf(out) == std::vector<std::uint64_t>{5, 6, 7, 8, 9, 10});                                   \
    s->acknowledge(4);                                                                                     \
    CHECK(s->stats().readings == 6);                                                                       \
    CHECK(s->stats().oldestSeq == 5);                                                                      \
    s->rewind();                                                                                           \
    out.clear();                                                                                           \
    r = s->readBatch(100, 1 << 20, out);                                                                   \
    CHECK(seqsOf(out) == std::vector<std::uint64_t>{5, 6, 7, 8, 9, 10});                                   \
    CHECK(s->stats().replayed == 6);                                                                       \
    s->acknowledge(10);                                                                                    \
    CHECK(s->stats().readings == 0);                                                                       \
    CHECK(s->unread() == 0);                                                                               \
    s->close();                                                                                            \
  }                                                                                                        \
  TEST_CASE_TEMPLATE("spool contract: DROP_OLDEST counts exactly what it drops", F, Factory) {             \
    using namespace spool_contract;                                                                        \
    F::reset();                                                                                            \
    const std::uint64_t cap = 64 * 1024;                                                                   \
    auto s = F::make(cap, pb::SpoolConfig::DROP_OLDEST);                                                   \
    std::uint64_t appended = 0;                                                                            \
    for (std::uint64_t i = 1; i <= 3000; ++i) {                                                            \
      auto res = s->append(i, record(i, 100));                                                             \
      REQUIRE((res == AppendResult::Ok || res == AppendResult::OkDroppedOldest));                          \
      ++appended;                                                                                          \
    }                                                                                                      \
    F::settle(*s);                                                                                         \
    const auto st = s->stats();                                                                            \
    CHECK(st.bytes <= cap + F::slack());                                                                   \
    CHECK(st.dropped + st.readings == appended);                                                           \
    CHECK(st.oldestSeq == st.dropped + 1);                                                                 \
    std::string out;                                                                                       \
    auto r = s->readBatch(1, 1 << 20, out);                                                                \
    CHECK(r.firstSeq == st.dropped + 1);                                                                   \
    s->close();                                                                                            \
  }                                                                                                        \
  TEST_CASE_TEMPLATE("spool contract: BLOCK_SOURCES refuses and keeps everything", F, Factory) {           \
    using namespace spool_contract;                                                                        \
    F::reset();                                                                                            \
    auto s = F::make(64 * 1024, pb::SpoolConfig::BLOCK_SOURCES);                                           \
    std::uint64_t seq = 0;                                                                                 \
    while (seq < 100000) {                                                                                 \
      auto res = s->append(seq + 1, record(seq + 1, 100));                                                 \
      if (res == AppendResult::Full) break;                                                                \
      REQUIRE(res == AppendResult::Ok);                                                                    \
      ++seq;                                                                                               \
    }                                                                                                      \
    F::settle(*s);                                                                                         \
    CHECK(seq > 100);                                                                                      \
    CHECK(s->stats().dropped == 0);                                                                        \
    CHECK(s->stats().readings == seq);                                                                     \
    CHECK(s->stats().blocked);                                                                             \
    std::string out;                                                                                       \
    auto r = s->readBatch(50, 1 << 20, out);                                                               \
    s->acknowledge(r.lastSeq);                                                                             \
    F::settle(*s);                                                                                         \
    CHECK(s->append(seq + 1, record(seq + 1, 100)) == AppendResult::Ok);                                   \
    s->close();                                                                                            \
  }                                                                                                        \
  TEST_CASE_TEMPLATE("spool contract: readBatch respects maxBytes but always makes progress", F, Factory) { \
    using namespace spool_contract;                                                                        \
    F::reset();                                                                                            \
    auto s = F::make(1 << 20, pb::SpoolConfig::DROP_OLDEST);                                               \
    for (std::uint64_t i = 1; i <= 5; ++i) REQUIRE(s->append(i, record(i, 1000)) == AppendResult::Ok);     \
    F::settle(*s);                                                                                         \
    std::string out;                                                                                       \
    auto r = s->readBatch(100, 10, out);                                                                   \
    CHECK(r.count == 1);                                                                                   \
    out.clear();                                                                                           \
    r = s->readBatch(100, 2500, out);                                                                      \
    CHECK(r.count == 2);                                                                                   \
    s->close();                                                                                            \
  }
