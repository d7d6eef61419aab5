// The row type of the generated register map (register_map.hpp in the build directory, made by
// gen_register_map.py from gateway/profiles/citygate-traffic-counter-4lane.textproto).
#pragma once

#include <stdint.h>

namespace citygate::fw::traffic::regmap {

enum class Field : uint8_t { Intensity, Occupancy, Speed, Length, Headway };
enum class Order : uint8_t { Abcd, Cdab, Badc, Dcba };

struct Point {
  uint8_t lane;  // 1..8
  Field field;
  uint16_t address;  // input register, PDU address
  uint8_t words;     // 1: UINT16, 2: UINT32
  Order order;       // of a two-word value
  uint32_t num;      // register = round(native * num / den), native as aggregator.hpp says
  uint32_t den;
};

}  // namespace citygate::fw::traffic::regmap
