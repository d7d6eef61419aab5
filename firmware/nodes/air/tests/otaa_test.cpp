// OTAA and confirmed uplinks (LoRaWAN 1.0.x) against independent vectors (protocols.md 3.7 L4, L6;
// the join-accept and session keys lora-packet builds, as the gateway's join test has them), the
// DevNonce and the session across power cuts, and the node joining, getting ACKs, retransmitting
// and refusing bad downlinks on a scripted radio.
#include "core/check.hpp"
#include "nodes/air/air_node.hpp"
#include "nodes/air/join_store.hpp"
#include "nodes/air/lorawan.hpp"
#include "nodes/air/tests/fakes.hpp"
#include "ports/host/air_sim_sensors.hpp"

namespace air = citygate::fw::air;
namespace host = citygate::fw::host;
using air::test::fromHex;
using air::test::sameBytes;
using citygate::fw::test::FakeFlash;
using citygate::fw::test::ManualClock;

namespace {

// protocols.md L6 (lora-packet): AppKey, the join-request of DevNonce f18e.
constexpr const char* kAppKey = "98929b92c49edba9676d646d3b612456";
constexpr const char* kJoinEui = "aa13693363343639";  // as displayed
constexpr const char* kDevEui = "3331383274356905";
// lora-packet fromFields({MType: "Join Accept", AppNonce: 123456, NetID: 000013, DevAddr: 26011f42,
// DLSettings: 2, RxDelay: 1, CFList: 867.1..867.9}, AppKey) and without the CFList.
constexpr const char* kAccept33 = "20600a572dfecfdeb1a5973b119a75acdcbfcd42eea9db949c9511ce5bcb114393";
constexpr const char* kAccept17 = "20b0b6a0bd85e1720dbf3a977c065f8860";

template <size_t N>
void bytes(const char* hex, uint8_t (&out)[N]) {
  fromHex(hex, out, N);
}

// A radio whose receive side is a script: frames handed out once the clock reaches their time.
class ScriptRadio final : public citygate::fw::hal::Radio {
 public:
  explicit ScriptRadio(ManualClock& clock) : clock_(clock) {}
  bool transmit(const uint8_t* frame, size_t size, const citygate::fw::hal::TxParams& params) override {
    if (size > sizeof last) return false;
    memcpy(last, frame, size);
    lastSize = size;
    lastParams = params;
    lastAtMs = clock_.now;
    ++count;
    return true;
  }
  size_t receive(uint8_t* out, size_t capacity) override {
    for (Queued& q : queue) {
      if (q.size == 0 || static_cast<int32_t>(clock_.now - q.atMs) < 0) continue;
      const size_t n = q.size;
      q.size = 0;
      if (n > capacity) return 0;
      memcpy(out, q.frame, n);
      return n;
    }
    return 0;
  }
  void deliver(const uint8_t* frame, size_t size, uint32_t atMs) {
    for (Queued& q : queue) {
      if (q.size == 0) {
        memcpy(q.frame, frame, size);
        q.size = size;
        q.atMs = atMs;
        return;
      }
    }
  }
  // RX1 / RX2 of the last uplink (the node's frame ends airtime after the call).
  uint32_t rx1(uint32_t delayMs) const { return lastAtMs + (lastParams.airtimeUs + 999) / 1000 + delayMs; }

  struct Queued {
    uint8_t frame[64];
    size_t size = 0;
    uint32_t atMs = 0;
  };
  Queued queue[4];
  uint8_t last[64] = {};
  size_t lastSize = 0;
  citygate::fw::hal::TxParams lastParams = {};
  uint32_t lastAtMs = 0;
  size_t count = 0;

