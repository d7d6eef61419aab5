#include "inputs/lora/fcnt.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace citygate::lora {

std::uint32_t fullFcnt(std::uint32_t nextExpected, std::uint16_t truncated) {
  const auto low = static_cast<std::uint16_t>(nextExpected & 0xFFFF);
  if (truncated == static_cast<std::uint16_t>(low - 1)) return nextExpected - 1;  // retransmission
  const auto gap = static_cast<std::uint16_t>(truncated - low);
  return nextExpected + gap;  // mod 2^32
}

namespace {

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

std::string encodeFcntState(const FcntState& state) {
  std::string s = state.clean ? "clean 1\n" : "clean 0\n";
  for (const auto& r : state.records) {
    s += "device " + r.id + " " + hex8(r.devAddr) + " " + hex8(r.keyCheck) + " " + std::to_string(r.lastFcnt) + " " +
         std::to_string(std::max(r.floorFcnt, r.lastFcnt)) + "\n";
  }
  return frameTextState(std::string(kMagic) + " " + std::to_string(kFcntStateVersion), s);
}

std::optional<FcntState> decodeFcntState(std::string_view text, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<FcntState> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  // The version is checked before the checksum so a future format says so instead of "bad CRC".
  std::uint32_t version = 0;
  auto checkHead = [&version](std::string_view head) -> std::optional<std::string> {
    const auto w = words(head);
    if (w.size() != 2 || w[0] != kMagic) return "not a citygate frame-counter file";
    if (!parseDec(w[1], version)) return "bad version '" + std::string(w[1]) + "'";
    if (version != 1 && version != kFcntStateVersion) {
      return "version " + std::to_string(version) + " is not supported (this build reads version " +
             std::to_string(kFcntStateVersion) + ")";
    }
    return std::nullopt;
  };
  const auto frame = unframeTextState(text, checkHead, why);
  if (!frame) return std::nullopt;
  const std::string_view body = frame->lines;

  FcntState st;
  std::size_t pos = 0;
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
    const std::size_t want = version == 1 ? 5 : 6;
    if (w.size() != want || w[0] != "device" || w[1].empty() || !parseHex8(w[2], r.devAddr) ||
        !parseHex8(w[3], r.keyCheck) || !parseDec(w[4], r.lastFcnt) ||
        (version != 1 && (!parseDec(w[5], r.floorFcnt) || r.floorFcnt < r.lastFcnt))) {
      return fail("bad line '" + std::string(line.substr(0, 80)) + "'");
    }
    if (version == 1) r.floorFcnt = r.lastFcnt;
    r.id = std::string(w[1]);
    st.records.push_back(std::move(r));
  }
  if (!sawClean) return fail("no clean line");
  return st;
}

// ---- the RAM copy ----

namespace {

constexpr char kRamMagic[8] = {'C', 'G', 'L', 'F', 'C', 'R', 'A', 'M'};
constexpr std::size_t kBootIdBytes = 40;  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" is 36

void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint32_t get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint32_t crcOf(const std::uint8_t* p, std::size_t n) {
  return crc32(std::string_view(reinterpret_cast<const char*>(p), n));
}

// Header: magic[8] version[4] slots[4] bootId[40, zero-padded] reserved[4] crc[4] (of bytes 0..59).
void encodeHeader(std::string_view bootId, std::uint32_t slots, std::uint8_t* h) {
  std::memset(h, 0, kFcntRamHeader);
  std::memcpy(h, kRamMagic, sizeof kRamMagic);
  put32(h + 8, kFcntRamVersion);
  put32(h + 12, slots);
  std::memcpy(h + 16, bootId.data(), std::min(bootId.size(), kBootIdBytes));
  put32(h + 60, crcOf(h, 60));
}

}  // namespace

// Slot: crc[4] (of bytes 4..95) devAddr[4] kcv[4] last[4] floor[4] idLen[1] id[64] reserved[11].
void encodeFcntRamSlot(const FcntSlotView& slot, RamSlot& out) {
  std::uint8_t* p = out.data();
  std::memset(p, 0, kFcntRamSlot);
  const std::size_t n = std::min(slot.id.size(), kFcntRamMaxId);
  if (n > 0) {
    put32(p + 4, slot.devAddr);
    put32(p + 8, slot.keyCheck);
    put32(p + 12, slot.lastFcnt);
    put32(p + 16, std::max(slot.floorFcnt, slot.lastFcnt));
    p[20] = static_cast<std::uint8_t>(n);
    std::memcpy(p + 21, slot.id.data(), n);
  }
  put32(p, crcOf(p + 4, kFcntRamSlot - 4));
}

std::string encodeFcntRam(std::string_view bootId, const std::vector<FcntSlotView>& slots) {
  std::string out(fcntRamSlotOffset(slots.size()), '\0');
  auto* base = reinterpret_cast<std::uint8_t*>(out.data());
  encodeHeader(bootId, static_cast<std::uint32_t>(slots.size()), base);
  RamSlot buf;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    encodeFcntRamSlot(slots[i], buf);
    std::memcpy(base + fcntRamSlotOffset(i), buf.data(), kFcntRamSlot);
  }
  return out;
}

std::optional<FcntRam> decodeFcntRam(std::string_view bytes, std::string_view bootId, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<FcntRam> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  if (bootId.empty() || bootId.size() > kBootIdBytes) return fail("the kernel's boot id is unknown");
  if (bytes.size() < kFcntRamHeader) return fail("truncated header");
  const auto* h = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (std::memcmp(h, kRamMagic, sizeof kRamMagic) != 0) return fail("not a citygate RAM counter copy");
  if (crcOf(h, 60) != get32(h + 60)) return fail("bad header CRC");
  if (get32(h + 8) != kFcntRamVersion) return fail("version " + std::to_string(get32(h + 8)) + " is not supported");
  std::uint8_t want[kFcntRamHeader];
  encodeHeader(bootId, get32(h + 12), want);
  if (std::memcmp(h + 16, want + 16, kBootIdBytes) != 0) return fail("written before the last reboot");
  const std::uint32_t slots = get32(h + 12);
  if (bytes.size() != fcntRamSlotOffset(slots)) return fail("size does not match the slot count");
  FcntRam ram;
  for (std::uint32_t i = 0; i < slots; ++i) {
    const std::uint8_t* p = h + fcntRamSlotOffset(i);
    const std::size_t n = p[20];
    if (crcOf(p + 4, kFcntRamSlot - 4) != get32(p) || n > kFcntRamMaxId || get32(p + 16) < get32(p + 12)) {
      ++ram.damagedSlots;
      continue;
    }
    if (n == 0) continue;
    FcntRecord r;
    r.id.assign(reinterpret_cast<const char*>(p + 21), n);
    r.devAddr = get32(p + 4);
    r.keyCheck = get32(p + 8);
    r.lastFcnt = get32(p + 12);
    r.floorFcnt = get32(p + 16);
    ram.records.push_back(std::move(r));
  }
  return ram;
}

}  // namespace citygate::lora
