// The C++ half of the Sparkplug B round trips (tests/sparkplug/README.md): our
// proto/sparkplug_b/sparkplug_b.proto, compiled by protoc into citygate_proto, encodes and decodes
// payloads described in a neutral JSON form, one per line, so that roundtrip.js can put them
// through Eclipse Tahu's JavaScript codec (npm sparkplug-payload) and compare.
//
//   sparkplug_payload_roundtrip encode   stdin: a case per line -> stdout: the Payload bytes in hex
//   sparkplug_payload_roundtrip decode   stdin: {"hex": "..", "aliases": {"10": 2}} per line
//                                        -> stdout: the case the bytes carry
//
// Case: {"timestamp": "1700000000000", "seq": "0", "uuid": "..", "body": "<hex>", "metrics": [
//   {"name": "..", "alias": "10", "timestamp": "..", "datatype": 2, "value": "-5",
//    "is_historical": true, "is_transient": false, "is_null": false,
//    "omit_datatype": true,          datatype known from the birth (alias), not sent (DATA)
//    "wire": "narrow" | "long",      another encoder's form of an integer (below)
//    "properties": [{"key": "..", "type": 3, "value": "-7", "is_null": false}]}]}
// Integers (and timestamp, seq, alias) are decimal strings, Float and Double are strings too
// ("NaN", "-0", "Infinity"), Bytes and body hex: JSON numbers would lose 64-bit values and -0.
// A field is written only when the case has it, and a decoded case has the fields the wire had.
//
// Integers: our encoder writes the form of the specification and of Tahu's Java encoder, signed
// types sign-extended to the width of their field (Int16 -5 is int_value 0xFFFFFFFB), UInt32 in
// int_value. "wire": "narrow" writes a signed value truncated to its declared width instead
// (Int16 -5 is int_value 0xFFFB) and "long" puts any integer in long_value, the forms other
// encoders produce (protocols.md §1.8). Our decoder reads either field and truncates the raw value
// to the declared width, then sign-extends signed types: every form gives the same value, and the
// decoded case says which field it came from ("wire_field", "wire_raw").
//
// A line that cannot be handled gives {"error": ".."} on its output line, so the caller can name
// the case; the exit status is 1 then, 0 otherwise.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sparkplug_b/sparkplug_b.pb.h"

namespace {

namespace sp = org::eclipse::tahu::protobuf;
using google::protobuf::Struct;
using google::protobuf::Value;

// A bad case is thrown as this from deep in the JSON walk (a test tool, not the data path) and
// caught in main's line loop, which answers it with an error line.
struct CaseError {
  std::string what;
};

[[noreturn]] void fail(std::string what) {
  throw CaseError{std::move(what)};
}

const Value* member(const Struct& object, const std::string& key) {
  auto found = object.fields().find(key);
  return found == object.fields().end() ? nullptr : &found->second;
}

const std::string& text(const Value& value, std::string_view what) {
  if (value.kind_case() != Value::kStringValue) fail(std::string(what) + " must be a string");
  return value.string_value();
}

bool flag(const Value& value, std::string_view what) {
  if (value.kind_case() != Value::kBoolValue) fail(std::string(what) + " must be true or false");
  return value.bool_value();
}

template <typename Int>
Int parseInteger(const std::string& digits, std::string_view what) {
  Int result{};
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), result);
  if (ec != std::errc{} || end != digits.data() + digits.size()) {
    fail(std::string(what) + ": not an integer of its type: " + digits);
  }
  return result;
}

template <typename Int>
Int integer(const Value& value, std::string_view what) {
  return parseInteger<Int>(text(value, what), what);
}

double real(const Value& value, std::string_view what) {
  const std::string& digits = text(value, what);
  char* end = nullptr;
  // strtod, not from_chars: it reads JavaScript's spellings "Infinity" and "NaN" as well.
  double result = std::strtod(digits.c_str(), &end);
  if (digits.empty() || *end != '\0') fail(std::string(what) + ": not a number: " + digits);
  return result;
}

// The shortest text that reads back as the same double, spelled as JavaScript's Number() reads it.
std::string realText(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

std::string toHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : bytes) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

