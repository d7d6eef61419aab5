#include "inputs/lora/codecs/lpp.hpp"

namespace citygate::lora {

namespace {

struct LppType {
  std::uint8_t type;
  std::string_view name;
  std::uint8_t size;   // bytes of data
  std::uint8_t count;  // values
  double divisor;      // value = raw / divisor (per value; GPS altitude differs, see below)
  bool isSigned;
};

// myDevices' table plus the ElectronicCats / TTN extensions (docs: protocols.md 3.8).
constexpr std::array kTypes{
    LppType{0, "digital_input", 1, 1, 1, false}, LppType{1, "digital_output", 1, 1, 1, false},
    LppType{2, "analog_input", 2, 1, 100, true}, LppType{3, "analog_output", 2, 1, 100, true},
    LppType{100, "generic", 4, 1, 1, false},     LppType{101, "illuminance", 2, 1, 1, false},
    LppType{102, "presence", 1, 1, 1, false},    LppType{103, "temperature", 2, 1, 10, true},
    LppType{104, "humidity", 1, 1, 2, false},    LppType{113, "accelerometer", 6, 3, 1000, true},
    LppType{115, "barometer", 2, 1, 10, false},  LppType{116, "voltage", 2, 1, 100, false},
    LppType{117, "current", 2, 1, 1000, false},  LppType{118, "frequency", 4, 1, 1, false},
    LppType{120, "percentage", 1, 1, 1, false},  LppType{121, "altitude", 2, 1, 1, true},
    LppType{128, "power", 2, 1, 1, false},       LppType{130, "distance", 4, 1, 1000, false},
    LppType{131, "energy", 4, 1, 1000, false},   LppType{132, "direction", 2, 1, 1, false},
    LppType{133, "unix_time", 4, 1, 1, false},   LppType{134, "gyrometer", 6, 3, 100, true},
    LppType{136, "gps", 9, 3, 10000, true},      LppType{142, "switch", 1, 1, 1, false},
    LppType{143, "ppm", 2, 1, 1, false},         LppType{144, "rgb", 3, 3, 1, false},
};

const LppType* findType(std::uint8_t t) {
  for (const auto& e : kTypes) {
    if (e.type == t) return &e;
  }
  return nullptr;
}

// Big-endian integer of `n` bytes, sign-extended when asked.
double readInt(const std::uint8_t* p, std::size_t n, bool isSigned) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  if (isSigned && n < 4 && (v & (1U << (8 * n - 1))) != 0) {
    return static_cast<double>(static_cast<std::int64_t>(v) - (std::int64_t{1} << (8 * n)));
  }
  if (isSigned && n == 4) return static_cast<double>(static_cast<std::int32_t>(v));
  return static_cast<double>(v);
}

}  // namespace

std::string_view lppTypeName(std::uint8_t type) {
  const LppType* t = findType(type);
  return t ? t->name : std::string_view{};
}

const char* nextLppItem(std::span<const std::uint8_t> p, std::size_t& i, LppItem& it) {
  if (i + 2 > p.size()) return "truncated LPP entry header";
  it = LppItem{};
  it.channel = p[i];
  it.type = p[i + 1];
  const LppType* t = findType(it.type);
  if (t == nullptr) return "unknown LPP type";
  if (i + 2 + t->size > p.size()) return "truncated LPP entry";
  const std::uint8_t* d = p.data() + i + 2;
  it.count = t->count;
  if (t->count == 1) {
    it.values[0] = readInt(d, t->size, t->isSigned) / t->divisor;
  } else if (t->type == 136) {
    // GPS: latitude and longitude 3 bytes at 0.0001°, altitude 3 bytes at 0.01 m.
    it.values[0] = readInt(d, 3, true) / 10000.0;
    it.values[1] = readInt(d + 3, 3, true) / 10000.0;
    it.values[2] = readInt(d + 6, 3, true) / 100.0;
  } else {
    const std::size_t each = t->size / t->count;
    for (std::size_t k = 0; k < t->count; ++k) it.values[k] = readInt(d + k * each, each, t->isSigned) / t->divisor;
  }
  i += 2 + t->size;
  return nullptr;
}

DecodeResult LppCodec::decode(std::uint8_t /*fport*/, std::span<const std::uint8_t> payload,
                              std::span<core::RawValue> values) const {
  // Every FPort carries LPP for an LPP device. A mapped channel seen twice in one frame, or
  // carrying a multi-value type, is ambiguous: its point is BAD.
  std::array<bool, 256> seen{};
  bool any = false;
  const char* err = nullptr;
  std::size_t pos = 0;
  LppItem it;
  while (pos < payload.size()) {
    if ((err = nextLppItem(payload, pos, it)) != nullptr) break;
    const std::int16_t point = map_[it.channel];
    if (point < 0) continue;
    const auto idx = static_cast<std::size_t>(point);
    any = true;
    if (seen[it.channel] || it.count != 1) {
      setBad(values, idx);
    } else {
      setValue(values, idx, it.values[0]);
    }
    seen[it.channel] = true;
  }
  if (err != nullptr) return {DecodeStatus::Malformed, err, {}};
  if (!any) return {DecodeStatus::NoReading, "no configured channel in the frame", {}};
  return {DecodeStatus::Reading, "lpp", {}};
}

}  // namespace citygate::lora