 private:
  ManualClock& clock_;
};

air::AirConfig otaaConfig() {
  air::AirConfig c;
  c.otaa = true;
  bytes(kAppKey, c.appKey);
  bytes(kJoinEui, c.joinEui);
  bytes(kDevEui, c.devEui);
  c.intervalS = 60;
  c.fcntMargin = 4;
  c.confirmedEvery = 1;
  c.confirmedTries = 3;
  c.firstUplinkMs = 100;
  return c;
}

struct Bench {
  // Polls until the radio has sent `frames` more or `maxMs` passed.
  void run(air::AirNode& n, size_t frames, uint32_t maxMs) {
    const size_t want = radio.count + frames;
    for (uint32_t spent = 0; radio.count < want && spent < maxMs;) {
      uint32_t wait = n.poll();
      if (wait == 0) wait = 1;
      if (wait > 1000) wait = 1000;
      clock.advance(wait);
      spent += wait;
    }
  }
  // Polls for `ms`.
  void idle(air::AirNode& n, uint32_t ms) {
    for (uint32_t spent = 0; spent < ms;) {
      uint32_t wait = n.poll();
      if (wait == 0) wait = 1;
      if (wait > 100) wait = 100;
      clock.advance(wait);
      spent += wait;
    }
  }
  ManualClock clock{1000};
  ScriptRadio radio{clock};
  host::SimAirBus bus;
  FakeFlash flash{256, 8};
  air::AirNode node{clock, radio, bus, flash};
};

// A data downlink of the session (devAddr 26011F42, the keys of the join with `devNonce`).
size_t downlink(uint16_t devNonce, uint32_t fcnt, bool ack, const uint8_t* fopts, uint8_t foptsLen, uint8_t* out) {
  uint8_t appKey[16];
  bytes(kAppKey, appKey);
  uint8_t nwk[16];
  uint8_t app[16];
  air::deriveSessionKeys(appKey, 0x123456, 0x000013, devNonce, nwk, app);
  air::Session s;
  s.init(nwk, app);
  const uint32_t devAddr = 0x26011F42;
  out[0] = air::kMhdrUnconfirmedDown;
  for (int i = 0; i < 4; ++i) out[1 + i] = static_cast<uint8_t>(devAddr >> (8 * i));
  out[5] = static_cast<uint8_t>((ack ? 0x20 : 0) | foptsLen);
  out[6] = static_cast<uint8_t>(fcnt);
  out[7] = static_cast<uint8_t>(fcnt >> 8);
  for (uint8_t i = 0; i < foptsLen; ++i) out[8 + i] = fopts[i];
  const size_t n = 8 + foptsLen;
  uint8_t mic[4];
  s.mic(out, n, devAddr, fcnt, true, mic);
  memcpy(out + n, mic, 4);
  return n + 4;
}

}  // namespace

FW_TEST("otaa: join-requests are lora-packet's L6 frames byte for byte") {
  uint8_t appKey[16];
  uint8_t joinEui[8];
  uint8_t devEui[8];
  bytes(kAppKey, appKey);
  bytes(kJoinEui, joinEui);
  bytes(kDevEui, devEui);
  uint8_t frame[air::kJoinRequestBytes];
  uint8_t want[air::kJoinRequestBytes];
  FW_CHECK(air::buildJoinRequest(appKey, joinEui, devEui, 0xf18e, frame));
  bytes("0039363463336913AA05693574323831338EF1C1D5EC6C", want);
  FW_CHECK(sameBytes(frame, want, sizeof want));
  FW_CHECK(air::buildJoinRequest(appKey, joinEui, devEui, 0x8904, frame));
  bytes(
      "0039363463336913AA0569357432383133"
      "0489C65B1304",
      want);
  FW_CHECK(sameBytes(frame, want, sizeof want));
}

