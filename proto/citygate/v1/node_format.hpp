// The city's sensor-node payloads, "citygate-air" v1 and "citygate-traffic" v1 (LoRaWAN FPort 1):
// the field layouts, their fixed-point scaling, and the one encoder and decoder of each, shared by
// the node firmware (which encodes) and the gateway's codecs (which decode and map the values to
// readings). The byte tables and the worked examples are in README.md beside this file.
//
// No dependency at all: C++17, <stdint.h> and <stddef.h> only (no libstdc++ header or symbol, no
// heap, no exceptions, no floating point), so it builds for a Cortex-M without a C++ library.
// Every function is constexpr, pure and bounded: it never reads or writes past the length it is
// given, and reports what is wrong as a Status value.
//
// Wire values ("raw") are integers: value = raw * num / den, in the field's unit. The all-ones
// value (0xFF, 0xFFFF), or the most negative one for a signed field (0x8000), means "sensor
// fault" (the reading's measurement is BAD). A change of a format is a new version number, never
// a reinterpretation.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace citygate::node_format {

inline constexpr uint8_t kPort = 1;     // LoRaWAN FPort of both formats
inline constexpr uint8_t kVersion = 1;  // byte 0 of both formats

// value = raw * num / den, in FieldLayout::unit.
struct Resolution {
  int32_t num;
  int32_t den;
};

struct FieldLayout {
  const char* name;  // observation field (FIWARE attribute in snake_case)
  uint8_t bytes;     // 1 or 2, big-endian
  bool isSigned;
  Resolution resolution;
  const char* unit;  // unit of the scaled value as sent; "" = the reading's canonical unit
};

enum class Status : uint8_t {
  Ok,
  TooShort,             // shorter than the fixed header
  BadVersion,           // byte 0 is not kVersion
  ReservedBits,         // a reserved bit of the air presence mask is set
  NoField,              // air: a presence mask of 0
  LengthMismatch,       // air: the length is not 3 + 2 x popcount(mask)
  BadPeriod,            // traffic: a period of 0 s
  BadLaneCount,         // traffic: not 1..8 lane records
  TruncatedLaneHeader,  // traffic: the frame ends inside a lane's two header bytes
  BadLaneId,            // traffic: lane id not 1..8
  ReservedLaneBits,     // traffic: bits 6..4 of the lane byte
  ReservedFieldBits,    // traffic: bits 7..6 of the lane's field mask
  LaneRepeated,         // traffic: a lane appears twice
  TruncatedLaneRecord,  // traffic: the frame ends inside a lane's fields
  TrailingBytes,        // traffic: bytes after the last lane record
  BufferTooSmall,       // encode: the output buffer cannot hold the frame
  ValueOutOfRange,      // encode: a raw value the field cannot carry (neither valid nor fault)
};

// ---- per-field helpers ---------------------------------------------------------------------------

// The raw value that means "sensor fault".
constexpr int32_t faultRaw(const FieldLayout& f) {
  const int32_t bits = 8 * f.bytes;
  return f.isSigned ? -(int32_t{1} << (bits - 1)) : (int32_t{1} << bits) - 1;
}
// The smallest and largest raw values that carry a measurement (the fault value excluded).
constexpr int32_t minRaw(const FieldLayout& f) {
  return f.isSigned ? faultRaw(f) + 1 : 0;
}
constexpr int32_t maxRaw(const FieldLayout& f) {
  return f.isSigned ? (int32_t{1} << (8 * f.bytes - 1)) - 1 : faultRaw(f) - 1;
}
constexpr bool isFault(const FieldLayout& f, int32_t raw) {
  return raw == faultRaw(f);
}

// The raw value of a measurement given as value / valueDen in the field's unit (for instance
// 18250 / 1000 for 18.25 °C), rounded to the nearest step (halves away from zero) and saturated
// to [minRaw, maxRaw]: a node never sends the fault value for a measurement out of range.
// valueDen must be > 0.
constexpr int32_t toRaw(const FieldLayout& f, int64_t value, int64_t valueDen) {
  const int64_t num = value * f.resolution.den;
  const int64_t den = valueDen * f.resolution.num;
  int64_t q = num / den;
  const int64_t r = num % den;
  if (2 * (r < 0 ? -r : r) >= den) q += (num < 0) ? -1 : 1;
  if (q < minRaw(f)) return minRaw(f);
  if (q > maxRaw(f)) return maxRaw(f);
  return static_cast<int32_t>(q);
}

