#include "inputs/lora/state_file.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

namespace citygate::lora {

namespace {

constexpr std::array<std::uint32_t, 256> makeCrcTable() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = makeCrcTable();

constexpr std::string_view kCrcPrefix = "crc32 ";
constexpr std::size_t kCrcLineLength = kCrcPrefix.size() + 8;  // without its '\n'

}  // namespace

std::uint32_t crc32(std::string_view data) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (char ch : data) c = kCrcTable[(c ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

std::string frameTextState(std::string_view head, std::string_view lines) {
  std::string s;
  s.reserve(head.size() + 1 + lines.size() + kCrcLineLength + 1);
  s.append(head).append("\n").append(lines);
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08X", crc32(s));
  s.append(kCrcPrefix).append(crc).append("\n");
  return s;
}

std::optional<TextState> unframeTextState(std::string_view text, const TextStateHeadCheck& checkHead,
                                          std::string* why) {
  auto fail = [why](std::string msg) -> std::optional<TextState> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  if (text.size() > (1U << 20)) return fail("larger than 1 MiB");
  if (text.empty() || text.back() != '\n') return fail("truncated (no final newline)");
  const std::size_t headEnd = text.find('\n');
  const std::string_view head = text.substr(0, headEnd);
  if (auto refused = checkHead(head)) return fail(std::move(*refused));
  // The checksum line is last; everything before it is covered. A file of one line has none.
  const std::size_t lastStart = text.rfind('\n', text.size() - 2);
  if (lastStart == std::string_view::npos) return fail("truncated (no crc32 line)");
  const std::string_view body = text.substr(0, lastStart + 1);
  const std::string_view last = text.substr(lastStart + 1, text.size() - lastStart - 2);
  std::uint32_t crc = 0;
  const std::string_view digits = last.substr(std::min(last.size(), kCrcPrefix.size()));
  const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), crc, 16);
  if (last.size() != kCrcLineLength || !last.starts_with(kCrcPrefix) || ec != std::errc() ||
      p != digits.data() + digits.size()) {
    return fail("truncated (no crc32 line)");
  }
  if (crc32(body) != crc) return fail("bad CRC");
  return TextState{head, body.substr(headEnd + 1)};
}

}  // namespace citygate::lora