FW_TEST("otaa: a join-accept decrypted, verified and its session keys derived as lora-packet does") {
  uint8_t appKey[16];
  bytes(kAppKey, appKey);
  uint8_t wire[33];
  bytes(kAccept33, wire);
  air::JoinAccept a;
  FW_CHECK(air::parseJoinAccept(appKey, 0xf18e, wire, sizeof wire, a) == air::RxError::None);
  FW_CHECK_EQ(a.joinNonce, 0x123456u);
  FW_CHECK_EQ(a.netId, 0x000013u);
  FW_CHECK_EQ(a.devAddr, 0x26011F42u);
  FW_CHECK_EQ(a.dlSettings, 2);
  FW_CHECK_EQ(a.rxDelay, 1);
  FW_CHECK(a.hasCfList);
  uint8_t cf[16];
  bytes("184f84e85684b85e84886684586e8400", cf);
  FW_CHECK(sameBytes(a.cfList, cf, 16));
  // generateSessionKeys(AppKey, NetID 000013, AppNonce 123456, DevNonce f18e)
  uint8_t nwk[16];
  uint8_t app[16];
  bytes("53de6aaa7ed5d63ac36aa6e23f6d87f4", nwk);
  bytes("0e269d253419ed2a9687776400b8be35", app);
  FW_CHECK(sameBytes(a.nwkSKey, nwk, 16));
  FW_CHECK(sameBytes(a.appSKey, app, 16));

  uint8_t shortWire[17];
  bytes(kAccept17, shortWire);
  air::JoinAccept b;
  FW_CHECK(air::parseJoinAccept(appKey, 0xf18e, shortWire, sizeof shortWire, b) == air::RxError::None);
  FW_CHECK_EQ(b.devAddr, 0x26011F42u);
  FW_CHECK(!b.hasCfList);
}

FW_TEST("otaa: bad join-accepts refused with their reason") {
  uint8_t appKey[16];
  bytes(kAppKey, appKey);
  uint8_t wire[33];
  bytes(kAccept33, wire);
  air::JoinAccept a;
  wire[20] ^= 0x01;  // one bit of the ciphertext
  FW_CHECK(air::parseJoinAccept(appKey, 1, wire, sizeof wire, a) == air::RxError::BadMic);
  wire[20] ^= 0x01;
  FW_CHECK(air::parseJoinAccept(appKey, 1, wire, 32, a) == air::RxError::TooLong);
  FW_CHECK(air::parseJoinAccept(appKey, 1, wire, 16, a) == air::RxError::TooShort);
  uint8_t other[16] = {1};
  FW_CHECK(air::parseJoinAccept(other, 1, wire, sizeof wire, a) == air::RxError::BadMic);
  uint8_t l4[13];
  bytes("60f17dbe4920020001f9d65d27", l4);
  FW_CHECK(air::parseJoinAccept(appKey, 1, l4, sizeof l4, a) == air::RxError::Unexpected);
  uint8_t up[] = {0x40, 1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 0};
  FW_CHECK(air::parseJoinAccept(appKey, 1, up, sizeof up, a) == air::RxError::NotForUs);
}

FW_TEST("otaa: L4 downlink ACK verified with the NwkSKey, replays and strangers refused") {
  uint8_t nwk[16];
  uint8_t app[16];
  bytes("44024241ed4ce9a68c6a8bc055233fd3", nwk);
  bytes("ec925802ae430ca77fd3dd73cb2cc588", app);
  air::Session s;
  FW_CHECK(s.init(nwk, app));
  uint8_t l4[13];
  bytes("60f17dbe4920020001f9d65d27", l4);
  air::Downlink d;
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, false, 0, l4, sizeof l4, d) == air::RxError::None);
  FW_CHECK_EQ(d.fcnt, 2u);
  FW_CHECK(d.ack);
  FW_CHECK(!d.confirmed);
  FW_CHECK(d.hasPort);
  FW_CHECK_EQ(d.fport, 1);
  FW_CHECK_EQ(d.payloadSize, 0u);
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, true, 1, l4, sizeof l4, d) == air::RxError::None);
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, true, 2, l4, sizeof l4, d) == air::RxError::Replay);
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, true, 7, l4, sizeof l4, d) == air::RxError::Replay);
  FW_CHECK(air::parseDownlink(s, 0x26011A01, false, 0, l4, sizeof l4, d) == air::RxError::OtherDevAddr);
  l4[9] ^= 0x10;
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, false, 0, l4, sizeof l4, d) == air::RxError::BadMic);
  l4[9] ^= 0x10;
  l4[5] = 0x2F;  // FOptsLen 15: past the frame
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, false, 0, l4, sizeof l4, d) == air::RxError::BadFopts);
  uint8_t up[13];
  bytes("40F17DBE49000300012A3518AF", up);
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, false, 0, up, sizeof up, d) == air::RxError::NotForUs);
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, false, 0, up, 5, d) == air::RxError::NotForUs);
  l4[0] = 0x60;
  FW_CHECK(air::parseDownlink(s, 0x49BE7DF1, false, 0, l4, 11, d) == air::RxError::TooShort);
}

