#include "control/framing.hpp"

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>

#include "core/utf8.hpp"

namespace citygate::control {

void encodeHeader(std::uint32_t length, std::uint8_t out[kHeaderBytes]) {
  out[0] = static_cast<std::uint8_t>(length >> 24);
  out[1] = static_cast<std::uint8_t>(length >> 16);
  out[2] = static_cast<std::uint8_t>(length >> 8);
  out[3] = static_cast<std::uint8_t>(length);
}

std::uint32_t decodeHeader(const std::uint8_t in[kHeaderBytes]) {
  return (static_cast<std::uint32_t>(in[0]) << 24) | (static_cast<std::uint32_t>(in[1]) << 16) |
         (static_cast<std::uint32_t>(in[2]) << 8) | static_cast<std::uint32_t>(in[3]);
}

std::string frameMessage(const google::protobuf::MessageLite& message, std::uint32_t limit) {
  const std::size_t size = message.ByteSizeLong();
  if (size > limit) return {};
  std::string out(kHeaderBytes + size, '\0');
  encodeHeader(static_cast<std::uint32_t>(size), reinterpret_cast<std::uint8_t*>(out.data()));
  if (!message.SerializeToArray(out.data() + kHeaderBytes, static_cast<int>(size))) return {};
  return out;
}

std::size_t FrameDecoder::feed(std::span<const std::uint8_t> in) {
  std::size_t used = 0;
  if (state_ != State::NeedMore) return 0;
  if (headerHave_ < kHeaderBytes) {
    const std::size_t take = std::min(kHeaderBytes - headerHave_, in.size());
    std::copy_n(in.begin(), take, header_ + headerHave_);
    headerHave_ += take;
    used += take;
    if (headerHave_ < kHeaderBytes) return used;
    length_ = decodeHeader(header_);
    if (length_ > max_) {
      state_ = State::Oversize;
      return used;
    }
    body_.clear();
  }
  const std::size_t take = std::min<std::size_t>(length_ - body_.size(), in.size() - used);
  const std::size_t need = body_.size() + take;
  if (need > body_.capacity()) {
    body_.reserve(std::min<std::size_t>(length_, std::max(need, held() + kGrowStep)));
  }
  body_.append(reinterpret_cast<const char*>(in.data() + used), take);
  used += take;
  if (body_.size() == length_) state_ = State::Ready;
  return used;
}

void FrameDecoder::next() {
  if (state_ != State::Ready) return;
  state_ = State::NeedMore;
  headerHave_ = 0;
  length_ = 0;
  body_.clear();
  // A big frame (a config text) should not pin its buffer for the connection's lifetime.
  if (body_.capacity() > kKeepCapacity) body_.shrink_to_fit();
}

namespace {

namespace gp = google::protobuf;

// Walks a message's wire format by its descriptor and finds the first string field whose bytes
// are not UTF-8 (its full name in `bad`). Anything malformed ends the walk quietly: the parser
// refuses it afterwards, without logging.
void findBadUtf8(const gp::Descriptor* type, gp::io::CodedInputStream& in, int depth, std::string& bad) {
  if (depth > 32) return;
  for (;;) {
    const std::uint32_t tag = in.ReadTag();
    if (tag == 0) return;
    const gp::FieldDescriptor* f = type->FindFieldByNumber(static_cast<int>(tag >> 3));
    switch (tag & 7) {
      case 0: {
        std::uint64_t v = 0;
        if (!in.ReadVarint64(&v)) return;
        break;
      }
      case 1: {
        std::uint64_t v = 0;
        if (!in.ReadLittleEndian64(&v)) return;
        break;
      }
      case 5: {
        std::uint32_t v = 0;
        if (!in.ReadLittleEndian32(&v)) return;
        break;
      }
      case 2: {
        std::uint32_t length = 0;
        if (!in.ReadVarint32(&length)) return;
        if (f != nullptr && f->type() == gp::FieldDescriptor::TYPE_STRING) {
          const void* data = nullptr;
          int size = 0;
          if (in.GetDirectBufferPointer(&data, &size) && static_cast<std::uint32_t>(size) >= length) {
            const std::string_view s(static_cast<const char*>(data), length);
            if (core::firstInvalidUtf8(s) != std::string_view::npos) bad = f->full_name();
            if (!in.Skip(static_cast<int>(length))) return;
          } else {
            return;  // shorter than it says: malformed
          }
          if (!bad.empty()) return;
        } else if (f != nullptr && f->type() == gp::FieldDescriptor::TYPE_MESSAGE) {
          const auto limit = in.PushLimit(static_cast<int>(length));
          findBadUtf8(f->message_type(), in, depth + 1, bad);
          if (!bad.empty() || !in.ConsumedEntireMessage()) return;
          in.PopLimit(limit);
        } else if (!in.Skip(static_cast<int>(length))) {
          return;
        }
        break;
      }
      default:
        return;  // groups and worse: not in this protocol
    }
  }
}

}  // namespace

void FrameDecoder::reset() {
  state_ = State::NeedMore;
  headerHave_ = 0;
  length_ = 0;
  std::string().swap(body_);
}

bool parseRequest(std::string_view frame, pb::ControlRequest& out, std::string& error) {
  out.Clear();
  std::string bad;
  {
    gp::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(frame.data()), static_cast<int>(frame.size()));
    findBadUtf8(pb::ControlRequest::descriptor(), in, 0, bad);
  }
  if (!bad.empty()) {
    error = "malformed request: " + bad + " is not UTF-8";
    return false;
  }
  if (!out.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) {
    error = "malformed request: not a citygate.v1.ControlRequest (" + std::to_string(frame.size()) + " bytes)";
    return false;
  }
  return true;
}

