// LoRaWAN 1.0.x uplinks built by the node against the independent vectors of protocols.md 3.7
// (lora-packet's test frames): FRMPayload encryption with the AppSKey, the MIC with the NwkSKey
// over B0 with the full 32-bit counter.
#include "nodes/air/lorawan.hpp"
#include "core/check.hpp"
#include "nodes/air/tests/fakes.hpp"

namespace air = citygate::fw::air;
using air::test::fromHex;
using air::test::sameBytes;

namespace {

constexpr uint32_t kDevAddr = 0x49BE7DF1;  // f17dbe49 on the air

void keys(uint8_t (&nwk)[16], uint8_t (&app)[16]) {
  fromHex("44024241ed4ce9a68c6a8bc055233fd3", nwk, 16);
  fromHex("ec925802ae430ca77fd3dd73cb2cc588", app, 16);
}

bool initSession(air::Session& s) {
  uint8_t nwk[16];
  uint8_t app[16];
  keys(nwk, app);
  return s.init(nwk, app);
}

// Builds the uplink of `payload` at `fcnt` with the vectors' keys and checks that it is the frame
// `wantHex`; returns that frame's size.
size_t checkUplink(uint32_t fcnt, const uint8_t* payload, size_t size, const char* wantHex) {
  air::Session s;
  FW_CHECK(initSession(s));
  air::Uplink up;
  up.devAddr = kDevAddr;
  up.fcnt = fcnt;
  uint8_t frame[64];
  const size_t n = air::buildUplink(s, up, payload, size, frame, sizeof frame);
  uint8_t want[64];
  const size_t w = fromHex(wantHex, want, sizeof want);
  FW_CHECK_EQ(n, w);
  FW_CHECK(sameBytes(frame, want, w));
  return w;
}

}  // namespace

FW_TEST("lorawan: L1, 'test' at FCnt 2 is lora-packet's frame") {
  const uint8_t payload[] = {'t', 'e', 's', 't'};
  checkUplink(2, payload, sizeof payload, "40F17DBE4900020001954378762B11FF0D");
}

FW_TEST("lorawan: L2, a 44-byte payload over three AES blocks at FCnt 4") {
  const char text[] = "The quick brown fox jumps over the lazy dog.";
  FW_CHECK_EQ(checkUplink(4, reinterpret_cast<const uint8_t*>(text), sizeof text - 1,
                          "40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17a"
                          "d30075293f28dea8a20af3c5e7"),
              57u);
}

FW_TEST("lorawan: L3, an empty FRMPayload on FPort 1 at FCnt 3") {
  checkUplink(3, nullptr, 0, "40F17DBE49000300012A3518AF");
}

FW_TEST("lorawan: the MIC takes the full 32-bit counter (L1 at 0x00010002 gives b87ad592)") {
  air::Session s;
  FW_CHECK(initSession(s));
  uint8_t msg[16];
  const size_t n = fromHex("40F17DBE490002000195437876", msg, sizeof msg);  // L1 without its MIC
  FW_CHECK_EQ(n, 13u);
  uint8_t mic[4];
  FW_CHECK(s.mic(msg, 13, kDevAddr, 0x00010002, false, mic));
  const uint8_t want[] = {0xb8, 0x7a, 0xd5, 0x92};
  FW_CHECK(sameBytes(mic, want, 4));
  FW_CHECK(s.mic(msg, 13, kDevAddr, 2, false, mic));
  const uint8_t onAir[] = {0x2b, 0x11, 0xff, 0x0d};
  FW_CHECK(sameBytes(mic, onAir, 4));
  // The same frame with its 16 high counter bits set: only the low half goes over the air, the
  // full counter enters A_i (another ciphertext than L1's) and B0.
  air::Uplink up;
  up.devAddr = kDevAddr;
  up.fcnt = 0x00010002;
  const uint8_t payload[] = {'t', 'e', 's', 't'};
  uint8_t frame[64];
  FW_CHECK_EQ(air::buildUplink(s, up, payload, 4, frame, sizeof frame), 17u);
  FW_CHECK_EQ(frame[6], 0x02);
  FW_CHECK_EQ(frame[7], 0x00);
  const uint8_t l1Cipher[] = {0x95, 0x43, 0x78, 0x76};
  FW_CHECK(!sameBytes(frame + 9, l1Cipher, 4));
  FW_CHECK(s.mic(frame, 13, kDevAddr, 0x00010002, false, mic));
  FW_CHECK(sameBytes(frame + 13, mic, 4));
  FW_CHECK(!sameBytes(frame + 13, onAir, 4));
}

FW_TEST("lorawan: L4, a downlink's MIC has Dir 1 in B0") {
  air::Session s;
  FW_CHECK(initSession(s));
  uint8_t frame[16];
  const size_t n = fromHex("60f17dbe4920020001f9d65d27", frame, sizeof frame);
  uint8_t mic[4];
  FW_CHECK(s.mic(frame, n - 4, kDevAddr, 2, true, mic));
  FW_CHECK(sameBytes(mic, frame + n - 4, 4));
  FW_CHECK(s.mic(frame, n - 4, kDevAddr, 2, false, mic));
  FW_CHECK(!sameBytes(mic, frame + n - 4, 4));
}

FW_TEST("lorawan: L5, the wrong AppSKey decrypts L1 to 5999fc3f") {
  air::Session s;
  uint8_t nwk[16];
  uint8_t app[16];
  keys(nwk, app);
  fromHex("ec925802ae430ca77fd3dd73cb2cc580", app, 16);
  FW_CHECK(s.init(nwk, app));
  uint8_t data[] = {0x95, 0x43, 0x78, 0x76};
  FW_CHECK(s.cryptPayload(data, 4, kDevAddr, 2, false));
  const uint8_t want[] = {0x59, 0x99, 0xfc, 0x3f};
  FW_CHECK(sameBytes(data, want, 4));
}

FW_TEST("lorawan: refuses FPort 0 and 224+, oversize payloads, small buffers, no keys") {
  air::Session none;
  air::Uplink up;
  up.devAddr = kDevAddr;
  uint8_t frame[64];
  const uint8_t payload[4] = {};
  FW_CHECK_EQ(air::buildUplink(none, up, payload, 4, frame, sizeof frame), 0u);
  air::Session s;
  FW_CHECK(initSession(s));
  up.fport = 0;
  FW_CHECK_EQ(air::buildUplink(s, up, payload, 4, frame, sizeof frame), 0u);
  up.fport = 224;
  FW_CHECK_EQ(air::buildUplink(s, up, payload, 4, frame, sizeof frame), 0u);
  up.fport = 1;
  FW_CHECK_EQ(air::buildUplink(s, up, payload, 4, frame, 16), 0u);
  FW_CHECK_EQ(air::buildUplink(s, up, payload, 4, frame, 17), 17u);
  FW_CHECK_EQ(air::buildUplink(s, up, payload, 223, frame, sizeof frame), 0u);
}

FW_TEST("lorawan: sessions come and go without exhausting Mbed TLS's static buffer") {
  for (int i = 0; i < 50; ++i) {
    air::Session s;
    FW_CHECK(initSession(s));
    FW_CHECK(initSession(s));  // re-keying frees the old contexts
  }
}