FW_TEST("otaa: MAC commands in FOpts: LinkCheckAns, DevStatusReq, unknown ones refused") {
  air::MacResult m;
  const uint8_t both[] = {0x02, 0x07, 0x01, 0x06};
  FW_CHECK(air::parseMacCommands(both, sizeof both, m) == air::RxError::None);
  FW_CHECK(m.linkCheck);
  FW_CHECK_EQ(m.margin, 7);
  FW_CHECK_EQ(m.gatewayCount, 1);
  FW_CHECK(m.devStatus);
  const uint8_t adr[] = {0x03, 0x51, 0xFF, 0x00, 0x01, 0x06};
  FW_CHECK(air::parseMacCommands(adr, sizeof adr, m) == air::RxError::None);
  FW_CHECK_EQ(m.ignored, 1);
  FW_CHECK(m.devStatus);
  const uint8_t cut[] = {0x02, 0x07};
  FW_CHECK(air::parseMacCommands(cut, sizeof cut, m) == air::RxError::BadMac);
  const uint8_t unknown[] = {0x06, 0x80, 0x02, 0x01, 0x01};
  FW_CHECK(air::parseMacCommands(unknown, sizeof unknown, m) == air::RxError::BadMac);
  FW_CHECK(m.devStatus);  // what came before it was read
}

FW_TEST("otaa: DevNonces never reused across power cuts at any write or erase, torn each way") {
  // Sectors of 256 bytes: 3 records each, so the pair turns many times.
  static FakeFlash flash(256, 8);
  using Tear = FakeFlash::Tear;
  const Tear tears[] = {Tear::Nothing, Tear::Prefix, Tear::EvenBits};
  for (Tear tear : tears) {
    for (uint32_t cutAt = 1; cutAt <= 12; ++cutAt) {
      flash.reset();
      uint32_t highest = 0;
      bool any = false;
      bool ok = true;
      uint32_t joins = 0;
      for (int boot = 0; boot < 6; ++boot) {
        air::JoinStore store(flash);
        if (!store.start()) {
          ok = false;
          break;
        }
        if (boot % 2 == 0) flash.cutAt(cutAt, tear, 1 + (cutAt * 7) % 79);  // every other boot runs uncut
        for (int j = 0; j < 20; ++j) {
          uint16_t n = 0;
          if (!store.takeDevNonce(n)) break;
          if (any && n <= highest) ok = false;
          highest = n;
          any = true;
          ++joins;
          if (j == 5) {
            air::OtaaSession s;
            s.devAddr = 0x26000000u + static_cast<uint32_t>(joins);
            store.saveSession(s);
          }
        }
        flash.powerOn();
      }
      FW_CHECK(ok);
      FW_CHECK(joins > 20);
    }
  }
}

