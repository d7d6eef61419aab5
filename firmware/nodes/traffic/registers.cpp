#include "nodes/traffic/registers.hpp"

namespace citygate::fw::traffic {
namespace {

FieldKind kindOf(regmap::Field f) {
  switch (f) {
    case regmap::Field::Intensity:
      return FieldKind::Intensity;
    case regmap::Field::Occupancy:
      return FieldKind::Occupancy;
    case regmap::Field::Speed:
      return FieldKind::Speed;
    case regmap::Field::Length:
      return FieldKind::Length;
    case regmap::Field::Headway:
      return FieldKind::Headway;
  }
  return FieldKind::Intensity;
}

uint32_t notAvailable(const regmap::Point& p) {
  return p.words == 2 ? 0xFFFFFFFFu : 0xFFFFu;
}

void put(const regmap::Point& p, uint32_t v, uint16_t* regs) {
  if (p.words == 1) {
    regs[p.address] = static_cast<uint16_t>(v);
    return;
  }
  const uint16_t hi = static_cast<uint16_t>(v >> 16);
  const uint16_t lo = static_cast<uint16_t>(v);
  auto swap = [](uint16_t w) { return static_cast<uint16_t>((w << 8) | (w >> 8)); };
  switch (p.order) {
    case regmap::Order::Abcd:
      regs[p.address] = hi, regs[p.address + 1] = lo;
      break;
    case regmap::Order::Cdab:
      regs[p.address] = lo, regs[p.address + 1] = hi;
      break;
    case regmap::Order::Badc:
      regs[p.address] = swap(hi), regs[p.address + 1] = swap(lo);
      break;
    case regmap::Order::Dcba:
      regs[p.address] = swap(lo), regs[p.address + 1] = swap(hi);
      break;
  }
}

}  // namespace

bool registerValue(const regmap::Point& point, NativeValue native, uint32_t& out) {
  if (native.denominator == 0 || point.den == 0) return false;
  const uint64_t n = native.numerator * point.num;
  const uint64_t d = native.denominator * point.den;
  const uint64_t v = (n + d / 2) / d;
  const uint64_t top = notAvailable(point) - 1u;
  out = static_cast<uint32_t>(v > top ? top : v);
  return true;
}

void renderRegisters(const PeriodTotals* period, uint8_t laneMask, uint16_t (&registers)[kRegisterCount]) {
  for (auto& r : registers) r = 0;
  for (const regmap::Point& p : regmap::kPoints) {
    uint32_t v = notAvailable(p);
    if (period != nullptr && (laneMask & (1u << (p.lane - 1))) != 0) {
      uint32_t value = 0;
      if (registerValue(p, nativeValue(*period, p.lane, kindOf(p.field)), value)) v = value;
    }
    put(p, v, registers);
  }
}

}  // namespace citygate::fw::traffic
