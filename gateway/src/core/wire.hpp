// wire: the protobuf wire format, written by hand where building a message would cost a copy or a
// map (the one varint writer in the gateway). Callers name fields by the generated constants
// (pb::ReadingBatch::kReadingsFieldNumber), never by literal numbers: the .proto stays the single
// source of the numbers.
//
// Users: GenericWire (a generic observation's map entries, on the hot path) and each sink's
// framing of a batch (ReadingsSink frames a ReadingBatch from the spool's records). A parser sees
// exactly what protobuf's own serializer would write for the same fields (tests/unit/core/
// wire_test.cpp and generic_wire_test.cpp check that against protobuf).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace citygate::core::wire {

// A map<K, V> is a repeated entry message with the key in field 1 and the value in field 2.
constexpr int kMapKeyField = 1;
constexpr int kMapValueField = 2;

enum class WireType : std::uint8_t { Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5 };

// The tag byte of a field numbered below 16 (every field the gateway writes by hand).
constexpr char tag(int field, WireType type) {
  return static_cast<char>((field << 3) | static_cast<int>(type));
}

inline std::size_t varintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes `v` at `p` (room for varintSize(v) bytes); returns the end.
inline char* putVarint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// Length and bytes at `p`; returns the end.
inline char* putBytes(char* p, std::string_view s) {
  p = putVarint(p, s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Room for `n` more bytes at the end of `out`; returns where they start. finish() trims to the end.
inline char* grow(std::string& out, std::size_t n) {
  const std::size_t at = out.size();
  out.resize(at + n);
  return out.data() + at;
}

inline void finish(std::string& out, const char* end) {
  out.resize(static_cast<std::size_t>(end - out.data()));
}

// Appends field `field` (< 16), length-delimited: a string, bytes or an embedded message's bytes.
// The bytes are copied once (no zero-fill first: this is the per-record step of every batch).
inline void appendLengthDelimited(std::string& out, int field, std::string_view bytes) {
  char head[1 + 10];  // tag, length (a varint of at most 10 bytes)
  head[0] = tag(field, WireType::LengthDelimited);
  const char* end = putVarint(head + 1, bytes.size());
  out.append(head, static_cast<std::size_t>(end - head));
  out.append(bytes);
}

// Appends field `field` (< 16) as a varint (integers, enums, bools).
inline void appendVarintField(std::string& out, int field, std::uint64_t v) {
  char buf[1 + 10];
  buf[0] = tag(field, WireType::Varint);
  const char* end = putVarint(buf + 1, v);
  out.append(buf, static_cast<std::size_t>(end - buf));
}

// A proto3 string field: omitted when empty, as protobuf's serializer does.
inline void appendString(std::string& out, int field, std::string_view s) {
  if (!s.empty()) appendLengthDelimited(out, field, s);
}

}  // namespace citygate::core::wire
