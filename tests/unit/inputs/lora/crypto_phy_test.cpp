// LoRaWAN 1.0.x frames: parsing, MIC and FRMPayload encryption against the published vectors
// L1-L6 (lora-packet's tests, protocols.md 3.7) and frames npm lora-packet built for us, including
// counters above 65535 (FCntMSBytes).
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "inputs/lora/crypto.hpp"
#include "inputs/lora/phy_payload.hpp"
#include "lora_test_util.hpp"

using namespace citygate::lora;
using lora_test::hex;
using lora_test::key;
using lora_test::toHex;

namespace {
const Key kNwk = key("44024241ed4ce9a68c6a8bc055233fd3");
const Key kApp = key("ec925802ae430ca77fd3dd73cb2cc588");

std::unique_ptr<Crypto> crypto() {
  std::string why;
  auto c = Crypto::create(&why);
  REQUIRE_MESSAGE(c, why);
  return c;
}

std::string decrypt(Crypto& c, const DataFrame& f, const Key& k, std::uint32_t fcnt) {
  std::vector<std::uint8_t> out(f.frmPayload.size());
  REQUIRE(c.cryptPayload(k, Dir::Up, f.devAddr, fcnt, f.frmPayload, out));
  return std::string(out.begin(), out.end());
}
}  // namespace

TEST_CASE("L1: unconfirmed uplink 'test': fields, MIC, decryption") {
  auto c = crypto();
  const auto phy = hex("40F17DBE4900020001954378762B11FF0D");
  DataFrame f;
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(f.mtype == MType::UnconfirmedDataUp);
  CHECK(f.devAddr == 0x49BE7DF1U);
  CHECK(f.fctrl == 0);
  CHECK(f.fcnt16 == 2);
  CHECK(f.fopts.empty());
  REQUIRE(f.hasPort);
  CHECK(f.fport == 1);
  CHECK(toHex(f.frmPayload) == "95437876");
  CHECK(f.mic == 0x2b11ff0dU);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 2, f.micInput) == 0x2b11ff0dU);
  CHECK(decrypt(*c, f, kApp, 2) == "test");
}

TEST_CASE("L2: 44-byte payload over three AES blocks") {
  auto c = crypto();
  const auto phy =
      hex("40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f28dea8a20a"
          "f3c5e7");
  DataFrame f;
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(f.fcnt16 == 4);
  CHECK(f.frmPayload.size() == 44);
  CHECK(f.mic == 0x0af3c5e7U);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 4, f.micInput) == f.mic);
  CHECK(decrypt(*c, f, kApp, 4) == "The quick brown fox jumps over the lazy dog.");
}

TEST_CASE("L3: empty FRMPayload, a changed MIC byte must fail") {
  auto c = crypto();
  DataFrame f;
  auto phy = hex("40F17DBE49000300012A3518AF");
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(f.fcnt16 == 3);
  CHECK(f.hasPort);
  CHECK(f.fport == 1);
  CHECK(f.frmPayload.empty());
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 3, f.micInput) == 0x2a3518afU);
  phy = hex("40F17DBE49000300012A3518AA");
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 3, f.micInput) != f.mic);
}

TEST_CASE("L4: downlink ACK uses Dir=1 in B0, the gateway does not take downlinks") {
  auto c = crypto();
  const auto phy = hex("60f17dbe4920020001f9d65d27");
  DataFrame f;
  CHECK(parseDataFrame(phy, f) == PhyError::NotDataUp);
  REQUIRE(parseDataFrame(phy, f, true) == PhyError::None);
  CHECK(f.mtype == MType::UnconfirmedDataDown);
  CHECK(f.ack());
  CHECK(f.fcnt16 == 2);
  CHECK(*c->dataMic(kNwk, Dir::Down, f.devAddr, 2, f.micInput) == 0xf9d65d27U);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 2, f.micInput) != 0xf9d65d27U);
}

TEST_CASE("L5: a wrong AppSKey scrambles, a flipped ciphertext bit flips a plaintext bit") {
  auto c = crypto();
  DataFrame f;
  auto phy = hex("40F17DBE4900020001954378762B11FF0D");
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  const std::string wrong = decrypt(*c, f, key("ec925802ae430ca77fd3dd73cb2cc580"), 2);
  CHECK(toHex(std::span(reinterpret_cast<const std::uint8_t*>(wrong.data()), wrong.size())) == "5999fc3f");
  phy = hex("40F17DBE4900020001954478762B11FF0D");
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(decrypt(*c, f, kApp, 2) == "tbst");
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 2, f.micInput) != f.mic);  // and the MIC no longer holds
}

TEST_CASE("L6: join-request MIC, join requests are not data uplinks") {
  auto c = crypto();
  const auto phy = hex("0039363463336913AA05693574323831330489C65B1304");
  const auto appKey = key("98929b92c49edba9676d646d3b612456");
  const std::span<const std::uint8_t> msg(phy.data(), phy.size() - 4);
  CHECK(*c->joinRequestMic(appKey, msg) == 0xc65b1304U);
  auto bad = phy;
  bad[bad.size() - 5] = 0x05;
  CHECK(*c->joinRequestMic(appKey, std::span<const std::uint8_t>(bad.data(), bad.size() - 4)) != 0xc65b1304U);
  DataFrame f;
  CHECK(parseDataFrame(phy, f) == PhyError::NotDataUp);
}

