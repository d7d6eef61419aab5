#include "outputs/sparkplug/codec.hpp"

#include <cctype>
#include <cstring>

#include "sparkplug_b/sparkplug_b.pb.h"

namespace citygate::sparkplug {

namespace spb = org::eclipse::tahu::protobuf;

Topics::Topics(std::string_view group, std::string_view edge, std::string_view hostId)
    : devicePrefix_(std::string(kNamespace) + "/" + std::string(group) + "/"), edge_(edge) {
  nbirth = devicePrefix_ + "NBIRTH/" + edge_;
  ndeath = devicePrefix_ + "NDEATH/" + edge_;
  ndata = devicePrefix_ + "NDATA/" + edge_;
  ncmd = devicePrefix_ + "NCMD/" + edge_;
  dcmdPrefix_ = devicePrefix_ + "DCMD/" + edge_ + "/";
  dcmdFilter = dcmdPrefix_ + "+";
  if (!hostId.empty()) {
    state = std::string(kNamespace) + "/STATE/" + std::string(hostId);
    legacyState = "STATE/" + std::string(hostId);
  }
}

std::string Topics::device(std::string_view type, std::string_view device) const {
  std::string t;
  t.reserve(devicePrefix_.size() + type.size() + edge_.size() + device.size() + 2);
  t.append(devicePrefix_).append(type).append("/").append(edge_).append("/").append(device);
  return t;
}

std::string_view Topics::dcmdDevice(std::string_view topic) const {
  if (topic.size() <= dcmdPrefix_.size() || topic.substr(0, dcmdPrefix_.size()) != dcmdPrefix_) return {};
  const std::string_view device = topic.substr(dcmdPrefix_.size());
  return device.find('/') == std::string_view::npos ? device : std::string_view{};
}

std::string ndeathPayload(std::uint64_t bdSeq, std::uint64_t timestampMs) {
  spb::Payload p;
  p.set_timestamp(timestampMs);
  auto* m = p.add_metrics();
  m->set_name(std::string(kBdSeq));
  m->set_timestamp(timestampMs);
  m->set_datatype(spb::Int64);
  m->set_long_value(bdSeq);
  return p.SerializeAsString();
}

namespace {

// A signed type's value travels as its bit pattern in the unsigned field (Tahu sign-extends to 32
// or 64 bits); truncating to the declared width and sign-extending again reads both forms.
double numberOf(std::uint32_t datatype, std::uint64_t raw) {
  switch (datatype) {
    case spb::Int8:
      return static_cast<std::int8_t>(static_cast<std::uint8_t>(raw));
    case spb::Int16:
      return static_cast<std::int16_t>(static_cast<std::uint16_t>(raw));
    case spb::Int32:
      return static_cast<std::int32_t>(static_cast<std::uint32_t>(raw));
    case spb::Int64:
      return static_cast<double>(static_cast<std::int64_t>(raw));
    default:
      return static_cast<double>(raw);
  }
}

}  // namespace

DecodedCommand decodeCommand(std::string_view payload) {
  DecodedCommand d;
  if (payload.size() > kMaxCommandBytes) {
    d.error =
        "payload of " + std::to_string(payload.size()) + " bytes (at most " + std::to_string(kMaxCommandBytes) + ")";
    return d;
  }
  spb::Payload p;
  if (!p.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    d.error = "not a Sparkplug B payload (protobuf does not parse)";
    return d;
  }
  if (p.metrics_size() == 0) {
    d.error = "a command with no metric";
    return d;
  }
  if (static_cast<std::size_t>(p.metrics_size()) > kMaxCommandMetrics) {
    d.error = std::to_string(p.metrics_size()) + " metrics in one command (at most " +
              std::to_string(kMaxCommandMetrics) + ")";
    return d;
  }
  for (const auto& m : p.metrics()) {
    CommandMetric c;
    if (!m.has_name() && !m.has_alias()) {
      d.error = "a metric with neither name nor alias";
      d.metrics.clear();
      return d;
    }
    c.name = m.name();
    if (m.has_alias()) c.alias = m.alias();
    c.isNull = m.is_null();
    switch (m.value_case()) {
      case spb::Payload::Metric::kIntValue:
        c.number = numberOf(m.datatype(), m.int_value());
        break;
      case spb::Payload::Metric::kLongValue:
        c.number = numberOf(m.datatype(), m.long_value());
        break;
      case spb::Payload::Metric::kFloatValue:
        c.number = m.float_value();
        break;
      case spb::Payload::Metric::kDoubleValue:
        c.number = m.double_value();
        break;
      case spb::Payload::Metric::kBooleanValue:
        c.boolean = m.boolean_value();
        break;
      case spb::Payload::Metric::kStringValue:
        c.text = m.string_value();
        break;
      default:
        break;  // no value, or a kind no command of this node takes (the caller refuses it)
    }
    d.metrics.push_back(std::move(c));
  }
  return d;
}

namespace {

// Just enough JSON for STATE: an object of members whose values are literals, numbers or strings.
class StateScanner {
 public:
  explicit StateScanner(std::string_view s) : s_(s) {}