// The measurement of `raw` as value / den (den = FieldLayout::resolution.den): integer maths, no
// rounding, for a node's own log or display. Not meaningful for the fault value.
constexpr int64_t scaledNumerator(const FieldLayout& f, int32_t raw) {
  return static_cast<int64_t>(raw) * f.resolution.num;
}

namespace detail {

constexpr int32_t readRaw(const FieldLayout& f, const uint8_t* p) {
  if (f.bytes == 1) return f.isSigned ? static_cast<int8_t>(p[0]) : p[0];
  const auto w = static_cast<uint16_t>((p[0] << 8) | p[1]);
  return f.isSigned ? static_cast<int16_t>(w) : w;
}

constexpr void writeRaw(const FieldLayout& f, int32_t raw, uint8_t* p) {
  const auto bits = static_cast<uint32_t>(raw);  // two's complement: the low bytes are the wire
  if (f.bytes == 1) {
    p[0] = static_cast<uint8_t>(bits);
  } else {
    p[0] = static_cast<uint8_t>(bits >> 8);
    p[1] = static_cast<uint8_t>(bits);
  }
}

constexpr bool carries(const FieldLayout& f, int32_t raw) {
  return isFault(f, raw) || (raw >= minRaw(f) && raw <= maxRaw(f));
}

}  // namespace detail

struct Encoded {
  Status status = Status::Ok;
  size_t size = 0;  // bytes written (0 unless Ok)
};

