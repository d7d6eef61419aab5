#include "inputs/lora/join.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "inputs/lora/phy_payload.hpp"
#include "inputs/lora/state_file.hpp"

namespace citygate::lora {

namespace {

std::uint64_t le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void putLe(std::vector<std::uint8_t>& out, std::uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

JoinParseError parseJoinRequest(std::span<const std::uint8_t> phy, JoinRequest& out) {
  if (phy.empty() || mtypeOf(phy[0]) != MType::JoinRequest) return JoinParseError::NotJoinRequest;
  if ((phy[0] & 0x03) != 0) return JoinParseError::BadMajor;
  if (phy.size() != kJoinRequestLength) return JoinParseError::BadLength;
  out = JoinRequest{};
  out.joinEui = le64(phy.data() + 1);
  out.devEui = le64(phy.data() + 9);
  out.devNonce = static_cast<std::uint16_t>(phy[17] | (phy[18] << 8));
  out.mic = (std::uint32_t{phy[19]} << 24) | (std::uint32_t{phy[20]} << 16) | (std::uint32_t{phy[21]} << 8) | phy[22];
  out.micInput = phy.first(19);
  return JoinParseError::None;
}

std::optional<std::vector<std::uint8_t>> buildJoinAccept(Crypto& crypto, const Key& appKey, const JoinAcceptFields& f) {
  if (f.joinNonce > 0xFFFFFF || f.netId > 0xFFFFFF || f.rx1DrOffset > 7 || f.rx2DataRate > 15 || f.rxDelay > 15 ||
      f.cflist.size() > 5) {
    return std::nullopt;
  }
  std::vector<std::uint8_t> plain;
  plain.reserve(33);
  plain.push_back(0x20);  // JoinAccept, LoRaWAN R1
  putLe(plain, f.joinNonce, 3);
  putLe(plain, f.netId, 3);
  putLe(plain, f.devAddr, 4);
  plain.push_back(static_cast<std::uint8_t>((f.rx1DrOffset << 4) | f.rx2DataRate));
  plain.push_back(f.rxDelay);
  if (!f.cflist.empty()) {
    for (std::size_t i = 0; i < 5; ++i) putLe(plain, i < f.cflist.size() ? f.cflist[i] : 0, 3);
    plain.push_back(0);  // CFListType 0: frequencies
  }
  const auto mic = crypto.joinAcceptMic(appKey, plain);
  if (!mic) return std::nullopt;
  for (int i = 3; i >= 0; --i) plain.push_back(static_cast<std::uint8_t>(*mic >> (8 * i)));
  std::vector<std::uint8_t> out(plain.size());
  out[0] = plain[0];
  const bool ok = crypto.aesDecrypt(appKey, std::span(plain).subspan(1), std::span(out).subspan(1));
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!ok) return std::nullopt;
  return out;
}

std::optional<SessionKeys> deriveSessionKeys(Crypto& crypto, const Key& appKey, std::uint32_t joinNonce,
                                             std::uint32_t netId, std::uint16_t devNonce) {
  std::array<std::uint8_t, 32> in{};
  for (std::size_t k = 0; k < 2; ++k) {
    std::uint8_t* b = in.data() + 16 * k;
    b[0] = static_cast<std::uint8_t>(k + 1);  // 0x01 NwkSKey, 0x02 AppSKey
    for (int i = 0; i < 3; ++i) b[1 + i] = static_cast<std::uint8_t>(joinNonce >> (8 * i));
    for (int i = 0; i < 3; ++i) b[4 + i] = static_cast<std::uint8_t>(netId >> (8 * i));
    b[7] = static_cast<std::uint8_t>(devNonce);
    b[8] = static_cast<std::uint8_t>(devNonce >> 8);
  }
  std::array<std::uint8_t, 32> out{};
  if (!crypto.aesEncrypt(appKey, in, out)) return std::nullopt;
  std::array<std::uint8_t, 16> k1{}, k2{};
  std::copy_n(out.begin(), 16, k1.begin());
  std::copy_n(out.begin() + 16, 16, k2.begin());
  SessionKeys keys{Key(k1), Key(k2)};
  OPENSSL_cleanse(out.data(), out.size());
  OPENSSL_cleanse(k1.data(), k1.size());
  OPENSSL_cleanse(k2.data(), k2.size());
  return keys;
}

std::vector<std::uint32_t> eu868DefaultCflist() {
  return {8671000, 8673000, 8675000, 8677000, 8679000};
}

std::optional<std::uint32_t> allocateDevAddr(std::uint32_t first, std::uint32_t last,
                                             std::optional<std::uint32_t> current,
                                             std::span<const std::uint32_t> taken) {
  if (first > last) return std::nullopt;
  auto isTaken = [&](std::uint32_t a) { return std::binary_search(taken.begin(), taken.end(), a); };
  if (current && *current >= first && *current <= last && !isTaken(*current)) return current;
  // At most taken.size() + 1 candidates: each taken address blocks at most one.
  std::uint64_t a = first;
  for (std::size_t tries = 0; tries <= taken.size() && a <= last; ++tries, ++a) {
    if (!isTaken(static_cast<std::uint32_t>(a))) return static_cast<std::uint32_t>(a);
  }
  return std::nullopt;
}

// ---- state file ----
namespace {

constexpr std::string_view kOtaaHead = "citygate-lora-otaa 1";

std::string hexN(std::uint64_t v, int digits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%0*llX", digits, static_cast<unsigned long long>(v));
  return buf;
}

template <typename T>
bool parseHex(std::string_view s, T& out, std::size_t digits) {
  if (s.size() != digits) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parseDec(std::string_view s, std::uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return ec == std::errc() && p == s.data() + s.size();
}

bool validId(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         std::none_of(id.begin(), id.end(), [](char c) { return c == ' ' || c == '\n' || c == '\r'; });
}

}  // namespace

std::string encodeOtaaState(const OtaaState& state) {
  std::string s = "join_nonce " + std::to_string(state.nextJoinNonce) + "\n";
  for (const auto& r : state.records) {
    std::string nonces;
    for (auto n : r.usedNonces) nonces += (nonces.empty() ? "" : ",") + hexN(n, 4);
    if (nonces.empty()) nonces = "-";
    s += "device " + r.id + " " + hexN(r.devEui, 16) + " " + hexN(r.appKeyCheck, 8) + " " + hexN(r.devAddr, 8) + " " +
         std::to_string(r.joinNonce) + " " + hexN(r.netId, 6) + " " + hexN(r.devNonce, 4) + " " + nonces + "\n";
  }
  return frameTextState(kOtaaHead, s);
}

std::optional<OtaaState> decodeOtaaState(std::string_view text, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<OtaaState> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  auto checkHead = [](std::string_view head) -> std::optional<std::string> {
    if (head != kOtaaHead) return "not a version-1 citygate OTAA state file";
    return std::nullopt;
  };
  const auto frame = unframeTextState(text, checkHead, why);
  if (!frame) return std::nullopt;
  const std::string_view body = frame->lines;
  OtaaState st;
  std::size_t pos = 0;
  bool haveNonce = false;
  std::size_t lineNo = 1;
  while (pos < body.size()) {
    const std::size_t end = body.find('\n', pos);
    std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    ++lineNo;
    std::array<std::string_view, 10> w{};
    std::size_t n = 0;
    while (n < w.size() && !line.empty()) {
      const std::size_t sp = line.find(' ');
      w[n++] = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    }
    const std::string bad = "bad line " + std::to_string(lineNo);
    if (!line.empty()) return fail(bad);
    if (n == 2 && w[0] == "join_nonce" && !haveNonce) {
      if (!parseDec(w[1], st.nextJoinNonce) || st.nextJoinNonce > 0x1000000) return fail(bad);
      haveNonce = true;
      continue;
    }
    OtaaRecord r;
    if (n != 9 || w[0] != "device" || !validId(w[1]) || !parseHex(w[2], r.devEui, 16) ||
        !parseHex(w[3], r.appKeyCheck, 8) || !parseHex(w[4], r.devAddr, 8) || !parseDec(w[5], r.joinNonce) ||
        r.joinNonce > 0xFFFFFF || !parseHex(w[6], r.netId, 6) || !parseHex(w[7], r.devNonce, 4)) {
      return fail(bad);
    }
    r.id = std::string(w[1]);
    if (w[8] != "-") {
      std::string_view list = w[8];
      while (!list.empty()) {
        const std::size_t comma = list.find(',');
        std::uint16_t v = 0;
        if (!parseHex(list.substr(0, comma), v, 4)) return fail(bad);
        r.usedNonces.push_back(v);
        if (r.usedNonces.size() > kMaxDevNonces)
          return fail(bad + " (more than " + std::to_string(kMaxDevNonces) + " DevNonces)");
        if (comma == std::string_view::npos) break;
        list = list.substr(comma + 1);
        if (list.empty()) return fail(bad);
      }
    }
    for (const auto& o : st.records) {
      if (o.id == r.id) return fail(bad + " (device '" + r.id + "' twice)");
    }
    st.records.push_back(std::move(r));
  }
  if (!haveNonce) return fail("no join_nonce line");
  return st;
}

}  // namespace citygate::lora
