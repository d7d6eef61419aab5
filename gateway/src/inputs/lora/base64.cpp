#include "inputs/lora/base64.hpp"

#include <array>

namespace citygate::lora {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> makeTable() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr auto kTable = makeTable();

// Length without padding, or nullopt for impossible padding.
std::optional<std::size_t> unpaddedLength(std::string_view text) {
  std::size_t n = text.size();
  std::size_t pad = 0;
  while (n > 0 && text[n - 1] == '=' && pad < 3) {
    --n;
    ++pad;
  }
  if (pad > 0) {
    if (text.size() % 4 != 0 || pad > 2) return std::nullopt;
  }
  if (n % 4 == 1) return std::nullopt;  // one leftover character cannot carry a byte
  return n;
}

}  // namespace

std::optional<std::size_t> base64DecodedSize(std::string_view text) {
  const auto n = unpaddedLength(text);
  if (!n) return std::nullopt;
  return *n / 4 * 3 + (*n % 4 == 0 ? 0 : *n % 4 - 1);
}

std::optional<std::size_t> decodeBase64(std::string_view text, std::span<std::uint8_t> out) {
  const auto n = unpaddedLength(text);
  if (!n) return std::nullopt;
  const std::size_t bytes = *n / 4 * 3 + (*n % 4 == 0 ? 0 : *n % 4 - 1);
  if (bytes > out.size()) return std::nullopt;
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t w = 0;
  for (std::size_t i = 0; i < *n; ++i) {
    const std::int8_t v = kTable[static_cast<unsigned char>(text[i])];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[w++] = static_cast<std::uint8_t>((acc >> bits) & 0xFF);
    }
  }
  // Canonical encodings leave the unused low bits zero.
  if (bits > 0 && (acc & ((1U << bits) - 1)) != 0) return std::nullopt;
  return w;
}

std::string encodeBase64(std::span<const std::uint8_t> data) {
  std::string s;
  s.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    s.push_back(kAlphabet[(v >> 18) & 63]);
    s.push_back(kAlphabet[(v >> 12) & 63]);
    s.push_back(kAlphabet[(v >> 6) & 63]);
    s.push_back(kAlphabet[v & 63]);
  }
  if (i < data.size()) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (i + 1 < data.size()) v |= std::uint32_t{data[i + 1]} << 8;
    s.push_back(kAlphabet[(v >> 18) & 63]);
    s.push_back(kAlphabet[(v >> 12) & 63]);
    s.push_back(i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=');
    s.push_back('=');
  }
  return s;
}

}  // namespace citygate::lora