FW_TEST("otaa: the session survives a reset, a torn session write keeps the previous one") {
  static FakeFlash flash(256, 8);
  air::OtaaSession s;
  s.devAddr = 0x26012000;
  s.fcntBase = 40;
  s.rxDelay = 1;
  s.nwkSKey[0] = 0x11;
  s.appSKey[15] = 0x22;
  {
    air::JoinStore store(flash);
    FW_CHECK(store.start());
    FW_CHECK(!store.session().valid);
    uint16_t n = 9;
    FW_CHECK(store.takeDevNonce(n));
    FW_CHECK_EQ(n, 0);
    FW_CHECK(store.saveSession(s));
  }
  {
    air::JoinStore store(flash);
    FW_CHECK(store.start());
    FW_CHECK(store.session().valid);
    FW_CHECK_EQ(store.session().devAddr, 0x26012000u);
    FW_CHECK_EQ(store.session().fcntBase, 40u);
    FW_CHECK_EQ(store.session().nwkSKey[0], 0x11);
    FW_CHECK_EQ(store.session().appSKey[15], 0x22);
    FW_CHECK_EQ(store.nextDevNonce(), air::JoinStore::kNonceBlock);  // the reserved block is skipped
    air::OtaaSession t = s;
    t.devAddr = 0x26012001;
    flash.cutAt(1, FakeFlash::Tear::Prefix, 40);
    FW_CHECK(!store.saveSession(t));
    flash.powerOn();
  }
  air::JoinStore store(flash);
  FW_CHECK(store.start());
  FW_CHECK_EQ(store.session().devAddr, 0x26012000u);
  FW_CHECK_EQ(store.stats().badRecords, 1u);
}

