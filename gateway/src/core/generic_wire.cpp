#include "core/generic_wire.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/wire.hpp"

namespace citygate::core {

using wire::kMapKeyField;
using wire::kMapValueField;
using wire::putBytes;
using wire::putVarint;
using wire::tag;
using wire::varintSize;
using wire::WireType;

namespace {

// Writes one `values` entry at `p` (room for its size); returns the end.
char* putValueEntry(char* p, std::string_view name, std::uint64_t bits, std::string_view unitCode, std::uint64_t q,
                    std::size_t measurement, std::size_t entry) {
  *p++ = tag(pb::GenericObservation::kValuesFieldNumber, WireType::LengthDelimited);
  p = putVarint(p, entry);
  *p++ = tag(kMapKeyField, WireType::LengthDelimited);
  p = putBytes(p, name);
  *p++ = tag(kMapValueField, WireType::LengthDelimited);
  p = putVarint(p, measurement);
  if (bits != 0) {
    *p++ = tag(pb::Measurement::kValueFieldNumber, WireType::Fixed64);
    std::memcpy(p, &bits, 8);  // fixed64 is little-endian (static_assert below)
    p += 8;
  }
  if (!unitCode.empty()) {
    *p++ = tag(pb::Measurement::kUnitCodeFieldNumber, WireType::LengthDelimited);
    p = putBytes(p, unitCode);
  }
  if (q != 0) {
    *p++ = tag(pb::Measurement::kQualityFieldNumber, WireType::Varint);
    p = putVarint(p, q);
  }
  return p;
}

static_assert(std::endian::native == std::endian::little, "fixed64 is written with memcpy");

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
  const std::size_t total = 1 + varintSize(entry) + entry;
  // The hot path (one call per point): written straight into the kept buffer.
  char* p = room(total);
  used_ += static_cast<std::size_t>(putValueEntry(p, name, bits, unitCode, q, measurement, entry) - p);
}

void GenericWire::text(std::string_view name, std::string_view text) {
  const std::size_t entry = 1 + varintSize(name.size()) + name.size() + 1 + varintSize(text.size()) + text.size();
  char* const start = room(1 + varintSize(entry) + entry);
  char* p = start;
  *p++ = tag(pb::GenericObservation::kTextValuesFieldNumber, WireType::LengthDelimited);
  p = putVarint(p, entry);
  *p++ = tag(kMapKeyField, WireType::LengthDelimited);
  p = putBytes(p, name);
  *p++ = tag(kMapValueField, WireType::LengthDelimited);
  p = putBytes(p, text);
  used_ += static_cast<std::size_t>(p - start);
}

void GenericWire::growBuffer(std::size_t n) {
  buffer_.resize(std::max(2 * buffer_.size(), used_ + n));
}

void GenericWire::appendTo(std::string& reading) const {
  wire::appendLengthDelimited(reading, pb::Reading::kGenericFieldNumber, bytes());
}

}  // namespace citygate::core
