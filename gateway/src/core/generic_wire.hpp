// GenericWire: GenericObservation written straight in protobuf wire format.
//
// A generic sensor carries its points as map<string, Measurement>. Building that map as a protobuf
// Map costs a hash, a node and a rehash per point and then a second walk to serialise it: most of
// the hot path's instructions for a 100-point device. GenericWire appends each map entry's bytes
// as the point is normalised, in point order (the wire format of a map is a repeated entry message,
// in any order). A parser sees exactly the GenericObservation it would see from
// SerializeToString; tests/unit/core/generic_wire_test.cpp checks that against protobuf itself.
//
// A serialised Reading followed by appendTo()'s bytes is that Reading with `generic` (field 13) set:
// protobuf merges an embedded message field wherever it appears.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "citygate/v1/reading.pb.h"

namespace citygate::core {

namespace pb = citygate::v1;

class GenericWire {
 public:
  // A reading's observation is generic once start() is called; reset() for any other kind.
  void start() {
    used_ = 0;
    active_ = true;
  }
  void reset() { active_ = false; }
  bool active() const { return active_; }

  // One entry of `values`.
  void value(std::string_view name, double value, std::string_view unitCode, pb::Quality quality);
  // One entry of `text_values`.
  void text(std::string_view name, std::string_view text);

  // The GenericObservation's serialised form.
  std::string_view bytes() const { return {buffer_.data(), used_}; }
  // Appends Reading.generic (tag, length, bytes()) to a serialised Reading.
  void appendTo(std::string& reading) const;

 private:
  // Room for `n` more bytes after the used ones; returns where they start (the caller adds what
  // it wrote to used_). The buffer only grows, zero-filled once: it is kept from reading to
  // reading, so a point's entry is written straight into it.
  char* room(std::size_t n) {
    if (buffer_.size() - used_ < n) [[unlikely]]
      growBuffer(n);
    return buffer_.data() + used_;
  }
  void growBuffer(std::size_t n);

  std::string buffer_;  // bytes() is its first used_ bytes
  std::size_t used_ = 0;
  bool active_ = false;
};

}  // namespace citygate::core
