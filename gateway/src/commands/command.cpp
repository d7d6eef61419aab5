#include "commands/command.hpp"

#include <cmath>

namespace citygate::commands {

namespace {

bool printableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

Decoded bad(Decoded d, std::string why) {
  d.refusal = pb::BAD_COMMAND;
  d.detail = std::move(why);
  return d;
}

}  // namespace

Decoded decodeCommand(std::string_view payload) {
  Decoded d;
  if (payload.size() > kMaxCommandBytes) {
    return bad(std::move(d), "the command is " + std::to_string(payload.size()) + " bytes; at most " +
                                 std::to_string(kMaxCommandBytes) + " are accepted");
  }
  if (!d.command.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    d.command.Clear();
    return bad(std::move(d), "the payload is not a citygate.v1.Command (protobuf)");
  }
  auto& c = d.command;
  if (c.request_id().empty() || c.request_id().size() > kMaxRequestId || !printableAscii(c.request_id())) {
    const bool empty = c.request_id().empty();
    c.clear_request_id();  // not echoed: it may be anything
    return bad(std::move(d),
               empty ? std::string("the command has no request_id")
                     : "the request_id must be 1.." + std::to_string(kMaxRequestId) + " printable ASCII characters");
  }
  const bool needsDevice = c.action_case() != pb::Command::kRefill;
  if ((needsDevice || !c.device().empty()) &&
      (c.device().empty() || c.device().size() > kMaxDeviceId || !printableAscii(c.device()))) {
    return bad(std::move(d), "the command names no device (device: 1.." + std::to_string(kMaxDeviceId) +
                                 " printable ASCII characters)");
  }
  if (!printableAscii(c.origin()) || c.origin().size() > 128) c.set_origin("(unprintable)");
  if (!c.has_expires_at()) return bad(std::move(d), "the command has no expires_at");
  const auto& e = c.expires_at();
  if (e.seconds() <= 0 || e.nanos() < 0 || e.nanos() > 999'999'999) {
    return bad(std::move(d), "expires_at is not a valid time");
  }
  switch (c.action_case()) {
    case pb::Command::kWrite: {
      const auto& w = c.write();
      if (!std::isfinite(w.value())) return bad(std::move(d), "the value to write is not a finite number");
      if (w.point().empty() && w.table() == pb::REGISTER_TABLE_UNSPECIFIED) {
        return bad(std::move(d), "the write names no point (point, or table and address)");
      }
      if (!w.point().empty() && w.table() != pb::REGISTER_TABLE_UNSPECIFIED) {
        return bad(std::move(d), "the write names its point twice (point and table): give one");
      }
      if (!printableAscii(w.point()) || w.point().size() > 64 || !printableAscii(w.bay()) || w.bay().size() > 64) {
        return bad(std::move(d), "the point's field or bay is not printable ASCII (at most 64 characters)");
      }
      if (w.address() > 0xFFFF) return bad(std::move(d), "the address is above 65535");
      return d;
    }
    case pb::Command::kDownlink: {
      const auto& l = c.downlink();
      if (l.f_port() < 1 || l.f_port() > 223) return bad(std::move(d), "the downlink's f_port must be 1..223");
      if (l.payload().size() > kMaxDownlinkPayload) {
        return bad(std::move(d), "the downlink's payload is " + std::to_string(l.payload().size()) +
                                     " bytes; at most " + std::to_string(kMaxDownlinkPayload));
      }
      return d;
    }
    case pb::Command::kRefill: {
      const auto& r = c.refill();
      if (r.epoch().empty() || r.epoch().size() > 64 || !printableAscii(r.epoch())) {
        return bad(std::move(d), "the refill names no epoch (the ReadingBatch's epoch)");
      }
      if (r.from_seq() == 0 || r.to_seq() < r.from_seq()) {
        return bad(std::move(d), "the refill's range must be 1 <= from_seq <= to_seq");
      }
      if (r.to_seq() - r.from_seq() >= kMaxRefillReadings) {
        return bad(std::move(d),
                   "the refill asks for more than " + std::to_string(kMaxRefillReadings) + " readings: split it");
      }
      return d;
    }
    case pb::Command::ACTION_NOT_SET:
      break;
  }
  return bad(std::move(d), "the command has no action (write, downlink or refill)");
}

std::optional<Decoded> checkExpiry(const pb::Command& command, WallTime now, std::chrono::seconds maxAhead) {
  const WallTime expires = fromTimestamp(command.expires_at());
  if (now > expires) {
    Decoded d;
    d.command = command;
    d.refusal = pb::EXPIRED;
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(now - expires).count();
    d.detail = "the command expired " + std::to_string(late / 1000) + "." + std::to_string(late % 1000 / 100) +
               " s before it arrived";
    return d;
  }
  if (expires - now > maxAhead) {
    Decoded d;
    d.command = command;
    d.refusal = pb::BAD_COMMAND;
    d.detail = "the command expires more than " + std::to_string(maxAhead.count()) +
               " s ahead (commands.max_expiry_s); a command must not wait that long";
    return d;
  }
  return std::nullopt;
}

bool RecentIds::insert(const std::string& id) {
  if (ids_.contains(id)) return false;
  while (order_.size() >= capacity_) {
    ids_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(id);
  ids_.insert(id);
  return true;
}

void RecentIds::setCapacity(std::size_t capacity) {
  capacity_ = capacity == 0 ? 1 : capacity;
  while (order_.size() > capacity_) {
    ids_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace citygate::commands
