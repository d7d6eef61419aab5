// Helpers for the LoRa unit tests: hex, frames built with the gateway's own crypto (only for
// processor logic; the crypto itself is checked against lora-packet's vectors), and the frames
// of tests/data/lora/frames.jsonl that npm lora-packet encrypted.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "inputs/lora/base64.hpp"
#include "inputs/lora/crypto.hpp"
#include "inputs/lora/json.hpp"

namespace lora_test {

inline std::vector<std::uint8_t> hex(std::string_view s) {
  std::vector<std::uint8_t> out;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(nib(s[i]) * 16 + nib(s[i + 1])));
  }
  return out;
}

inline std::string toHex(std::span<const std::uint8_t> b) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s.push_back(k[x >> 4]);
    s.push_back(k[x & 15]);
  }
  return s;
}

inline citygate::lora::Key key(std::string_view h) {
  return *citygate::lora::Key::fromHex(h);
}

struct Uplink {
  std::uint32_t devAddr = 0;
  std::uint32_t fcnt = 0;
  std::uint8_t fport = 1;
  std::vector<std::uint8_t> payload;
  std::vector<std::uint8_t> fopts;
  bool confirmed = false;
  bool noPort = false;
};

// A LoRaWAN 1.0.x uplink encrypted and signed with the gateway's Crypto.
inline std::vector<std::uint8_t> buildUplink(citygate::lora::Crypto& c, const Uplink& u, const citygate::lora::Key& nwk,
                                             const citygate::lora::Key& app) {
  std::vector<std::uint8_t> f;
  f.push_back(u.confirmed ? 0x80 : 0x40);
  for (int i = 0; i < 4; ++i) f.push_back(static_cast<std::uint8_t>(u.devAddr >> (8 * i)));
  f.push_back(static_cast<std::uint8_t>(u.fopts.size()));
  f.push_back(static_cast<std::uint8_t>(u.fcnt));
  f.push_back(static_cast<std::uint8_t>(u.fcnt >> 8));
  f.insert(f.end(), u.fopts.begin(), u.fopts.end());
  if (!u.noPort) {
    f.push_back(u.fport);
    std::vector<std::uint8_t> enc(u.payload.size());
    c.cryptPayload(u.fport == 0 ? nwk : app, citygate::lora::Dir::Up, u.devAddr, u.fcnt, u.payload, enc);
    f.insert(f.end(), enc.begin(), enc.end());
  }
  const std::uint32_t mic = *c.dataMic(nwk, citygate::lora::Dir::Up, u.devAddr, u.fcnt, f);
  for (int i = 3; i >= 0; --i) f.push_back(static_cast<std::uint8_t>(mic >> (8 * i)));
  return f;
}

// One line of tests/data/lora/frames.jsonl (built by tests/peers/concentrator.js frames).
struct PeerFrame {
  std::string id;
  std::uint32_t fcnt = 0;
  std::uint32_t fport = 0;
  std::vector<std::uint8_t> payload;
  std::vector<std::uint8_t> phy;
};

inline std::vector<PeerFrame> peerFrames() {
  std::ifstream in(std::string(CITYGATE_SOURCE_DIR) + "/tests/data/lora/frames.jsonl");
  std::vector<PeerFrame> out;
  citygate::lora::json::Document doc;
  std::string line;
  while (std::getline(in, line)) {
    if (doc.parse(line) != citygate::lora::json::Error::None) continue;
    const auto r = doc.root();
    PeerFrame f;
    f.id = std::string(r.get("id").string());
    f.fcnt = static_cast<std::uint32_t>(r.get("fcnt").number());
    f.fport = static_cast<std::uint32_t>(r.get("fport").number());
    f.payload = hex(r.get("payload").string());
    f.phy = hex(r.get("phy").string());
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace lora_test
