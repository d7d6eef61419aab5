#include "outputs/mqtt/retention.hpp"

#include <algorithm>

namespace citygate::mqtt {

void Retention::add(std::uint64_t firstSeq, std::uint64_t lastSeq, std::uint32_t count, std::string payload,
                    SteadyTime at) {
  if (!enabled() || payload.size() > maxBytes_ || firstSeq == 0 || lastSeq < firstSeq) return;
  if (!batches_.empty() && firstSeq <= batches_.back().lastSeq) return;
  bytes_ += payload.size();
  batches_.push_back(Batch{firstSeq, lastSeq, count, std::move(payload), at});
  while (bytes_ > maxBytes_) {
    bytes_ -= batches_.front().payload.size();
    batches_.pop_front();
  }
  expire(at);
}

void Retention::expire(SteadyTime now) {
  while (!batches_.empty() && now - batches_.front().at > maxAge_) {
    bytes_ -= batches_.front().payload.size();
    batches_.pop_front();
  }
}

Retention::Found Retention::find(std::uint64_t from, std::uint64_t to, std::uint64_t acked) const {
  Found f;
  const std::uint64_t top = std::min(to, acked);
  std::uint64_t next = from;  // the first seq of the range not yet accounted for
  for (const auto& b : batches_) {
    if (b.lastSeq < from) continue;
    if (b.firstSeq > to) break;
    f.batches.push_back(&b);
    f.readings += b.count;
    if (b.firstSeq > next && next <= top) f.missing += std::min(b.firstSeq - 1, top) - next + 1;
    next = std::max(next, b.lastSeq + 1);
  }
  if (next <= top) f.missing += top - next + 1;
  return f;
}

}  // namespace citygate::mqtt