// ---- citygate-air v1 ------------------------------------------------------------------------------
// version (1), presence mask (2, bit i set: field i follows), then one u16/i16 per set bit, in bit
// order. Bit 15 is reserved. Exactly 3 + 2 x popcount(mask) bytes, at least one field.
namespace air {

enum class Field : uint8_t {
  Pm1,
  Pm25,
  Pm4,
  Pm10,
  No2,
  No,
  O3,
  So2,
  Co,
  Co2,
  Temperature,
  RelativeHumidity,
  Pressure,
  WindSpeed,
  WindDirection,
};
inline constexpr size_t kFieldCount = 15;

// kFields[i] is the field of mask bit i.
inline constexpr FieldLayout kFields[kFieldCount] = {
    {"pm1", 2, false, {1, 10}, "ug/m3"},
    {"pm25", 2, false, {1, 10}, "ug/m3"},
    {"pm4", 2, false, {1, 10}, "ug/m3"},
    {"pm10", 2, false, {1, 10}, "ug/m3"},
    {"no2", 2, false, {1, 10}, "ppb"},
    {"no", 2, false, {1, 10}, "ppb"},
    {"o3", 2, false, {1, 10}, "ppb"},
    {"so2", 2, false, {1, 10}, "ppb"},
    {"co", 2, false, {1, 1000}, "ppm"},
    {"co2", 2, false, {1, 1}, "ppm"},
    {"temperature", 2, true, {1, 100}, "degC"},
    {"relative_humidity", 2, false, {1, 100}, "%"},
    {"pressure", 2, false, {1, 10}, "hPa"},
    {"wind_speed", 2, false, {1, 100}, "m/s"},
    {"wind_direction", 2, false, {1, 10}, "deg"},
};
inline constexpr uint16_t kReservedMask = 0x8000;
inline constexpr size_t kHeaderBytes = 3;
inline constexpr size_t kMaxBytes = kHeaderBytes + 2 * kFieldCount;  // 33

constexpr const FieldLayout& layout(Field f) {
  return kFields[static_cast<size_t>(f)];
}
constexpr uint16_t bit(Field f) {
  return static_cast<uint16_t>(1U << static_cast<unsigned>(f));
}

// One frame: mask bit i set = raw[i] is sent.
struct Frame {
  uint16_t mask = 0;
  int32_t raw[kFieldCount] = {};
};

constexpr bool has(const Frame& frame, Field f) {
  return (frame.mask & bit(f)) != 0;
}
constexpr void set(Frame& frame, Field f, int32_t raw) {
  frame.mask = static_cast<uint16_t>(frame.mask | bit(f));
  frame.raw[static_cast<size_t>(f)] = raw;
}
constexpr void setFault(Frame& frame, Field f) {
  set(frame, f, faultRaw(layout(f)));
}

// Bytes of a frame with this presence mask (reserved bits ignored).
constexpr size_t encodedSize(uint16_t mask) {
  size_t n = kHeaderBytes;
  for (size_t i = 0; i < kFieldCount; ++i) {
    if ((static_cast<unsigned>(mask) >> i) & 1U) n += kFields[i].bytes;
  }
  return n;
}

constexpr Encoded encode(const Frame& frame, uint8_t* out, size_t capacity) {
  if ((frame.mask & kReservedMask) != 0) return {Status::ReservedBits, 0};
  if (frame.mask == 0) return {Status::NoField, 0};
  for (size_t i = 0; i < kFieldCount; ++i) {
    if (((frame.mask >> i) & 1U) && !detail::carries(kFields[i], frame.raw[i])) return {Status::ValueOutOfRange, 0};
  }
  const size_t size = encodedSize(frame.mask);
  if (size > capacity) return {Status::BufferTooSmall, 0};
  out[0] = kVersion;
  out[1] = static_cast<uint8_t>(frame.mask >> 8);
  out[2] = static_cast<uint8_t>(frame.mask);
  size_t pos = kHeaderBytes;
  for (size_t i = 0; i < kFieldCount; ++i) {
    if ((frame.mask >> i) & 1U) {
      detail::writeRaw(kFields[i], frame.raw[i], out + pos);
      pos += kFields[i].bytes;
    }
  }
  return {Status::Ok, size};
}

// `frame` is reset first; on an error its content is unspecified.
constexpr Status decode(const uint8_t* p, size_t size, Frame& frame) {
  frame = Frame{};
  if (size < kHeaderBytes) return Status::TooShort;
  if (p[0] != kVersion) return Status::BadVersion;
  const auto mask = static_cast<uint16_t>((p[1] << 8) | p[2]);
  if ((mask & kReservedMask) != 0) return Status::ReservedBits;
  if (mask == 0) return Status::NoField;
  if (size != encodedSize(mask)) return Status::LengthMismatch;
  size_t pos = kHeaderBytes;
  for (size_t i = 0; i < kFieldCount; ++i) {
    if ((mask >> i) & 1U) {
      frame.raw[i] = detail::readRaw(kFields[i], p + pos);
      pos += kFields[i].bytes;
    }
  }
  frame.mask = mask;
  return Status::Ok;
}

constexpr const char* describe(Status s) {
  switch (s) {
    case Status::Ok:
      return "air";
    case Status::TooShort:
      return "air frame needs version and mask";
    case Status::BadVersion:
      return "unsupported air frame version";
    case Status::ReservedBits:
      return "reserved mask bit 15 set";
    case Status::NoField:
      return "air frame with no field";
    case Status::LengthMismatch:
      return "air frame length does not match its mask";
    case Status::BufferTooSmall:
      return "output buffer too small for the air frame";
    case Status::ValueOutOfRange:
      return "raw value outside its field's range";
    default:
      return "invalid air frame";
  }
}

}  // namespace air