namespace {

bool bitTable(pb::RegisterTable t) {
  return t == pb::COIL || t == pb::DISCRETE_INPUT;
}

bool knownTable(int t) {
  return t >= pb::REGISTER_TABLE_UNSPECIFIED && t <= pb::HOLDING_REGISTER;
}

bool knownLevel(const std::string& l) {
  return l.empty() || l == "trace" || l == "debug" || l == "info" || l == "warn" || l == "warning" || l == "error" ||
         l == "critical" || l == "off";
}

std::string checkId(const std::string& id, std::string_view what) {
  if (id.size() > 64) return std::string(what) + " is longer than 64 characters";
  return {};
}

}  // namespace

std::string checkRequest(const pb::ControlRequest& r) {
  switch (r.command_case()) {
    case pb::ControlRequest::COMMAND_NOT_SET:
      return "the request names no command (an older or newer citygatectl?)";
    case pb::ControlRequest::kDevices:
      return checkId(r.devices().device_id(), "device id");
    case pb::ControlRequest::kTail:
      return checkId(r.tail().device_id(), "device id");
    case pb::ControlRequest::kDeviceRetry:
      if (r.device_retry().device_id().empty()) return "device retry: the device id is empty";
      return checkId(r.device_retry().device_id(), "device id");
    case pb::ControlRequest::kMqttReconnect:
      return {};
    case pb::ControlRequest::kLoraDevStatus:
      if (r.lora_dev_status().device().empty()) return "lora devstatus: the device is empty";
      return checkId(r.lora_dev_status().device(), "device");
    case pb::ControlRequest::kModbusRead: {
      const auto& m = r.modbus_read();
      if (m.bus().empty()) return "modbus read: the bus name is empty";
      if (m.unit_id() > 255) return "modbus read: unit id " + std::to_string(m.unit_id()) + " is outside 0..255";
      if (!knownTable(m.table())) return "modbus read: unknown register table";
      const std::uint32_t maxCount = bitTable(m.table()) ? 2000 : 125;
      if (m.count() < 1 || m.count() > maxCount) {
        return "modbus read: count " + std::to_string(m.count()) + " is outside 1.." + std::to_string(maxCount);
      }
      if (m.address() > 65535 || m.address() + m.count() > 65536) {
        return "modbus read: addresses " + std::to_string(m.address()) + ".." +
               std::to_string(m.address() + m.count() - 1) + " are outside 0..65535";
      }
      if (m.timeout_ms() > 60000) return "modbus read: timeout above 60000 ms";
      return {};
    }
    case pb::ControlRequest::kModbusWrite: {
      const auto& m = r.modbus_write();
      if (m.bus().empty()) return "modbus write: the bus name is empty";
      if (m.unit_id() > 255) return "modbus write: unit id " + std::to_string(m.unit_id()) + " is outside 0..255";
      if (!knownTable(m.table())) return "modbus write: unknown register table";
      if (m.address() > 65535) return "modbus write: address outside 0..65535";
      if (!pb::DataType_IsValid(m.type()) || !pb::WordOrder_IsValid(m.order()))
        return "modbus write: unknown type or order";
      if (m.origin().size() > 128) return "modbus write: origin longer than 128 characters";
      return {};
    }
    case pb::ControlRequest::kModbusScan: {
      const auto& s = r.modbus_scan();
      if (s.bus().empty()) return "modbus scan: the bus name is empty";
      if (s.from() > 255 || s.to() > 255) return "modbus scan: unit ids are 0..255";
      if (s.to() != 0 && s.to() < s.from()) return "modbus scan: FROM is above TO";
      if (s.timeout_ms() > 10000) return "modbus scan: timeout above 10000 ms per unit";
      if (!knownTable(s.table())) return "modbus scan: unknown register table";
      if (s.address() > 65535) return "modbus scan: address outside 0..65535";
      return {};
    }
    case pb::ControlRequest::kLogLevel:
      if (!knownLevel(r.log_level().level())) {
        return "unknown log level '" + r.log_level().level() + "' (trace, debug, info, warn, error, critical, off)";
      }
      return checkId(r.log_level().logger(), "logger name");
    case pb::ControlRequest::kConfigApply:
      if (!pb::ConfigApplyRequest::Persist_IsValid(r.config_apply().persist())) {
        return "config apply: unknown persist value " + std::to_string(r.config_apply().persist());
      }
      return {};
    case pb::ControlRequest::kConfigDiff:
    case pb::ControlRequest::kStatus:
    case pb::ControlRequest::kConfigShow:
    case pb::ControlRequest::kLoraDevices:
    case pb::ControlRequest::kLoraHeard:  // no fields (unknown ones are dropped by the parser)
    case pb::ControlRequest::kSpool:
      return {};
  }
  return "unknown command";
}

pb::ControlResponse errorResponse(std::uint64_t id, pb::ControlError::Code code, std::string message) {
  pb::ControlResponse r;
  r.set_id(id);
  r.mutable_error()->set_code(code);
  r.mutable_error()->set_message(std::move(message));
  return r;
}

}  // namespace citygate::control
