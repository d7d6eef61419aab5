#include "inputs/lora/fcnt.hpp"

#include <array>
#include <charconv>
#include <cstdio>

namespace citygate::lora {

std::uint32_t fullFcnt(std::uint32_t nextExpected, std::uint16_t truncated) {
  const auto low = static_cast<std::uint16_t>(nextExpected & 0xFFFF);
  if (truncated == static_cast<std::uint16_t>(low - 1)) return nextExpected - 1;  // retransmission
  const auto gap = static_cast<std::uint16_t>(truncated - low);
  return nextExpected + gap;  // mod 2^32
}

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

constexpr std::string_view kMagic = "citygate-lora-fcnt";

std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", v);
  return buf;
}

bool parseHex8(std::string_view s, std::uint32_t& out) {
  if (s.size() != 8) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parseDec(std::string_view s, std::uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits on single spaces.
std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> w;
  std::size_t i = 0;
  while (i <= line.size()) {
    const std::size_t j = line.find(' ', i);
    const std::size_t end = j == std::string_view::npos ? line.size() : j;
    w.push_back(line.substr(i, end - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return w;
}

}  // namespace

std::uint32_t crc32(std::string_view data) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (char ch : data) c = kCrcTable[(c ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

std::string encodeFcntState(const FcntState& state) {
  std::string s;
  s += std::string(kMagic) + " " + std::to_string(kFcntStateVersion) + "\n";
  s += state.clean ? "clean 1\n" : "clean 0\n";
  for (const auto& r : state.records) {
    s += "device " + r.id + " " + hex8(r.devAddr) + " " + hex8(r.keyCheck) + " " + std::to_string(r.lastFcnt) + "\n";
  }
  s += "crc32 " + hex8(crc32(s)) + "\n";
  return s;
}

std::optional<FcntState> decodeFcntState(std::string_view text, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<FcntState> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  if (text.size() > (1U << 20)) return fail("larger than 1 MiB");
  // The checksum line is last; everything before it is covered.
  if (text.empty() || text.back() != '\n') return fail("truncated (no final newline)");
  const std::size_t lastStart = text.rfind('\n', text.size() - 2);
  const std::size_t crcLine = lastStart == std::string_view::npos ? 0 : lastStart + 1;
  const std::string_view last = text.substr(crcLine, text.size() - crcLine - 1);
  const std::string_view body = text.substr(0, crcLine);
  // The version is checked before the checksum so a future format says so instead of "bad CRC".
  const std::size_t firstEnd = text.find('\n');
  const auto head = words(text.substr(0, firstEnd));
  if (head.size() != 2 || head[0] != kMagic) return fail("not a citygate frame-counter file");
  std::uint32_t version = 0;
  if (!parseDec(head[1], version)) return fail("bad version '" + std::string(head[1]) + "'");
  if (version != kFcntStateVersion) {
    return fail("version " + std::to_string(version) + " is not supported (this build reads version " +
                std::to_string(kFcntStateVersion) + ")");
  }
  const auto crcWords = words(last);
  std::uint32_t crc = 0;
  if (crcWords.size() != 2 || crcWords[0] != "crc32" || !parseHex8(crcWords[1], crc)) {
    return fail("truncated (no crc32 line)");
  }
  if (crc32(body) != crc) return fail("bad CRC");

  FcntState st;
  std::size_t pos = firstEnd + 1;
  bool sawClean = false;
  while (pos < body.size()) {
    const std::size_t end = body.find('\n', pos);
    const std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    const auto w = words(line);
    if (w.size() == 2 && w[0] == "clean" && (w[1] == "0" || w[1] == "1") && !sawClean) {
      st.clean = w[1] == "1";
      sawClean = true;
      continue;
    }
    FcntRecord r;
    if (w.size() != 5 || w[0] != "device" || w[1].empty() || !parseHex8(w[2], r.devAddr) ||
        !parseHex8(w[3], r.keyCheck) || !parseDec(w[4], r.lastFcnt)) {
      return fail("bad line '" + std::string(line.substr(0, 80)) + "'");
    }
    r.id = std::string(w[1]);
    st.records.push_back(std::move(r));
  }
  if (!sawClean) return fail("no clean line");
  return st;
}

}  // namespace citygate::lora