std::string fromHex(const std::string& hex, std::string_view what) {
  if (hex.size() % 2 != 0) fail(std::string(what) + ": odd number of hex digits");
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned byte = 0;
    auto [end, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
    if (ec != std::errc{} || end != hex.data() + i + 2) fail(std::string(what) + ": not hex: " + hex);
    bytes += static_cast<char>(byte);
  }
  return bytes;
}

// The declared width of an integer datatype, and whether it is signed; nullopt for the others.
struct IntegerType {
  int bits;
  bool isSigned;
};

std::optional<IntegerType> integerType(uint32_t datatype) {
  switch (datatype) {
    case sp::Int8:
      return IntegerType{8, true};
    case sp::Int16:
      return IntegerType{16, true};
    case sp::Int32:
      return IntegerType{32, true};
    case sp::Int64:
      return IntegerType{64, true};
    case sp::UInt8:
      return IntegerType{8, false};
    case sp::UInt16:
      return IntegerType{16, false};
    case sp::UInt32:
      return IntegerType{32, false};
    case sp::UInt64:
    case sp::DateTime:
      return IntegerType{64, false};
    default:
      return std::nullopt;
  }
}

uint64_t truncated(uint64_t raw, int bits) {
  return bits == 64 ? raw : raw & ((uint64_t{1} << bits) - 1);
}

// The raw value truncated to the declared width and, for a signed type, sign-extended from it.
std::string integerText(uint64_t raw, IntegerType type) {
  uint64_t value = truncated(raw, type.bits);
  if (!type.isSigned) return std::to_string(value);
  uint64_t signBit = uint64_t{1} << (type.bits - 1);
  // Two's complement without a signed overflow: (value ^ signBit) - signBit, in 64 bits.
  return std::to_string(static_cast<int64_t>((value ^ signBit) - signBit));
}

// Metric and PropertyValue have the same value fields, but only a Metric has bytes_value.
template <typename Message>
void encodeValue(Message& message, uint32_t datatype, const Value& value, std::string_view wire) {
  if (auto type = integerType(datatype)) {
    uint64_t raw =
        type->isSigned ? static_cast<uint64_t>(integer<int64_t>(value, "value")) : integer<uint64_t>(value, "value");
    if (wire == "narrow" && type->isSigned) raw = truncated(raw, type->bits);
    if (type->bits == 64 || wire == "long") {
      message.set_long_value(raw);
    } else {
      message.set_int_value(static_cast<uint32_t>(raw));  // sign-extended to 32 bits unless narrow
    }
    return;
  }
  switch (datatype) {
    case sp::Float:
      message.set_float_value(static_cast<float>(real(value, "value")));
      return;
    case sp::Double:
      message.set_double_value(real(value, "value"));
      return;
    case sp::Boolean:
      message.set_boolean_value(flag(value, "value"));
      return;
    case sp::String:
    case sp::Text:
    case sp::UUID:
      message.set_string_value(text(value, "value"));
      return;
    case sp::Bytes:
      if constexpr (requires { message.set_bytes_value(std::string{}); }) {
        message.set_bytes_value(fromHex(text(value, "value"), "value"));
        return;
      }
      break;
    default:
      break;
  }
  fail("datatype " + std::to_string(datatype) + " is not one this program encodes");
}

template <typename Message>
void decodeValue(const Message& message, uint32_t datatype, Struct& out) {
  auto& fields = *out.mutable_fields();
  std::optional<uint64_t> raw;
  if (message.value_case() == Message::kIntValue) {
    raw = message.int_value();
    fields["wire_field"].set_string_value("int_value");
  } else if (message.value_case() == Message::kLongValue) {
    raw = message.long_value();
    fields["wire_field"].set_string_value("long_value");
  }
  if (raw) fields["wire_raw"].set_string_value(std::to_string(*raw));
  if (message.value_case() == Message::VALUE_NOT_SET) return;

  auto wrongField = [&] { fail("datatype " + std::to_string(datatype) + " with a value in another field"); };
  if (auto type = integerType(datatype)) {
    if (!raw) wrongField();
    fields["value"].set_string_value(integerText(*raw, *type));
    return;
  }
  switch (datatype) {
    case sp::Float:
      if (message.value_case() != Message::kFloatValue) wrongField();
      fields["value"].set_string_value(realText(message.float_value()));
      return;
    case sp::Double:
      if (message.value_case() != Message::kDoubleValue) wrongField();
      fields["value"].set_string_value(realText(message.double_value()));
      return;
    case sp::Boolean:
      if (message.value_case() != Message::kBooleanValue) wrongField();
      fields["value"].set_bool_value(message.boolean_value());
      return;
    case sp::String:
    case sp::Text:
    case sp::UUID:
      if (message.value_case() != Message::kStringValue) wrongField();
      fields["value"].set_string_value(message.string_value());
      return;
    case sp::Bytes:
      if constexpr (requires { message.bytes_value(); }) {
        if (message.value_case() != Message::kBytesValue) wrongField();
        fields["value"].set_string_value(toHex(message.bytes_value()));
        return;
      }
      break;
    default:
      break;
  }
  fail("datatype " + std::to_string(datatype) + " is not one this program decodes");
}