// ---- citygate-traffic v1 --------------------------------------------------------------------------
// version (1), period in seconds (2, 1..65535), lane count (1, 1..8), then per lane: lane byte
// (bits 3..0 lane id 1..8, bit 7 congested, bits 6..4 reserved), field mask (bits 7..6 reserved),
// the present fields in bit order. The frame ends exactly after the last lane record.
namespace traffic {

enum class Field : uint8_t {
  Intensity,
  Occupancy,
  AverageVehicleSpeed,
  AverageVehicleLength,
  AverageHeadwayTime,
  AverageGapDistance,
};
inline constexpr size_t kFieldCount = 6;

// kFields[i] is the field of a lane's mask bit i.
inline constexpr FieldLayout kFields[kFieldCount] = {
    {"intensity", 2, false, {1, 1}, ""},    // vehicles in the period
    {"occupancy", 1, false, {1, 200}, ""},  // 0.5 % steps, as a fraction 0..1
    {"average_vehicle_speed", 2, false, {1, 10}, "km/h"},
    {"average_vehicle_length", 1, false, {1, 10}, "m"},
    {"average_headway_time", 2, false, {1, 10}, "s"},
    {"average_gap_distance", 2, false, {1, 10}, "m"},
};
inline constexpr size_t kMaxLanes = 8;
inline constexpr uint8_t kLaneIdMask = 0x0F;
inline constexpr uint8_t kCongestedBit = 0x80;
inline constexpr uint8_t kReservedLaneBits = 0x70;
inline constexpr uint8_t kReservedFieldBits = 0xC0;
inline constexpr size_t kHeaderBytes = 4;
inline constexpr size_t kLaneHeaderBytes = 2;
inline constexpr size_t kMaxLaneBytes = kLaneHeaderBytes + 2 + 1 + 2 + 1 + 2 + 2;  // 12
inline constexpr size_t kMaxBytes = kHeaderBytes + kMaxLanes * kMaxLaneBytes;      // 100

constexpr const FieldLayout& layout(Field f) {
  return kFields[static_cast<size_t>(f)];
}
constexpr uint8_t bit(Field f) {
  return static_cast<uint8_t>(1U << static_cast<unsigned>(f));
}

// One lane record: mask bit i set = raw[i] is sent.
struct Lane {
  uint8_t id = 0;  // 1..8
  bool congested = false;
  uint8_t mask = 0;
  int32_t raw[kFieldCount] = {};
};

// lanes[0 .. laneCount) in the order they are sent.
struct Frame {
  uint16_t periodS = 0;
  uint8_t laneCount = 0;
  Lane lanes[kMaxLanes] = {};
};

constexpr bool has(const Lane& lane, Field f) {
  return (lane.mask & bit(f)) != 0;
}
constexpr void set(Lane& lane, Field f, int32_t raw) {
  lane.mask = static_cast<uint8_t>(lane.mask | bit(f));
  lane.raw[static_cast<size_t>(f)] = raw;
}
constexpr void setFault(Lane& lane, Field f) {
  set(lane, f, faultRaw(layout(f)));
}

// Bytes of one lane record with this field mask (reserved bits ignored).
constexpr size_t laneSize(uint8_t mask) {
  size_t n = kLaneHeaderBytes;
  for (size_t i = 0; i < kFieldCount; ++i) {
    if ((static_cast<unsigned>(mask) >> i) & 1U) n += kFields[i].bytes;
  }
  return n;
}

constexpr Encoded encode(const Frame& frame, uint8_t* out, size_t capacity) {
  if (frame.periodS == 0) return {Status::BadPeriod, 0};
  if (frame.laneCount == 0 || frame.laneCount > kMaxLanes) return {Status::BadLaneCount, 0};
  size_t size = kHeaderBytes;
  unsigned seen = 0;
  for (size_t l = 0; l < frame.laneCount; ++l) {
    const Lane& lane = frame.lanes[l];
    if (lane.id == 0 || lane.id > kMaxLanes) return {Status::BadLaneId, 0};
    if ((lane.mask & kReservedFieldBits) != 0) return {Status::ReservedFieldBits, 0};
    if ((seen >> lane.id) & 1U) return {Status::LaneRepeated, 0};
    seen |= 1U << lane.id;
    for (size_t i = 0; i < kFieldCount; ++i) {
      if (((lane.mask >> i) & 1U) && !detail::carries(kFields[i], lane.raw[i])) return {Status::ValueOutOfRange, 0};
    }
    size += laneSize(lane.mask);
  }
  if (size > capacity) return {Status::BufferTooSmall, 0};
  out[0] = kVersion;
  out[1] = static_cast<uint8_t>(frame.periodS >> 8);
  out[2] = static_cast<uint8_t>(frame.periodS);
  out[3] = frame.laneCount;
  size_t pos = kHeaderBytes;
  for (size_t l = 0; l < frame.laneCount; ++l) {
    const Lane& lane = frame.lanes[l];
    out[pos] = static_cast<uint8_t>(lane.id | (lane.congested ? kCongestedBit : 0));
    out[pos + 1] = lane.mask;
    pos += kLaneHeaderBytes;
    for (size_t i = 0; i < kFieldCount; ++i) {
      if ((lane.mask >> i) & 1U) {
        detail::writeRaw(kFields[i], lane.raw[i], out + pos);
        pos += kFields[i].bytes;
      }
    }
  }
  return {Status::Ok, size};
}

// `frame` is reset first; on an error its content is unspecified.
constexpr Status decode(const uint8_t* p, size_t size, Frame& frame) {
  frame = Frame{};
  if (size < kHeaderBytes) return Status::TooShort;
  if (p[0] != kVersion) return Status::BadVersion;
  const auto period = static_cast<uint16_t>((p[1] << 8) | p[2]);
  if (period == 0) return Status::BadPeriod;
  const uint8_t lanes = p[3];
  if (lanes == 0 || lanes > kMaxLanes) return Status::BadLaneCount;
  size_t pos = kHeaderBytes;
  unsigned seen = 0;
  for (size_t l = 0; l < lanes; ++l) {
    if (size - pos < kLaneHeaderBytes) return Status::TruncatedLaneHeader;
    const uint8_t laneByte = p[pos];
    const uint8_t mask = p[pos + 1];
    const auto id = static_cast<uint8_t>(laneByte & kLaneIdMask);
    if (id == 0 || id > kMaxLanes) return Status::BadLaneId;
    if ((laneByte & kReservedLaneBits) != 0) return Status::ReservedLaneBits;
    if ((mask & kReservedFieldBits) != 0) return Status::ReservedFieldBits;
    if ((seen >> id) & 1U) return Status::LaneRepeated;
    seen |= 1U << id;
    if (size - pos < laneSize(mask)) return Status::TruncatedLaneRecord;
    Lane& lane = frame.lanes[l];
    lane.id = id;
    lane.congested = (laneByte & kCongestedBit) != 0;
    lane.mask = mask;
    pos += kLaneHeaderBytes;
    for (size_t i = 0; i < kFieldCount; ++i) {
      if ((mask >> i) & 1U) {
        lane.raw[i] = detail::readRaw(kFields[i], p + pos);
        pos += kFields[i].bytes;
      }
    }
  }
  if (pos != size) return Status::TrailingBytes;
  frame.periodS = period;
  frame.laneCount = lanes;
  return Status::Ok;
}

constexpr const char* describe(Status s) {
  switch (s) {
    case Status::Ok:
      return "traffic";
    case Status::TooShort:
      return "traffic frame needs version, period and lane count";
    case Status::BadVersion:
      return "unsupported traffic frame version";
    case Status::BadPeriod:
      return "traffic period of 0 s";
    case Status::BadLaneCount:
      return "traffic lane count must be 1..8";
    case Status::TruncatedLaneHeader:
      return "truncated lane header";
    case Status::BadLaneId:
      return "lane id must be 1..8";
    case Status::ReservedLaneBits:
      return "reserved lane bits set";
    case Status::ReservedFieldBits:
      return "reserved field-mask bits set";
    case Status::LaneRepeated:
      return "lane repeated";
    case Status::TruncatedLaneRecord:
      return "truncated lane record";
    case Status::TrailingBytes:
      return "bytes after the last lane";
    case Status::BufferTooSmall:
      return "output buffer too small for the traffic frame";
    case Status::ValueOutOfRange:
      return "raw value outside its field's range";
    default:
      return "invalid traffic frame";
  }
}

}  // namespace traffic

}  // namespace citygate::node_format
