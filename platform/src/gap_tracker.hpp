// GapTracker: which seqs of each (gateway, epoch) have not arrived, and when to ask the gateway
// for them again (Command.refill). Pure state: no I/O, no clock of its own (every call takes
// `now`), not thread-safe (the caller holds its lock).
//
// A stream is one (gateway_id, epoch): the seq starts at 1 in every epoch, so a new epoch is a new
// seq space. The tracker keeps the highest seq seen and the missing ranges ("pieces", disjoint,
// at most Options::maxPieces per stream: past that the oldest piece is given up as lost). A piece
// is first a reorder: QoS 1 redelivery and a broker failover deliver out of order. Once it has
// been missing for the grace period it is a gap: it is requested (at most kMaxRefillSeqs seqs per
// request, the gateway's limit), asked again with exponential backoff on FAILED, EXPIRED or no
// answer, and given up for good when the gateway no longer retains it (REFUSED with
// REFILL_UNAVAILABLE, or DONE with `missing` > 0 and still absent after the grace period).
//
// Each gap (a piece when it first became due, with what later splits it) is reported through
// events() as Opened once and Closed once (refilled, or lost when any of it was lost), for the
// gaps table.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace citygate::ingest {

using SteadyTime = std::chrono::steady_clock::time_point;

// The gateway's limit on one refill (commands.proto: Refill.to_seq).
inline constexpr std::uint64_t kMaxRefillSeqs = 100000;

struct StreamKey {
  std::string gatewayId;
  std::string epoch;
  auto operator<=>(const StreamKey&) const = default;
};

enum class GapState : std::uint8_t { Open, Refilled, Lost };
const char* gapStateName(GapState s);

// What the gateway answered (CommandResult.status), as far as the tracker cares.
enum class RefillAnswer : std::uint8_t {
  Accepted,     // queued: wait for DONE
  Done,         // resent what it had (`missing` seqs of the range it had no longer)
  Unavailable,  // REFUSED with REFILL_UNAVAILABLE: not retained, lost for good
  Failed,       // FAILED, EXPIRED, or another refusal: ask again later
};

struct RefillRequest {
  std::string requestId;
  StreamKey key;
  std::uint64_t fromSeq = 0;
  std::uint64_t toSeq = 0;
  std::uint32_t attempt = 0;  // 0 the first time
};

struct GapEvent {
  enum class Kind : std::uint8_t { Opened, Closed, Asked };
  Kind kind = Kind::Opened;
  StreamKey key;
  std::uint64_t fromSeq = 0;  // the gap's first seq when it opened (its id in the gaps table)
  std::uint64_t toSeq = 0;
  GapState state = GapState::Open;  // Closed: Refilled or Lost
  std::uint64_t lostSeqs = 0;       // Closed: how many of its seqs were lost
};

struct StreamCounts {
  std::uint64_t highest = 0;
  std::uint64_t missingSeqs = 0;  // now (reorders inside the grace period included)
  std::uint64_t openGaps = 0;     // gaps (past the grace period) not closed
  std::uint64_t filledSeqs = 0;   // arrived after they were noted missing
  std::uint64_t lostSeqs = 0;     // given up
  std::uint64_t refilledGaps = 0;
  std::uint64_t lostGaps = 0;
};

class GapTracker {
 public:
  struct Options {
    std::chrono::milliseconds grace{2000};           // missing this long: a gap, requested
    std::chrono::milliseconds answerTimeout{10000};  // no answer (or no DONE after ACCEPTED)
    std::chrono::milliseconds backoffMin{2000};      // then doubled per attempt
    std::chrono::milliseconds backoffMax{60000};
    std::size_t maxPieces = 10000;  // per stream
  };

  explicit GapTracker(Options o) : opts_(o) {}

  // Restores a stream after a restart: its highest stored seq, the holes below it (from the
  // readings table), and which of them belong to gaps already opened (they are due at once) or
  // lost (not tracked again). Holes in no known gap wait for the grace period like new ones.
  struct KnownGap {
    std::uint64_t fromSeq = 0;
    std::uint64_t toSeq = 0;
    GapState state = GapState::Open;
  };
  void restore(const StreamKey& key, std::uint64_t highest,
               const std::vector<std::pair<std::uint64_t, std::uint64_t>>& holes, const std::vector<KnownGap>& gaps,
               SteadyTime now);

  // One stored seq. Returns true when it was missing (a reorder or a refill filled it).
  bool observe(const StreamKey& key, std::uint64_t seq, SteadyTime now);

  // The refills to send now (new gaps, and asks again whose backoff is over); the caller
  // publishes them with the ids given by `newId`.
  template <class NewId>
  std::vector<RefillRequest> due(SteadyTime now, NewId&& newId) {
    std::vector<RefillRequest> out;
    collectDue(now, out);
    for (auto& r : out) {
      r.requestId = newId();
      bindRequest(r, now);
    }
    return out;
  }

  // The gateway's answer to a request; unknown ids (an answer to a request given up, or another
  // platform's) are ignored and false is returned.
  bool answer(const std::string& requestId, RefillAnswer a, std::uint64_t missing, SteadyTime now);

  std::vector<GapEvent> takeEvents() { return std::exchange(events_, {}); }
  StreamCounts counts(const StreamKey& key) const;
  std::vector<StreamKey> streams() const;
  std::size_t requestsInFlight() const { return requests_.size(); }

 private:
  struct Piece {
    std::uint64_t to = 0;
    SteadyTime since;                    // missing since
    std::optional<std::uint64_t> gap;    // the gap it belongs to (its fromSeq), once due
    std::optional<SteadyTime> nextAsk;   // backoff: not before
    std::string requestId;               // in flight
    std::optional<SteadyTime> settleBy;  // DONE: what has not come by then is asked again / lost
    bool doneWithMissing = false;        // DONE said part of the range is no longer retained
    std::uint32_t attempts = 0;
  };
  struct Gap {
    std::uint64_t to = 0;
    std::uint64_t pieces = 0;
    std::uint64_t lost = 0;
  };
  struct Stream {
    std::uint64_t highest = 0;
    std::map<std::uint64_t, Piece> pieces;  // by first seq
    std::map<std::uint64_t, Gap> gaps;      // open gaps, by first seq
    StreamCounts counts;
  };
  struct Request {
    StreamKey key;
    std::uint64_t from = 0;
    std::uint64_t to = 0;
    SteadyTime sentAt;
  };

  void addPiece(const StreamKey& key, Stream& s, std::uint64_t from, std::uint64_t to, SteadyTime since);
  void removePiece(const StreamKey& key, Stream& s, std::map<std::uint64_t, Piece>::iterator it, bool lost);
  void collectDue(SteadyTime now, std::vector<RefillRequest>& out);
  void bindRequest(const RefillRequest& r, SteadyTime now);
  void retry(Piece& p, SteadyTime now);
  std::chrono::milliseconds backoff(std::uint32_t attempts) const;

  Options opts_;
  std::map<StreamKey, Stream> streams_;
  std::map<std::string, Request> requests_;
  std::vector<GapEvent> events_;
};

}  // namespace citygate::ingest
