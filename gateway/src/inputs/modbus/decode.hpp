// Register decoding: Modbus registers (16-bit, big-endian on the wire) -> numbers and strings,
// for every type and word/byte order. Pure functions, no allocation for numbers.
//
// Orders, A = most significant byte (libmodbus naming; 64-bit types extend the same pattern):
//   ABCD  big-endian words, most significant word first      {0x47F1, 0x2000} = 123456.0f
//   CDAB  word-swapped (least significant word first)        {0x2000, 0x47F1}
//   BADC  bytes swapped inside each word                     {0xF147, 0x0020}
//   DCBA  fully little-endian                                {0x0020, 0xF147}
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "citygate/v1/config.pb.h"

namespace citygate::modbus {

namespace pb = citygate::v1;

// Registers a type occupies (BOOL: 1 bit or 1 register, STRING: stringRegisters).
std::uint32_t registerCount(pb::DataType type, std::uint32_t stringRegisters = 0);

// The value of registers[0..n) as an unsigned integer of n*16 bits in big-endian (ABCD) order,
// after undoing `order`. n is 1, 2 or 4.
std::uint64_t assemble(std::span<const std::uint16_t> regs, pb::WordOrder order);

// Decodes a numeric type. Returns nullopt when there are too few registers or the type is STRING
// or BOOL. Floats that are NaN or infinite are returned as they are; the normaliser marks them BAD.
std::optional<double> decodeNumber(pb::DataType type, pb::WordOrder order, std::span<const std::uint16_t> regs);

// An integer type's "not available" value (ProfilePoint.all_ones_not_available): all bits set for
// an unsigned type, only the sign bit for a signed one (its most negative value), in any order.
// False for other types and when there are too few registers.
bool isNotAvailable(pb::DataType type, pb::WordOrder order, std::span<const std::uint16_t> regs);

// BOOL inside a register: bit 0..15.
inline bool registerBit(std::uint16_t reg, std::uint32_t bit) {
  return ((reg >> bit) & 1U) != 0;
}

// STRING: two characters per register, high byte first (BADC/DCBA: low byte first). Stops at the
// first NUL and trims trailing spaces.
std::string decodeString(pb::WordOrder order, std::span<const std::uint16_t> regs);

// Encoders for tests and the simulators' fixtures.
void encode32(std::uint32_t v, pb::WordOrder order, std::uint16_t out[2]);
void encode64(std::uint64_t v, pb::WordOrder order, std::uint16_t out[4]);

const char* orderName(pb::WordOrder order);

}  // namespace citygate::modbus
