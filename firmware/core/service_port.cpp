#include "core/service_port.hpp"

#include <string.h>

namespace citygate::fw {

using service::Reason;
using service::Type;

namespace {

void putU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

const char* frameErrorText(Reason r) {
  switch (r) {
    case Reason::BadCrc:
      return "frame CRC does not match (line noise or wrong baud rate?)";
    case Reason::Truncated:
      return "frame shorter than its header says";
    case Reason::Oversize:
      return "frame longer than the node takes";
    case Reason::BadLength:
      return "frame longer than its header says";
    case Reason::BadEscape:
      return "bad SLIP escape in frame";
    default:
      return "frame refused";
  }
}

}  // namespace

ServicePort::Action ServicePort::poll() {
  Action action = Action::None;
  uint8_t chunk[64];
  for (size_t budget = kReadBudget; budget > 0;) {
    const size_t n = uart_.read(chunk, sizeof chunk < budget ? sizeof chunk : budget);
    if (n == 0) break;
    budget -= n;
    for (size_t i = 0; i < n; ++i) {
      switch (parser_.feed(chunk[i])) {
        case service::FrameParser::Result::Frame:
          if (handle(parser_.frame()) == Action::Reset) action = Action::Reset;
          break;
        case service::FrameParser::Result::Error:
          refuse(0, parser_.error(), frameErrorText(parser_.error()));
          break;
        case service::FrameParser::Result::None:
          break;
      }
    }
    // A reset asked for ends the poll: what follows is for the node after its reset.
    if (action == Action::Reset) break;
  }
  return action;
}

void ServicePort::reply(uint8_t type, uint8_t seq, const uint8_t* payload, size_t size) {
  const size_t n = service::encodeFrame(type, seq, payload, size, encoded_, sizeof encoded_);
  if (n > 0) uart_.write(encoded_, n);
}

void ServicePort::refuse(uint8_t seq, Reason why, const char* text) {
  ++counters_[static_cast<size_t>(why)];
  uint8_t payload[1 + Text::kCapacity];
  payload[0] = static_cast<uint8_t>(why);
  size_t size = 1;
  while (*text != '\0' && size < sizeof payload) payload[size++] = static_cast<uint8_t>(*text++);
  reply(static_cast<uint8_t>(Type::Error), seq, payload, size);
}

ServicePort::Action ServicePort::handle(const service::Frame& frame) {
  switch (static_cast<Type>(frame.type)) {
    case Type::Show:
      show(frame.seq);
      break;
    case Type::Provision:
      return provision(frame);
    case Type::Reset:
      ++answered_;
      reply(static_cast<uint8_t>(Type::Reset) | service::kReplyBit, frame.seq, nullptr, 0);
      return Action::Reset;
    case Type::Counters: {
      ++answered_;
      payload_[0] = static_cast<uint8_t>(kReasons);
      for (size_t i = 0; i < kReasons; ++i) putU32(payload_ + 1 + 4 * i, counters_[i]);
      reply(static_cast<uint8_t>(Type::Counters) | service::kReplyBit, frame.seq, payload_, 1 + 4 * kReasons);
      break;
    }
    default: {
      Text t;
      t.add("unknown request type ").add(frame.type);
      refuse(frame.seq, Reason::UnknownType, t.chars);
      break;
    }
  }
  return Action::None;
}

void ServicePort::show(uint8_t seq) {
  size_t size = 0;
  const RecordStore::Status status = store_.load(payload_, sizeof payload_, size);
  uint8_t state = 0;
  if (status == RecordStore::Status::Ok) state = decode(payload_, size, record_) ? 1 : 2;
  if (state != 1) {
    record_ = citygate_v1_NodeProvisioning_init_zero;
    record_.kind = kind_;
  }
  withoutKeys(record_);
  payload_[0] = state;
  putU32(payload_ + 1, state == 0 ? 0 : store_.generation());
  size_t encodedSize = 0;
  if (!encode(record_, payload_ + 5, sizeof payload_ - 5, encodedSize)) encodedSize = 0;
  ++answered_;
  reply(static_cast<uint8_t>(Type::Show) | service::kReplyBit, seq, payload_, 5 + encodedSize);
}

ServicePort::Action ServicePort::provision(const service::Frame& frame) {
  if (!decode(frame.payload, frame.length, record_)) {
    refuse(frame.seq, Reason::BadRecord,
           "payload is not a NodeProvisioning within the node's bounds (node_id 32, lanes 4, keys 16 bytes)");
    return Action::None;
  }
  record_.keys_set = false;  // read-back only: never stored
  Text why;
  switch (validate(record_, kind_, why)) {
    case Verdict::Ok:
      break;
    case Verdict::WrongKind:
      refuse(frame.seq, Reason::WrongKind, why.chars);
      return Action::None;
    case Verdict::Invalid:
      refuse(frame.seq, Reason::Invalid, why.chars);
      return Action::None;
  }
  size_t size = 0;
  if (!encode(record_, payload_, sizeof payload_, size)) {
    refuse(frame.seq, Reason::BadRecord, "record does not encode within the node's bounds");
    return Action::None;
  }
  const RecordStore::Status status = store_.save(payload_, size);
  if (status != RecordStore::Status::Ok) {
    Text t;
    t.add("writing the record failed: ").add(RecordStore::statusText(status)).add(" (SHOW says which record is kept)");
    refuse(frame.seq, Reason::FlashError, t.chars);
    return Action::None;
  }
  ++answered_;
  uint8_t generation[4];
  putU32(generation, store_.generation());
  reply(static_cast<uint8_t>(Type::Provision) | service::kReplyBit, frame.seq, generation, sizeof generation);
  return Action::Reset;
}

}  // namespace citygate::fw
