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
    bytes_.clear();
    active_ = true;
  }
  void reset() { active_ = false; }
  bool active() const { return active_; }

  // One entry of `values`.
  void value(std::string_view name, double value, std::string_view unitCode, pb::Quality quality);
  // One entry of `text_values`.
  void text(std::string_view name, std::string_view text);

  // The GenericObservation's serialised form.
  std::string_view bytes() const { return bytes_; }
  // Appends Reading.generic (tag, length, bytes()) to a serialised Reading.
  void appendTo(std::string& reading) const;

 private:
  std::string bytes_;  // capacity kept from reading to reading
  bool active_ = false;
};

}  // namespace citygate::core
