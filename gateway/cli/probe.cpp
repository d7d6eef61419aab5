#include "cli/probe.hpp"

#include <cmath>
#include <cstdio>

#include "inputs/modbus/decode.hpp"

namespace citygate::cli {

namespace {

constexpr pb::WordOrder kOrders[4] = {pb::ABCD, pb::CDAB, pb::BADC, pb::DCBA};

ProbeCell cell(pb::DataType type, pb::WordOrder order, std::span<const std::uint16_t> regs) {
  ProbeCell c;
  const auto v = modbus::decodeNumber(type, order, regs);
  if (!v) {
    c.text = "-";
    c.finite = false;
    return c;
  }
  c.value = *v;
  c.finite = std::isfinite(*v);
  if (type == pb::UINT64 || type == pb::INT64 || type == pb::UINT32 || type == pb::INT32) {
    // Integers exactly (a double holds 53 bits; print the assembled words instead).
    const std::uint64_t raw = modbus::assemble(regs, order);
    if (type == pb::UINT64) {
      c.text = std::to_string(raw);
    } else if (type == pb::INT64) {
      c.text = std::to_string(static_cast<std::int64_t>(raw));
    } else if (type == pb::UINT32) {
      c.text = std::to_string(static_cast<std::uint32_t>(raw));
    } else {
      c.text = std::to_string(static_cast<std::int32_t>(static_cast<std::uint32_t>(raw)));
    }
    return c;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, type == pb::FLOAT32 ? "%.7g" : "%.15g", *v);
  c.text = std::isnan(*v) ? "NaN" : std::isinf(*v) ? (*v > 0 ? "inf" : "-inf") : buf;
  return c;
}

char printable(unsigned c) {
  return c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '.';
}

std::string bits(std::uint16_t r) {
  std::string s;
  for (int b = 15; b >= 0; --b) {
    s.push_back(((r >> b) & 1U) != 0 ? '1' : '0');
    if (b == 8) s.push_back(' ');
  }
  return s;
}

}  // namespace

Probe interpret(std::uint32_t address, std::span<const std::uint16_t> regs) {
  Probe p;
  p.address = address;
  p.registers.assign(regs.begin(), regs.end());
  for (std::size_t at = 0; at + 2 <= regs.size(); ++at) {
    for (const auto type : {pb::UINT32, pb::INT32, pb::FLOAT32}) {
      ProbeRow row;
      row.type = type == pb::UINT32 ? "u32" : type == pb::INT32 ? "i32" : "f32";
      row.at = address + static_cast<std::uint32_t>(at);
      for (int o = 0; o < 4; ++o) row.cells[o] = cell(type, kOrders[o], regs.subspan(at, 2));
      p.rows32.push_back(std::move(row));
    }
  }
  for (std::size_t at = 0; at + 4 <= regs.size(); ++at) {
    for (const auto type : {pb::UINT64, pb::INT64, pb::FLOAT64}) {
      ProbeRow row;
      row.type = type == pb::UINT64 ? "u64" : type == pb::INT64 ? "i64" : "f64";
      row.at = address + static_cast<std::uint32_t>(at);
      for (int o = 0; o < 4; ++o) row.cells[o] = cell(type, kOrders[o], regs.subspan(at, 4));
      p.rows64.push_back(std::move(row));
    }
  }
  for (const auto r : regs) {
    p.asciiAB += printable(r >> 8);
    p.asciiAB += printable(r & 0xFFU);
    p.asciiBA += printable(r & 0xFFU);
    p.asciiBA += printable(r >> 8);
  }
  return p;
}

std::string renderProbe(const Probe& p, const Style& style) {
  std::string out;
  Table regs({"REG", "HEX", "U16", "I16", "BITS (15..0)", "ASCII"});
  for (std::size_t i = 0; i < p.registers.size(); ++i) {
    const auto r = p.registers[i];
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%04X", r);
    const std::string ascii = {'"', printable(r >> 8), printable(r & 0xFFU), '"'};
    regs.add({std::to_string(p.address + i), hex, std::to_string(r), std::to_string(static_cast<std::int16_t>(r)),
              bits(r), ascii});
  }
  out += regs.render(style);
  // The four orders side by side; when that is wider than the terminal, two tables of two orders.
  auto numbers = [&](const std::vector<ProbeRow>& rows, const char* title) {
    if (rows.empty()) return;
    auto table = [&](std::initializer_list<std::size_t> orders) {
      std::vector<std::string> head{title, "AT"};
      for (auto o : orders) head.emplace_back(kOrderNames[o]);
      Table t(head);
      for (const auto& row : rows) {
        std::vector<std::string> cells{row.type, std::to_string(row.at)};
        for (auto o : orders) cells.push_back(row.cells[o].text);
        t.add(cells);
      }
      return t.render(style);
    };
    const std::string all = table({0, 1, 2, 3});
    std::size_t widest = 0;
    for (std::size_t at = 0, nl; at < all.size(); at = nl + 1) {
      nl = all.find('\n', at);
      if (nl == std::string::npos) nl = all.size();
      widest = std::max(widest, displayWidth(std::string_view(all).substr(at, nl - at)));
    }
    out += style.width == 0 || widest <= style.width ? "\n" + all : "\n" + table({0, 1}) + "\n" + table({2, 3});
  };
  numbers(p.rows32, "32-BIT");
  numbers(p.rows64, "64-BIT");
  out += "\nSTRING  AB (high byte first): \"" + p.asciiAB + "\"\n        BA (low byte first):  \"" + p.asciiBA + "\"\n";
  out += style.paint(
      "ABCD = big-endian; CDAB = words swapped; BADC = bytes swapped in each word;\n"
      "DCBA = little-endian. The profile's point needs the type and `order` of the\n"
      "column that shows the expected value.\n",
      Colour::Dim);
  return out;
}

std::string probeJson(const Probe& p, std::string_view header) {
  std::string out = "{";
  out += header;
  out += "\"address\":" + std::to_string(p.address) + ",\"registers\":[";
  for (std::size_t i = 0; i < p.registers.size(); ++i) out += (i ? "," : "") + std::to_string(p.registers[i]);
  out += "],\"i16\":[";
  for (std::size_t i = 0; i < p.registers.size(); ++i) {
    out += (i ? "," : "") + std::to_string(static_cast<std::int16_t>(p.registers[i]));
  }
  out += "],\"ascii_ab\":" + jsonString(p.asciiAB) + ",\"ascii_ba\":" + jsonString(p.asciiBA);
  auto rows = [&](const std::vector<ProbeRow>& rs, const char* key) {
    out += ",\"";
    out += key;
    out += "\":[";
    for (std::size_t i = 0; i < rs.size(); ++i) {
      const auto& r = rs[i];
      out += (i ? "," : "") + std::string("{\"type\":\"") + r.type + "\",\"at\":" + std::to_string(r.at);
      for (int o = 0; o < 4; ++o) {
        out += ",\"";
        out += kOrderNames[o];
        out += "\":";
        // Integers as exact numbers; floats as numbers when finite, else as strings ("NaN").
        const bool integer = r.type[0] != 'f';
        out += integer ? r.cells[o].text : r.cells[o].finite ? r.cells[o].text : jsonString(r.cells[o].text);
      }
      out += "}";
    }
    out += "]";
  };
  rows(p.rows32, "bits32");
  rows(p.rows64, "bits64");
  out += "}";
  return out;
}

}  // namespace citygate::cli