  std::optional<HostState> parse(std::string* why) {
    HostState st;
    bool sawOnline = false;
    ws();
    if (!eat('{')) return fail(why, "STATE is not a JSON object");
    ws();
    if (eat('}')) return fail(why, "STATE has no \"online\"");
    while (true) {
      ws();
      std::string key;
      if (!string(key)) return fail(why, "STATE: a member name is not a JSON string");
      ws();
      if (!eat(':')) return fail(why, "STATE: ':' expected after \"" + key + "\"");
      ws();
      if (key == "online") {
        if (literal("true")) {
          st.online = true;
        } else if (literal("false")) {
          st.online = false;
        } else {
          return fail(why, "STATE: \"online\" is not true or false");
        }
        sawOnline = true;
      } else if (key == "timestamp") {
        std::uint64_t v = 0;
        if (!number(v)) return fail(why, "STATE: \"timestamp\" is not a whole number of milliseconds");
        st.timestamp = v;
      } else if (!skipValue()) {
        return fail(why, "STATE: the value of \"" + key + "\" is not a JSON literal, number or string");
      }
      ws();
      if (eat('}')) break;
      if (!eat(',')) return fail(why, "STATE: ',' or '}' expected");
    }
    ws();
    if (i_ != s_.size()) return fail(why, "STATE: bytes after the object");
    if (!sawOnline) return fail(why, "STATE has no \"online\"");
    return st;
  }

 private:
  static std::optional<HostState> fail(std::string* why, std::string text) {
    if (why) *why = std::move(text);
    return std::nullopt;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        out.push_back(s_[i_++]);  // member names here have no escapes worth decoding
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      out.push_back(c);
    }
    return false;
  }
  bool number(std::uint64_t& v) {
    const std::size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])) != 0) {
      if (i_ - start >= 19) return false;  // beyond any millisecond time
      v = v * 10 + static_cast<std::uint64_t>(s_[i_] - '0');
      ++i_;
    }
    return i_ > start;
  }
  bool skipValue() {
    std::string ignored;
    if (i_ < s_.size() && s_[i_] == '"') return string(ignored);
    if (literal("true") || literal("false") || literal("null")) return true;
    const std::size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) != 0 || s_[i_] == '-' || s_[i_] == '+' ||
                              s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
    }
    return i_ > start;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::optional<HostState> parseState(std::string_view payload, std::string* why) {
  if (payload == "ONLINE") return HostState{true, std::nullopt};
  if (payload == "OFFLINE") return HostState{false, std::nullopt};
  if (payload.size() > 4096) {
    if (why) *why = "STATE of " + std::to_string(payload.size()) + " bytes (at most 4096)";
    return std::nullopt;
  }
  return StateScanner(payload).parse(why);
}

}  // namespace citygate::sparkplug