TEST_CASE("D: L1 with the full counter 0x00010002 gives MIC b87ad592 and garbage plaintext") {
  auto c = crypto();
  DataFrame f;
  const auto phy = hex("40F17DBE4900020001954378762B11FF0D");
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 0x00010002U, f.micInput) == 0xb87ad592U);
  const std::string g = decrypt(*c, f, kApp, 0x00010002U);
  CHECK(toHex(std::span(reinterpret_cast<const std::uint8_t*>(g.data()), g.size())) == "ff19c6ce");
}

TEST_CASE("lora-packet frames above 65535 verify with the full 32-bit counter only") {
  auto c = crypto();
  const auto phy = hex("40f17dbe49000200011e3fcdcc57da3671");  // concentrator.js frames, FCnt 65538, "test"
  DataFrame f;
  REQUIRE(parseDataFrame(phy, f) == PhyError::None);
  CHECK(f.fcnt16 == 2);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 65538, f.micInput) == f.mic);
  CHECK(*c->dataMic(kNwk, Dir::Up, f.devAddr, 2, f.micInput) != f.mic);
  CHECK(decrypt(*c, f, kApp, 65538) == "test");
}

TEST_CASE("every frame of frames.jsonl (built by lora-packet) parses, verifies and decrypts") {
  auto c = crypto();
  const auto frames = lora_test::peerFrames();
  REQUIRE(frames.size() >= 20);
  const std::map<std::string, std::pair<std::string, std::string>> keys{
      {"parking-bay-0042", {"44024241ed4ce9a68c6a8bc055233fd3", "ec925802ae430ca77fd3dd73cb2cc588"}},
      {"parking-bay-0043", {"2b7e151628aed2a6abf7158809cf4f3c", "000102030405060708090a0b0c0d0e0f"}},
      {"air-node-01", {"a1a2a3a4a5a6a7a8a9aaabacadaeafb0", "b1b2b3b4b5b6b7b8b9babbbcbdbebfc0"}},
      {"traffic-node-01", {"c1c2c3c4c5c6c7c8c9cacbcccdcecfd0", "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0"}},
      {"lpp-air-01", {"e1e2e3e4e5e6e7e8e9eaebecedeeeff0", "f1f2f3f4f5f6f7f8f9fafbfcfdfeff00"}},
  };
  int above = 0;
  for (const auto& pf : frames) {
    INFO(pf.id, " fcnt ", pf.fcnt);
    DataFrame f;
    REQUIRE(parseDataFrame(pf.phy, f) == PhyError::None);
    CHECK(f.fcnt16 == (pf.fcnt & 0xFFFF));
    CHECK(f.fport == pf.fport);
    const auto& k = keys.at(pf.id);
    CHECK(*c->dataMic(key(k.first), Dir::Up, f.devAddr, pf.fcnt, f.micInput) == f.mic);
    std::vector<std::uint8_t> plain(f.frmPayload.size());
    REQUIRE(c->cryptPayload(key(k.second), Dir::Up, f.devAddr, pf.fcnt, f.frmPayload, plain));
    CHECK(plain == pf.payload);
    if (pf.fcnt > 0xFFFF) ++above;
  }
  CHECK(above >= 5);
}

TEST_CASE("frame parsing: lengths, FOpts, port, major, proprietary") {
  DataFrame f;
  CHECK(parseDataFrame({}, f) == PhyError::TooShort);
  CHECK(parseDataFrame(hex("40F17DBE490002"), f) == PhyError::TooShort);
  CHECK(parseDataFrame(hex("40F17DBE49000200"), f) == PhyError::TooShort);
  // FOptsLen 5 but only 4 bytes before the MIC
  CHECK(parseDataFrame(hex("40F17DBE4905020001020304AABBCCDD"), f) == PhyError::TooShort);
  // FOptsLen 2, no port, MIC
  REQUIRE(parseDataFrame(hex("40F17DBE49020200020AAABBCCDD"), f) == PhyError::None);
  CHECK(f.fopts.size() == 2);
  CHECK_FALSE(f.hasPort);
  // FOpts and FPort 0 together
  CHECK(parseDataFrame(hex("40F17DBE490202000203000102AABBCCDD"), f) == PhyError::FOptsWithPort0);
  CHECK(parseDataFrame(hex("41F17DBE4900020001954378762B11FF0D"), f) == PhyError::BadMajor);
  CHECK(parseDataFrame(hex("E0F17DBE4900020001954378762B11FF0D"), f) == PhyError::NotDataUp);
  CHECK(parseDataFrame(hex("20F17DBE4900020001954378762B11FF0D"), f) == PhyError::NotDataUp);
  REQUIRE(parseDataFrame(hex("80F17DBE4900020001954378762B11FF0D"), f) == PhyError::None);
  CHECK(f.confirmed());
  std::vector<std::uint8_t> big(256, 0);
  big[0] = 0x40;
  CHECK(parseDataFrame(big, f) == PhyError::TooShort);
}

TEST_CASE("keys: hex parsing never accepts anything but 32 hex digits") {
  CHECK(Key::fromHex("44024241ed4ce9a68c6a8bc055233fd3"));
  CHECK(Key::fromHex("44024241ED4CE9A68C6A8BC055233FD3"));
  CHECK_FALSE(Key::fromHex("44024241ed4ce9a68c6a8bc055233fd"));
  CHECK_FALSE(Key::fromHex("44024241ed4ce9a68c6a8bc055233fd3a"));
  CHECK_FALSE(Key::fromHex("44024241ed4ce9a68c6a8bc055233fdg"));
  auto c = crypto();
  CHECK(c->keyCheckValue(kNwk) != c->keyCheckValue(kApp));
}
