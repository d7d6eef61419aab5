// Retention: the batches of readings the broker acknowledged, kept so that the platform can ask
// for a seq range again (Command.refill) after its broker lost what it had acknowledged (a
// RabbitMQ node with classic queues going down, a mosquitto restarted without persistence).
//
// What is kept is each batch's payload as it was published (a ReadingBatch: gateway_id, boot_id,
// readings, epoch), with its first and last seq, in seq order, bounded by bytes and by age
// (SpoolConfig.retain_bytes, retain_s): the oldest go first. It is kept in memory, not on the
// storage: refills must not wear the SD card, and a refill serves a broker's loss, not the
// gateway's (across a restart of the gateway the spool keeps every reading not yet acknowledged).
//
// Threading: executor only; time is passed in (the session's clock).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/time.hpp"

namespace citygate::mqtt {

class Retention {
 public:
  struct Batch {
    std::uint64_t firstSeq = 0;
    std::uint64_t lastSeq = 0;
    std::uint32_t count = 0;
    std::string payload;
    SteadyTime at;
  };

  // What a range [from, to] finds: the batches that hold any of it, the readings they carry, and
  // the seqs of the range that no kept batch covers (up to `acked`: what was acknowledged at all).
  struct Found {
    std::vector<const Batch*> batches;
    std::uint64_t readings = 0;
    std::uint64_t missing = 0;
  };

  Retention(std::uint64_t maxBytes, std::chrono::seconds maxAge) : maxBytes_(maxBytes), maxAge_(maxAge) {}

  bool enabled() const { return maxBytes_ > 0; }

  // A batch the broker acknowledged. Batches come in seq order; one that overlaps what is kept
  // (the late acknowledgement of a batch sent again) is ignored.
  void add(std::uint64_t firstSeq, std::uint64_t lastSeq, std::uint32_t count, std::string payload, SteadyTime at);

  // Drops what is older than maxAge at `now`.
  void expire(SteadyTime now);

  Found find(std::uint64_t from, std::uint64_t to, std::uint64_t acked) const;

  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t firstSeq() const { return batches_.empty() ? 0 : batches_.front().firstSeq; }
  std::uint64_t lastSeq() const { return batches_.empty() ? 0 : batches_.back().lastSeq; }

 private:
  std::uint64_t maxBytes_;
  std::chrono::seconds maxAge_;
  std::deque<Batch> batches_;
  std::uint64_t bytes_ = 0;
};

}  // namespace citygate::mqtt
