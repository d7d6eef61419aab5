// Platform commands as bytes from the broker: decoding and checking a citygate.v1.Command, its
// expiry, and the bounded memory of request ids that answers a duplicate once. Pure: no sockets,
// the time comes in as an argument; fuzzed (tests/fuzz/command_decoder.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "citygate/v1/commands.pb.h"
#include "core/time.hpp"

namespace citygate::commands {

namespace pb = citygate::v1;

inline constexpr std::size_t kMaxCommandBytes = 4096;  // a Command is a few dozen bytes
inline constexpr std::size_t kMaxRequestId = 64;
inline constexpr std::size_t kMaxDeviceId = 64;
inline constexpr std::size_t kMaxDownlinkPayload = 222;      // the EU868 maximum at the fastest data rate
inline constexpr std::uint64_t kMaxRefillReadings = 100000;  // one Refill: at most this many seqs
inline constexpr std::uint32_t kDefaultDedupeWindow = 1024;
inline constexpr std::uint32_t kDefaultMaxExpiryS = 3600;

struct Decoded {
  pb::Command command;                                       // as much as could be read (request_id, for the answer)
  pb::WriteRefusal refusal = pb::WRITE_REFUSAL_UNSPECIFIED;  // BAD_COMMAND when it is not valid
  std::string detail;                                        // why, for people (no payload bytes echoed)
  bool ok() const { return refusal == pb::WRITE_REFUSAL_UNSPECIFIED; }
};

// Parses `payload` as a Command and checks its shape: at most kMaxCommandBytes; a request id of
// 1..kMaxRequestId printable ASCII characters; a device id (not for a refill); exactly one action; an expiry; a write
// names its point by field or by table (COIL / HOLDING_REGISTER) and address, with a finite value;
// a downlink has an FPort of 1..223 and at most kMaxDownlinkPayload bytes; a refill an epoch and
// 1 <= from_seq <= to_seq, at most kMaxRefillReadings seqs. A payload that is not a
// Command at all keeps no request id (nothing can be answered).
Decoded decodeCommand(std::string_view payload);

// EXPIRED when `now` is past the command's expiry; BAD_COMMAND when the expiry is further ahead
// than `maxAhead` (a command must not wait days in a queue to be carried out); nullopt otherwise.
std::optional<Decoded> checkExpiry(const pb::Command& command, WallTime now, std::chrono::seconds maxAhead);

// The request ids of the last `capacity` commands: a bounded FIFO and a set, one string each.
class RecentIds {
 public:
  explicit RecentIds(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  // True when `id` is new (it is remembered now); false for a duplicate.
  bool insert(const std::string& id);
  bool contains(const std::string& id) const { return ids_.contains(id); }
  std::size_t size() const { return order_.size(); }
  std::size_t capacity() const { return capacity_; }
  void setCapacity(std::size_t capacity);

 private:
  std::size_t capacity_;
  std::deque<std::string> order_;
  std::unordered_set<std::string> ids_;
};

}  // namespace citygate::commands