uint32_t datatypeOf(const Value& value, std::string_view what) {
  if (value.kind_case() != Value::kNumberValue) fail(std::string(what) + " must be a number");
  return static_cast<uint32_t>(value.number_value());
}

void encodeProperties(const Value& list, sp::Payload::PropertySet& set) {
  for (const Value& item : list.list_value().values()) {
    const Struct& property = item.struct_value();
    const Value* key = member(property, "key");
    const Value* type = member(property, "type");
    if (!key || !type) fail("a property needs key and type");
    set.add_keys(text(*key, "property key"));
    sp::Payload::PropertyValue& value = *set.add_values();
    value.set_type(datatypeOf(*type, "property type"));
    if (const Value* isNull = member(property, "is_null"); isNull && flag(*isNull, "is_null")) {
      value.set_is_null(true);
    } else if (const Value* v = member(property, "value")) {
      encodeValue(value, value.type(), *v, "");
    }
  }
}

void encodeMetric(const Struct& in, sp::Payload::Metric& metric) {
  const Value* datatype = member(in, "datatype");
  if (const Value* v = member(in, "name")) metric.set_name(text(*v, "name"));
  if (const Value* v = member(in, "alias")) metric.set_alias(integer<uint64_t>(*v, "alias"));
  if (const Value* v = member(in, "timestamp")) metric.set_timestamp(integer<uint64_t>(*v, "timestamp"));
  const Value* omit = member(in, "omit_datatype");
  if (datatype && !(omit && flag(*omit, "omit_datatype"))) metric.set_datatype(datatypeOf(*datatype, "datatype"));
  if (const Value* v = member(in, "is_historical")) metric.set_is_historical(flag(*v, "is_historical"));
  if (const Value* v = member(in, "is_transient")) metric.set_is_transient(flag(*v, "is_transient"));
  if (const Value* v = member(in, "is_null")) metric.set_is_null(flag(*v, "is_null"));
  if (const Value* v = member(in, "properties")) encodeProperties(*v, *metric.mutable_properties());
  if (const Value* v = member(in, "value")) {
    if (!datatype) fail("a metric with a value needs a datatype");
    const Value* wire = member(in, "wire");
    encodeValue(metric, datatypeOf(*datatype, "datatype"), *v, wire ? text(*wire, "wire") : "");
  }
}

std::string encode(const Struct& in) {
  sp::Payload payload;
  if (const Value* v = member(in, "timestamp")) payload.set_timestamp(integer<uint64_t>(*v, "timestamp"));
  if (const Value* v = member(in, "metrics")) {
    for (const Value& metric : v->list_value().values()) encodeMetric(metric.struct_value(), *payload.add_metrics());
  }
  if (const Value* v = member(in, "seq")) payload.set_seq(integer<uint64_t>(*v, "seq"));
  if (const Value* v = member(in, "uuid")) payload.set_uuid(text(*v, "uuid"));
  if (const Value* v = member(in, "body")) payload.set_body(fromHex(text(*v, "body"), "body"));
  return toHex(payload.SerializeAsString());
}