FW_TEST("otaa node: joins, sends confirmed uplinks the ACK answers, keeps the session across a reset") {
  static Bench b;
  FW_CHECK(b.node.start(otaaConfig()) == nullptr);
  FW_CHECK(!b.node.joined());
  b.run(b.node, 1, 2000);
  FW_CHECK_EQ(b.radio.count, 1u);
  FW_CHECK_EQ(b.radio.lastSize, air::kJoinRequestBytes);
  uint8_t want[air::kJoinRequestBytes];
  bytes(
      "0039363463336913AA0569357432383133"
      "0000"
      "00000000",
      want);
  FW_CHECK(sameBytes(b.radio.last, want, 19));  // DevNonce 0 on a blank flash
  // The join-accept in RX1 (5 s after the request ended).
  uint8_t accept[33];
  bytes(kAccept33, accept);
  b.radio.deliver(accept, sizeof accept, b.radio.rx1(5000));
  b.run(b.node, 1, 8000);
  FW_CHECK(b.node.joined());
  FW_CHECK_EQ(b.node.devAddr(), 0x26011F42u);
  FW_CHECK_EQ(b.node.stats().joinAccepts, 1u);
  // The first uplink of the session: confirmed, FCnt 0, the joined DevAddr.
  FW_CHECK_EQ(b.radio.count, 2u);
  FW_CHECK_EQ(b.radio.last[0], air::kMhdrConfirmedUp);
  FW_CHECK_EQ(b.radio.last[1], 0x42);
  FW_CHECK_EQ(b.radio.last[4], 0x26);
  FW_CHECK_EQ(b.radio.last[6], 0);
  FW_CHECK_EQ(b.radio.last[7], 0);
  uint8_t dl[32];
  const uint8_t linkCheck[] = {0x02, 0x0A, 0x01, 0x06};
  size_t n = downlink(0, 0, true, linkCheck, sizeof linkCheck, dl);
  b.radio.deliver(dl, n, b.radio.rx1(1000));
  b.idle(b.node, 2500);
  FW_CHECK_EQ(b.node.stats().acked, 1u);
  FW_CHECK_EQ(b.node.stats().retransmissions, 0u);
  FW_CHECK_EQ(b.node.stats().linkChecks, 1u);
  FW_CHECK_EQ(b.node.stats().linkMargin, 10);
  // The next uplink answers DevStatusReq in FOpts; its ACK comes in RX2, after a tampered frame in RX1.
  b.run(b.node, 1, 70000);
  FW_CHECK_EQ(b.radio.count, 3u);
  FW_CHECK_EQ(b.radio.last[5], 0x03);  // FOptsLen 3
  FW_CHECK_EQ(b.radio.last[8], 0x06);  // DevStatusAns
  FW_CHECK_EQ(b.radio.last[6], 1);     // FCnt 1
  FW_CHECK_EQ(b.node.stats().devStatusAnswers, 1u);
  n = downlink(0, 1, true, nullptr, 0, dl);
  dl[n - 1] ^= 0xFF;
  b.radio.deliver(dl, n, b.radio.rx1(1000));
  uint8_t good[32];
  const size_t g = downlink(0, 1, true, nullptr, 0, good);
  b.radio.deliver(good, g, b.radio.rx1(2000));
  b.idle(b.node, 3000);
  FW_CHECK_EQ(b.node.stats().refused[static_cast<size_t>(air::RxError::BadMic)], 1u);
  FW_CHECK_EQ(b.node.stats().acked, 2u);
  // A replay of that ACK after the next uplink: refused, and the uplink is sent again (same frame).
  b.run(b.node, 1, 70000);
  uint8_t sent[64];
  const size_t sentSize = b.radio.lastSize;
  memcpy(sent, b.radio.last, sentSize);
  b.radio.deliver(good, g, b.radio.rx1(1000));
  b.run(b.node, 1, 10000);
  FW_CHECK_EQ(b.node.stats().refused[static_cast<size_t>(air::RxError::Replay)], 1u);
  FW_CHECK_EQ(b.node.stats().retransmissions, 1u);
  FW_CHECK_EQ(b.radio.lastSize, sentSize);
  FW_CHECK(sameBytes(b.radio.last, sent, sentSize));
  // Nothing answers: one more try (3 in all), then given up.
  b.run(b.node, 1, 10000);
  b.idle(b.node, 4000);
  FW_CHECK_EQ(b.node.stats().retransmissions, 2u);
  FW_CHECK_EQ(b.node.stats().unacked, 1u);
  FW_CHECK_EQ(b.node.stats().joinRequests, 1u);

  // A reset: the session is kept, no join-request, the counter goes on.
  const uint32_t before = b.node.stats().lastFcnt;
  static air::AirNode again(b.clock, b.radio, b.bus, b.flash);
  FW_CHECK(again.start(otaaConfig()) == nullptr);
  FW_CHECK(again.joined());
  FW_CHECK_EQ(again.devAddr(), 0x26011F42u);
  b.run(again, 1, 70000);
  FW_CHECK_EQ(again.stats().joinRequests, 0u);
  FW_CHECK_EQ(b.radio.last[0], air::kMhdrConfirmedUp);
  const uint32_t fcnt = static_cast<uint32_t>(b.radio.last[6] | b.radio.last[7] << 8);
  FW_CHECK(fcnt > before);

  // Provisioned anew (another DevEUI): the stored session is not this device's: it joins again,
  // with a DevNonce it never sent.
  air::AirConfig other = otaaConfig();
  other.devEui[7] ^= 0x01;
  static air::AirNode third(b.clock, b.radio, b.bus, b.flash);
  FW_CHECK(third.start(other) == nullptr);
  FW_CHECK(!third.joined());
  FW_CHECK_EQ(third.stats().sessionsDropped, 1u);
  b.run(third, 1, 70000);
  FW_CHECK_EQ(b.radio.lastSize, air::kJoinRequestBytes);
  FW_CHECK(b.radio.last[17] >= air::JoinStore::kNonceBlock);
}

FW_TEST("otaa node: no join-accept: retries back off with a new DevNonce each time") {
  static Bench b;
  FW_CHECK(b.node.start(otaaConfig()) == nullptr);
  b.run(b.node, 1, 2000);
  const uint32_t first = b.radio.lastAtMs;
  b.run(b.node, 1, 60000);
  const uint32_t second = b.radio.lastAtMs;
  b.run(b.node, 1, 120000);
  const uint32_t third = b.radio.lastAtMs;
  FW_CHECK_EQ(b.radio.count, 3u);
  FW_CHECK_EQ(b.node.stats().joinTimeouts, 2u);
  FW_CHECK(second - first >= 15000u);
  FW_CHECK(third - second >= 30000u);
  FW_CHECK_EQ(b.radio.last[17], 2);  // DevNonce 2
  // A join-accept outside the windows is not taken.
  uint8_t accept[33];
  bytes(kAccept33, accept);
  b.radio.deliver(accept, sizeof accept, b.radio.rx1(5000) + 600);
  b.idle(b.node, 7000);
  FW_CHECK(!b.node.joined());
  FW_CHECK_EQ(b.node.stats().outsideWindow, 1u);
}
