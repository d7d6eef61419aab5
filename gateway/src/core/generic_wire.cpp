#include "core/generic_wire.hpp"

#include <bit>
#include <cstring>

namespace citygate::core {
namespace {

// Wire types: 0 varint, 1 64-bit, 2 length-delimited.
constexpr char tag(int field, int wireType) {
  return static_cast<char>((field << 3) | wireType);
}

std::size_t varintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* putVarint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

char* putBytes(char* p, std::string_view s) {
  p = putVarint(p, s.size());
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Room for `n` more bytes at the end of `out`; returns where they start. The caller trims.
char* grow(std::string& out, std::size_t n) {
  const std::size_t at = out.size();
  out.resize(at + n);
  return out.data() + at;
}

void finish(std::string& out, const char* end) {
  out.resize(static_cast<std::size_t>(end - out.data()));
}

}  // namespace

void GenericWire::value(std::string_view name, double value, std::string_view unitCode, pb::Quality quality) {
  // Measurement: value (1, fixed64; proto3 omits +0.0), unit_code (2), quality (3, omitted when 0).
  const auto bits = std::bit_cast<std::uint64_t>(value);
  const auto q = static_cast<std::uint64_t>(static_cast<std::int64_t>(quality));  // enums are int32
  const std::size_t measurement = (bits != 0 ? 9 : 0) +
                                  (unitCode.empty() ? 0 : 1 + varintSize(unitCode.size()) + unitCode.size()) +
                                  (q != 0 ? 1 + varintSize(q) : 0);
  // Map entry: key (1), value (2). protobuf writes both even when empty.
  const std::size_t entry = 1 + varintSize(name.size()) + name.size() + 1 + varintSize(measurement) + measurement;
  char* p = grow(bytes_, 1 + varintSize(entry) + entry);
  *p++ = tag(pb::GenericObservation::kValuesFieldNumber, 2);
  p = putVarint(p, entry);
  *p++ = tag(1, 2);
  p = putBytes(p, name);
  *p++ = tag(2, 2);
  p = putVarint(p, measurement);
  if (bits != 0) {
    *p++ = tag(pb::Measurement::kValueFieldNumber, 1);
    for (int i = 0; i < 8; ++i) *p++ = static_cast<char>(bits >> (8 * i));
  }
  if (!unitCode.empty()) {
    *p++ = tag(pb::Measurement::kUnitCodeFieldNumber, 2);
    p = putBytes(p, unitCode);
  }
  if (q != 0) {
    *p++ = tag(pb::Measurement::kQualityFieldNumber, 0);
    p = putVarint(p, q);
  }
  finish(bytes_, p);
}

void GenericWire::text(std::string_view name, std::string_view text) {
  const std::size_t entry = 1 + varintSize(name.size()) + name.size() + 1 + varintSize(text.size()) + text.size();
  char* p = grow(bytes_, 1 + varintSize(entry) + entry);
  *p++ = tag(pb::GenericObservation::kTextValuesFieldNumber, 2);
  p = putVarint(p, entry);
  *p++ = tag(1, 2);
  p = putBytes(p, name);
  *p++ = tag(2, 2);
  p = putBytes(p, text);
  finish(bytes_, p);
}

void GenericWire::appendTo(std::string& reading) const {
  char* p = grow(reading, 1 + varintSize(bytes_.size()) + bytes_.size());
  *p++ = tag(pb::Reading::kGenericFieldNumber, 2);
  p = putBytes(p, bytes_);
  finish(reading, p);
}

}  // namespace citygate::core