void decodeMetric(const sp::Payload::Metric& metric, const std::map<uint64_t, uint32_t>& aliases, Struct& out) {
  auto& fields = *out.mutable_fields();
  if (metric.has_name()) fields["name"].set_string_value(metric.name());
  if (metric.has_alias()) fields["alias"].set_string_value(std::to_string(metric.alias()));
  if (metric.has_timestamp()) fields["timestamp"].set_string_value(std::to_string(metric.timestamp()));
  std::optional<uint32_t> datatype;
  if (metric.has_datatype()) {
    datatype = metric.datatype();
  } else if (auto known = aliases.find(metric.alias()); metric.has_alias() && known != aliases.end()) {
    // A DATA message names the metric by alias only; its datatype is the one of the birth.
    datatype = known->second;
    fields["omit_datatype"].set_bool_value(true);
  }
  if (datatype) fields["datatype"].set_number_value(*datatype);
  if (metric.has_is_historical()) fields["is_historical"].set_bool_value(metric.is_historical());
  if (metric.has_is_transient()) fields["is_transient"].set_bool_value(metric.is_transient());
  if (metric.has_is_null()) fields["is_null"].set_bool_value(metric.is_null());
  if (metric.has_properties()) {
    const auto& set = metric.properties();
    if (set.keys_size() != set.values_size()) fail("a PropertySet with more keys than values or the reverse");
    auto& list = *fields["properties"].mutable_list_value();
    for (int i = 0; i < set.keys_size(); ++i) {
      const auto& value = set.values(i);
      Struct& property = *list.add_values()->mutable_struct_value();
      (*property.mutable_fields())["key"].set_string_value(set.keys(i));
      (*property.mutable_fields())["type"].set_number_value(value.type());
      if (value.has_is_null()) (*property.mutable_fields())["is_null"].set_bool_value(value.is_null());
      decodeValue(value, value.type(), property);
    }
  }
  if (metric.value_case() != sp::Payload::Metric::VALUE_NOT_SET && !datatype) {
    fail("a metric value without a datatype, and no birth alias for it");
  }
  if (datatype) decodeValue(metric, *datatype, out);
}

Struct decode(const Struct& in) {
  const Value* hex = member(in, "hex");
  if (!hex) fail("a decode line needs hex");
  std::map<uint64_t, uint32_t> aliases;
  if (const Value* v = member(in, "aliases")) {
    for (const auto& [alias, datatype] : v->struct_value().fields()) {
      aliases[parseInteger<uint64_t>(alias, "alias")] = datatypeOf(datatype, "alias datatype");
    }
  }
  sp::Payload payload;
  if (!payload.ParseFromString(fromHex(text(*hex, "hex"), "hex"))) fail("not a Sparkplug B payload");
  Struct out;
  auto& fields = *out.mutable_fields();
  if (payload.has_timestamp()) fields["timestamp"].set_string_value(std::to_string(payload.timestamp()));
  if (payload.has_seq()) fields["seq"].set_string_value(std::to_string(payload.seq()));
  if (payload.has_uuid()) fields["uuid"].set_string_value(payload.uuid());
  if (payload.has_body()) fields["body"].set_string_value(toHex(payload.body()));
  if (payload.metrics_size() > 0) {
    auto& list = *fields["metrics"].mutable_list_value();
    for (const auto& metric : payload.metrics())
      decodeMetric(metric, aliases, *list.add_values()->mutable_struct_value());
  }
  return out;
}

std::string errorLine(const std::string& what) {
  Struct out;
  (*out.mutable_fields())["error"].set_string_value(what);
  std::string line;
  (void)google::protobuf::util::MessageToJsonString(out, &line);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view mode = argc == 2 ? argv[1] : "";
  if (mode != "encode" && mode != "decode") {
    std::cerr << "usage: sparkplug_payload_roundtrip encode|decode < lines\n";
    return 2;
  }
  int status = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    Struct in;
    if (auto parsed = google::protobuf::util::JsonStringToMessage(line, &in); !parsed.ok()) {
      std::cout << errorLine("not a JSON object: " + parsed.ToString()) << '\n';
      status = 1;
      continue;
    }
    try {
      if (mode == "encode") {
        std::cout << encode(in) << '\n';
      } else {
        std::string out;
        (void)google::protobuf::util::MessageToJsonString(decode(in), &out);
        std::cout << out << '\n';
      }
    } catch (const CaseError& error) {
      std::cout << errorLine(error.what) << '\n';
      status = 1;
    }
  }
  return status;
}
