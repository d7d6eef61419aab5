#include "gap_tracker.hpp"

#include <algorithm>

namespace citygate::ingest {

const char* gapStateName(GapState s) {
  switch (s) {
    case GapState::Open:
      return "open";
    case GapState::Refilled:
      return "refilled";
    case GapState::Lost:
      return "lost";
  }
  return "open";
}

std::chrono::milliseconds GapTracker::backoff(std::uint32_t attempts) const {
  auto d = opts_.backoffMin;
  for (std::uint32_t i = 1; i < attempts && d < opts_.backoffMax; ++i) d *= 2;
  return std::min(d, opts_.backoffMax);
}

void GapTracker::addPiece(const StreamKey& key, Stream& s, std::uint64_t from, std::uint64_t to, SteadyTime since) {
  while (!s.pieces.empty() && s.pieces.size() >= opts_.maxPieces) {
    removePiece(key, s, s.pieces.begin(), true);  // bounded: the oldest is given up
  }
  Piece p;
  p.to = to;
  p.since = since;
  s.pieces.emplace(from, p);
  s.counts.missingSeqs += to - from + 1;
}

void GapTracker::removePiece(const StreamKey& key, Stream& s, std::map<std::uint64_t, Piece>::iterator it, bool lost) {
  const std::uint64_t from = it->first;
  const Piece p = it->second;
  const std::uint64_t n = p.to - from + 1;
  s.pieces.erase(it);
  s.counts.missingSeqs -= n;
  if (lost) s.counts.lostSeqs += n;
  if (!p.gap) {
    if (lost) {  // given up before it was ever asked for (too many pieces): still recorded
      events_.push_back({GapEvent::Kind::Opened, key, from, p.to, GapState::Open, 0});
      events_.push_back({GapEvent::Kind::Closed, key, from, p.to, GapState::Lost, n});
      ++s.counts.lostGaps;
    }
    return;
  }
  auto g = s.gaps.find(*p.gap);
  if (g == s.gaps.end()) return;
  if (lost) g->second.lost += n;
  if (--g->second.pieces != 0) return;
  const GapState state = g->second.lost != 0 ? GapState::Lost : GapState::Refilled;
  events_.push_back({GapEvent::Kind::Closed, key, g->first, g->second.to, state, g->second.lost});
  --s.counts.openGaps;
  ++(state == GapState::Lost ? s.counts.lostGaps : s.counts.refilledGaps);
  s.gaps.erase(g);
}

void GapTracker::restore(const StreamKey& key, std::uint64_t highest,
                         const std::vector<std::pair<std::uint64_t, std::uint64_t>>& holes,
                         const std::vector<KnownGap>& gaps, SteadyTime now) {
  Stream& s = streams_[key];
  s.highest = std::max(s.highest, highest);
  for (const auto& [from, to] : holes) {
    const auto known = std::find_if(gaps.begin(), gaps.end(),
                                    [f = from](const KnownGap& g) { return g.fromSeq <= f && f <= g.toSeq; });
    if (known != gaps.end() && known->state == GapState::Lost) continue;  // given up before
    if (known != gaps.end() && known->state == GapState::Open) {
      addPiece(key, s, from, to, now - opts_.grace);
      auto it = s.pieces.find(from);
      if (it == s.pieces.end()) continue;
      it->second.gap = known->fromSeq;
      auto [g, added] = s.gaps.try_emplace(known->fromSeq, Gap{known->toSeq, 0, 0});
      if (added) ++s.counts.openGaps;
      ++g->second.pieces;
      continue;
    }
    addPiece(key, s, from, to, now);
  }
  for (const auto& g : gaps) {
    if (g.state == GapState::Open && !s.gaps.contains(g.fromSeq)) {
      events_.push_back({GapEvent::Kind::Closed, key, g.fromSeq, g.toSeq, GapState::Refilled, 0});
    }
  }
}

bool GapTracker::observe(const StreamKey& key, std::uint64_t seq, SteadyTime now) {
  Stream& s = streams_[key];
  if (seq > s.highest) {
    if (seq > s.highest + 1) addPiece(key, s, s.highest + 1, seq - 1, now);
    s.highest = seq;
    return false;
  }
  auto it = s.pieces.upper_bound(seq);
  if (it == s.pieces.begin()) return false;
  --it;
  if (it->second.to < seq) return false;
  const std::uint64_t from = it->first;
  Piece p = it->second;
  it->second.to = seq - 1;  // keep the gap's count while splitting: one piece becomes 0..2
  std::uint64_t added = 0;
  if (seq < p.to) {
    Piece right = p;
    s.pieces.emplace(seq + 1, right);
    ++added;
  }
  s.counts.missingSeqs -= 1;
  ++s.counts.filledSeqs;
  if (from < seq) {
    if (p.gap && added != 0) ++s.gaps[*p.gap].pieces;
    return true;
  }
  // The left part is empty: drop it (as filled, never lost).
  s.pieces.erase(from);
  if (p.gap) {
    auto g = s.gaps.find(*p.gap);
    if (g != s.gaps.end()) {
      g->second.pieces += added;
      if (--g->second.pieces == 0) {
        const GapState state = g->second.lost != 0 ? GapState::Lost : GapState::Refilled;
        events_.push_back({GapEvent::Kind::Closed, key, g->first, g->second.to, state, g->second.lost});
        --s.counts.openGaps;
        ++(state == GapState::Lost ? s.counts.lostGaps : s.counts.refilledGaps);
        s.gaps.erase(g);
      }
    }
  }
  return true;
}

void GapTracker::retry(Piece& p, SteadyTime now) {
  p.requestId.clear();
  p.settleBy.reset();
  ++p.attempts;
  p.nextAsk = now + backoff(p.attempts);
}

void GapTracker::collectDue(SteadyTime now, std::vector<RefillRequest>& out) {
  // Requests without an answer in time: asked again after a backoff.
  for (auto r = requests_.begin(); r != requests_.end();) {
    if (now - r->second.sentAt < opts_.answerTimeout) {
      ++r;
      continue;
    }
    auto s = streams_.find(r->second.key);
    if (s != streams_.end()) {
      for (auto it = s->second.pieces.lower_bound(r->second.from);
           it != s->second.pieces.end() && it->first <= r->second.to; ++it) {
        if (it->second.requestId == r->first) retry(it->second, now);
      }
    }
    r = requests_.erase(r);
  }
  for (auto& [key, s] : streams_) {
    for (auto it = s.pieces.begin(); it != s.pieces.end();) {
      Piece& p = it->second;
      if (!p.requestId.empty()) {
        ++it;
        continue;
      }
      if (p.settleBy && now >= *p.settleBy) {
        if (p.doneWithMissing) {  // the gateway resent all it had: the rest is gone
          auto next = std::next(it);
          removePiece(key, s, it, true);
          it = next;
          continue;
        }
        retry(p, now);  // DONE, yet not all came: ask again
      }
      if (p.settleBy) {
        ++it;
        continue;
      }
      const bool ready = p.gap ? (!p.nextAsk || now >= *p.nextAsk) : now - p.since >= opts_.grace;
      if (!ready) {
        ++it;
        continue;
      }
      const std::uint64_t from = it->first;
      if (!p.gap) {
        p.gap = from;
        s.gaps[from] = Gap{p.to, 1, 0};
        ++s.counts.openGaps;
        events_.push_back({GapEvent::Kind::Opened, key, from, p.to, GapState::Open, 0});
      }
      if (p.to - from + 1 > kMaxRefillSeqs) {  // one request per kMaxRefillSeqs: split the piece
        Piece rest = p;
        rest.nextAsk = p.nextAsk;
        s.pieces.emplace(from + kMaxRefillSeqs, rest);
        ++s.gaps[*p.gap].pieces;
        p.to = from + kMaxRefillSeqs - 1;
      }
      out.push_back(RefillRequest{"", key, from, p.to, p.attempts});
      ++it;
    }
  }
}

void GapTracker::bindRequest(const RefillRequest& r, SteadyTime now) {
  requests_[r.requestId] = Request{r.key, r.fromSeq, r.toSeq, now};
  auto s = streams_.find(r.key);
  if (s == streams_.end()) return;
  auto it = s->second.pieces.find(r.fromSeq);
  if (it != s->second.pieces.end()) it->second.requestId = r.requestId;
  events_.push_back({GapEvent::Kind::Asked, r.key,
                     it != s->second.pieces.end() && it->second.gap ? *it->second.gap : r.fromSeq, r.toSeq,
                     GapState::Open, 0});
}

bool GapTracker::answer(const std::string& requestId, RefillAnswer a, std::uint64_t missing, SteadyTime now) {
  auto r = requests_.find(requestId);
  if (r == requests_.end()) return false;
  const Request req = r->second;
  if (a == RefillAnswer::Accepted) {
    r->second.sentAt = now;  // the timeout now waits for DONE
    return true;
  }
  requests_.erase(r);
  auto s = streams_.find(req.key);
  if (s == streams_.end()) return true;
  auto& pieces = s->second.pieces;
  for (auto it = pieces.lower_bound(req.from); it != pieces.end() && it->first <= req.to;) {
    Piece& p = it->second;
    if (p.requestId != requestId) {
      ++it;
      continue;
    }
    switch (a) {
      case RefillAnswer::Done:
        p.requestId.clear();
        p.settleBy = now + opts_.grace;
        p.doneWithMissing = missing != 0;
        ++it;
        break;
      case RefillAnswer::Unavailable: {
        auto next = std::next(it);
        removePiece(req.key, s->second, it, true);
        it = next;
        break;
      }
      case RefillAnswer::Failed:
      case RefillAnswer::Accepted:
        retry(p, now);
        ++it;
        break;
    }
  }
  return true;
}

StreamCounts GapTracker::counts(const StreamKey& key) const {
  auto s = streams_.find(key);
  if (s == streams_.end()) return {};
  StreamCounts c = s->second.counts;
  c.highest = s->second.highest;
  return c;
}

std::vector<StreamKey> GapTracker::streams() const {
  std::vector<StreamKey> out;
  out.reserve(streams_.size());
  for (const auto& [k, s] : streams_) out.push_back(k);
  return out;
}

}  // namespace citygate::ingest
