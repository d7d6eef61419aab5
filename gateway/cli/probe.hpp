// `modbus probe`: every type and word/byte-order interpretation of a few registers, side by side,
// so the technician can spot the one that makes sense (the most common Modbus help request is a
// float read in the wrong word order). Pure; decoding is inputs/modbus/decode.hpp, the same code
// the gateway polls with.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cli/format.hpp"

namespace citygate::cli {

struct ProbeCell {
  std::string text;  // number as printed ("123456", "-1.5e-07", "NaN")
  double value = 0;  // for JSON
  bool finite = true;
};

struct ProbeRow {
  std::string type;      // u32 i32 f32 u64 i64 f64
  std::uint32_t at = 0;  // address of the first register
  ProbeCell cells[4];    // ABCD CDAB BADC DCBA
};

struct Probe {
  std::uint32_t address = 0;
  std::vector<std::uint16_t> registers;
  std::vector<ProbeRow> rows32;  // for every start offset that has 2 registers
  std::vector<ProbeRow> rows64;  // for every start offset that has 4 registers
  std::string asciiAB;           // high byte first ('.' for unprintable)
  std::string asciiBA;           // low byte first
};

inline constexpr const char* kOrderNames[4] = {"ABCD", "CDAB", "BADC", "DCBA"};

Probe interpret(std::uint32_t address, std::span<const std::uint16_t> registers);

// The human page: registers (hex, u16, i16, bits, ASCII), then the 32-bit and 64-bit tables.
std::string renderProbe(const Probe& p, const Style& style);
// A stable JSON shape: {"address", "registers", "u16", "i16", "ascii", "32": [{"at","type","ABCD",...}], "64": [...]}.
std::string probeJson(const Probe& p, std::string_view header);

}  // namespace citygate::cli
