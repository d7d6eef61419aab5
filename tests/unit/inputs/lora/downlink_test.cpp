// Class A downlinks: the frame a network server would build (L4 of protocols.md), PULL_RESP and
// TX_ACK, RX1/RX2 timing on an injected clock, duty cycle, FCntDown reservations, and every reason
// a downlink is not sent.
#include <doctest/doctest.h>

#include <string>

#include "inputs/lora/downlink.hpp"
#include "inputs/lora/phy_payload.hpp"
#include "lora_test_util.hpp"

using namespace citygate;
using namespace citygate::lora;
using namespace std::chrono_literals;
using lora_test::hex;
using lora_test::key;
using lora_test::toHex;

namespace {
const Key kNwk = key("44024241ed4ce9a68c6a8bc055233fd3");
const Key kApp = key("ec925802ae430ca77fd3dd73cb2cc588");
constexpr std::uint64_t kGw = 0xAA555A0000000000ULL;
const SteadyTime kT0 = SteadyTime{} + 1000h;  // any steady origin: nothing depends on uptime

std::unique_ptr<Crypto> crypto() {
  std::string why;
  auto c = Crypto::create(&why);
  REQUIRE_MESSAGE(c, why);
  return c;
}

struct World {
  std::unique_ptr<Crypto> c = crypto();
  std::unique_ptr<Downlinks> d;
  explicit World(DownlinkOptions o = {}) {
    DownlinkDevice dev;
    dev.id = "sign-1";
    dev.devAddr = 0x49BE7DF1;
    dev.devEui = "0004A30B001C0530";
    dev.nwkSKey = kNwk;
    dev.appSKey = kApp;
    dev.keyCheck = 0x1234;
    d = std::make_unique<Downlinks>(std::vector<DownlinkDevice>{dev}, o, *c);
    d->restore({});
    d->markPersisted(d->reservations());
    d->notePull(kGw);
  }
};

AcceptedUplink confirmedUp(SteadyTime at, std::uint32_t tmst = 3512348611U) {
  AcceptedUplink u;
  u.device = 0;
  u.gatewayEui = kGw;
  u.hasTmst = true;
  u.tmst = tmst;
  u.receivedAt = at;
  u.frequency = 868.3;
  u.datr = "SF9BW125";
  u.snr = 5.5;
  u.confirmed = true;
  return u;
}

struct Resp {
  std::uint16_t token = 0;
  std::uint32_t tmst = 0;
  double freq = 0;
  std::string datr;
  bool ipol = false, imme = true;
  int powe = 0;
  std::size_t size = 0;
  std::vector<std::uint8_t> phy;
};

Resp parseResp(const Tx& tx) {
  REQUIRE(tx.datagram.size() > 4);
  CHECK(tx.datagram[0] == 2);
  CHECK(tx.datagram[3] == 0x03);
  Resp r;
  r.token = static_cast<std::uint16_t>((tx.datagram[1] << 8) | tx.datagram[2]);
  json::Document doc;
  const std::string_view body(reinterpret_cast<const char*>(tx.datagram.data()) + 4, tx.datagram.size() - 4);
  REQUIRE(doc.parse(body) == json::Error::None);
  const auto t = doc.root().get("txpk");
  REQUIRE(t.isObject());
  r.tmst = static_cast<std::uint32_t>(t.get("tmst").number());
  r.freq = t.get("freq").number();
  r.datr = std::string(t.get("datr").string());
  r.ipol = t.get("ipol").boolean();
  r.imme = t.get("imme").boolean();
  r.powe = static_cast<int>(t.get("powe").number());
  r.size = static_cast<std::size_t>(t.get("size").number());
  CHECK(t.get("modu").string() == "LORA");
  CHECK(t.get("codr").string() == "4/5");
  r.phy.resize(r.size);
  REQUIRE(decodeBase64(t.get("data").string(), r.phy) == r.size);
  return r;
}

std::uint32_t droppedOf(const Downlinks& d, DropReason r) {
  return static_cast<std::uint32_t>(d.counters().dropped[static_cast<std::size_t>(r)]);
}
}  // namespace

TEST_CASE("L4: the ACK downlink a network server builds, byte for byte") {
  auto c = crypto();
  DataDown d;
  d.devAddr = 0x49BE7DF1;
  d.fcnt = 2;
  d.ack = true;
  d.hasPort = true;
  d.fport = 1;
  const auto phy = buildDataDown(*c, kNwk, kApp, d);
  REQUIRE(phy);
  CHECK(toHex(*phy) == "60f17dbe4920020001f9d65d27");
}

TEST_CASE("a downlink with FOpts and an encrypted payload parses back and verifies") {
  auto c = crypto();
  DataDown d;
  d.devAddr = 0x26011F42;
  d.fcnt = 70000;
  d.confirmed = true;
  d.fopts = {0x02, 12, 1};
  d.hasPort = true;
  d.fport = 10;
  d.payload = {1, 2, 3};
  const auto phy = buildDataDown(*c, kNwk, kApp, d);
  REQUIRE(phy);
  DataFrame f;
  REQUIRE(parseDataFrame(*phy, f, true) == PhyError::None);
  CHECK(f.mtype == MType::ConfirmedDataDown);
  CHECK(f.devAddr == 0x26011F42);
  CHECK(f.fcnt16 == (70000 & 0xFFFF));
  CHECK(toHex(f.fopts) == "020c01");
  CHECK(f.fport == 10);
  CHECK(*c->dataMic(kNwk, Dir::Down, f.devAddr, 70000, f.micInput) == f.mic);
  std::vector<std::uint8_t> plain(3);
  REQUIRE(c->cryptPayload(kApp, Dir::Down, f.devAddr, 70000, f.frmPayload, plain));
  CHECK(toHex(plain) == "010203");
  d.fopts.assign(16, 0);
  CHECK_FALSE(buildDataDown(*c, kNwk, kApp, d));
}

TEST_CASE("TX_ACK: every error code, the empty body of older forwarders, bad JSON") {
  json::Document doc;
  CHECK(parseTxAck("", doc) == TxAckError::None);
  CHECK(parseTxAck(R"({"txpk_ack":{"error":"NONE"}})", doc) == TxAckError::None);
  CHECK(parseTxAck(R"({"txpk_ack":{"warn":"TX_POWER","value":14}})", doc) == TxAckError::None);
  for (std::size_t i = 0; i + 1 < kTxAckErrorCount; ++i) {
    const std::string body = R"({"txpk_ack":{"error":")" + std::string(kTxAckErrorNames[i]) + R"("}})";
    CHECK(parseTxAck(body, doc) == static_cast<TxAckError>(i));
  }
  CHECK(parseTxAck(R"({"txpk_ack":{"error":"SOMETHING_NEW"}})", doc) == TxAckError::Unknown);
  CHECK_FALSE(parseTxAck("{", doc));
  CHECK_FALSE(parseTxAck(R"({"txpk":{}})", doc));
  CHECK_FALSE(parseTxAck(R"({"txpk_ack":{"error":3}})", doc));
  CHECK_FALSE(parseTxAck("[]", doc));
}

TEST_CASE("RX1 and RX2 timing: tmst + 1 s / + 2 s (join: + 5 s / + 6 s), modulo 2^32") {
  const Window w1 = rx1Window(1000, kT0, 868.1, "SF7BW125");
  CHECK(w1.tmst == 1001000);
  CHECK(w1.at == kT0 + 1s);
  CHECK(w1.frequency == 868.1);
  CHECK(w1.datr == "SF7BW125");
  CHECK_FALSE(w1.rx2);
  const Window w2 = rx2Window(1000, kT0);
  CHECK(w2.tmst == 2001000);
  CHECK(w2.at == kT0 + 2s);
  CHECK(w2.frequency == 869.525);
  CHECK(w2.datr == "SF12BW125");
  CHECK(w2.rx2);
  CHECK(rx1Window(0xFFFFFFFFU - 499999, kT0, 868.1, "SF7BW125").tmst == 500000);  // the counter wraps
  CHECK(rx1Window(10, kT0, 868.1, "SF7BW125", kJoinAcceptDelay1).tmst == 5000010);
  CHECK(rx2Window(10, kT0, kJoinAcceptDelay1).tmst == 6000010);
  CHECK(canMeet(w1, kT0 + 950ms, 50ms));
  CHECK_FALSE(canMeet(w1, kT0 + 951ms, 50ms));
}

TEST_CASE("airtime, sub-bands and the duty cycle over a sliding hour") {
  CHECK(loraAirtime(7, 125, 13, true) == 46336us);
  CHECK(loraAirtime(12, 125, 12) == 991232us);
  CHECK(subBandOf(868.1) == SubBand::G1);
  CHECK(subBandOf(869.525) == SubBand::G3);
  CHECK(subBandOf(867.5) == SubBand::G);
  CHECK_FALSE(subBandOf(915.0));
  CHECK(parseDatr("SF12BW125") == std::make_pair(12, 125));
  CHECK_FALSE(parseDatr("SF13BW125"));
  CHECK_FALSE(parseDatr("FSK"));
  DutyCycle dc;
  // g1: 1 % of an hour = 36 s.
  CHECK(dc.allows(kGw, SubBand::G1, 36s, kT0));
  dc.record(kGw, SubBand::G1, 35s, kT0);
  CHECK(dc.allows(kGw, SubBand::G1, 1s, kT0 + 1s));
  CHECK_FALSE(dc.allows(kGw, SubBand::G1, 1001ms, kT0 + 1s));
  CHECK(dc.allows(kGw + 1, SubBand::G1, 36s, kT0));   // per gateway
  CHECK(dc.allows(kGw, SubBand::G3, 300s, kT0));      // g3: 10 %
  CHECK(dc.allows(kGw, SubBand::G1, 36s, kT0 + 1h));  // the hour has passed
  dc.refund(kGw, SubBand::G1, 35s, kT0);
  CHECK(dc.used(kGw, SubBand::G1, kT0) == 0us);
}

TEST_CASE("LinkCheckReq in FOpts: parsed past other MAC answers, the margin from the SNR") {
  CHECK(parseUplinkMac(hex("02")).linkCheckReq);
  CHECK(parseUplinkMac(hex("030702")).linkCheckReq);      // LinkADRAns (1 byte), then LinkCheckReq
  CHECK_FALSE(parseUplinkMac(hex("ff02")).linkCheckReq);  // unknown CID: the rest is unreadable
  const UplinkMac ds = parseUplinkMac(hex("06fe3f"));
  CHECK(ds.devStatusAns);
  CHECK(ds.battery == 254);
  CHECK(ds.devStatusMargin == -1);
  CHECK(linkMargin(5.5, 9) == 18);  // 5.5 - (-12.5)
  CHECK(linkMargin(-25.0, 12) == 0);
  CHECK(linkMargin(400.0, 7) == 254);
}

TEST_CASE("a confirmed uplink gets an ACK for RX1: uplink's channel, tmst + 1 s, ipol, MIC") {
  World w;
  const auto tx = w.d->onUplink(confirmedUp(kT0), kT0 + 200ms);
  REQUIRE(tx);
  CHECK(tx->gatewayEui == kGw);
  const Resp r = parseResp(*tx);
  CHECK(r.tmst == 3512348611U + 1000000U);
  CHECK(r.freq == doctest::Approx(868.3));
  CHECK(r.datr == "SF9BW125");
  CHECK(r.ipol);
  CHECK_FALSE(r.imme);
  CHECK(r.powe == 14);
  DataFrame f;
  REQUIRE(parseDataFrame(r.phy, f, true) == PhyError::None);
  CHECK(f.mtype == MType::UnconfirmedDataDown);
  CHECK(f.ack());
  CHECK(f.devAddr == 0x49BE7DF1);
  CHECK(f.fcnt16 == 0);
  CHECK(*w.c->dataMic(kNwk, Dir::Down, f.devAddr, 0, f.micInput) == f.mic);
  CHECK(w.d->counters().rx1 == 1);
  CHECK(w.d->counters().acks == 1);
  // The next one counts up.
  const auto tx2 = w.d->onUplink(confirmedUp(kT0 + 10s), kT0 + 10s + 200ms);
  REQUIRE(tx2);
  REQUIRE(parseDataFrame(parseResp(*tx2).phy, f, true) == PhyError::None);
  CHECK(f.fcnt16 == 1);
  CHECK(w.d->nextFcntDown(0) == 2);
  // TX_ACK NONE: counted, nothing more.
  CHECK_FALSE(w.d->onTxAck(kGw, parseResp(*tx2).token, TxAckError::None, kT0 + 10s + 210ms));
  CHECK(w.d->counters().txAck[0] == 1);
}

TEST_CASE("an unconfirmed uplink without MAC request or queued data gets nothing") {
  World w;
  AcceptedUplink u = confirmedUp(kT0);
  u.confirmed = false;
  CHECK_FALSE(w.d->onUplink(u, kT0 + 200ms));
  CHECK(w.d->counters().sent == 0);
  u.mac.linkCheckReq = true;
  const auto tx = w.d->onUplink(u, kT0 + 200ms);
  REQUIRE(tx);
  DataFrame f;
  const Resp r = parseResp(*tx);
  REQUIRE(parseDataFrame(r.phy, f, true) == PhyError::None);
  CHECK_FALSE(f.ack());
  CHECK(toHex(f.fopts) == "021201");  // LinkCheckAns margin 18, 1 gateway
  CHECK(w.d->counters().linkCheckAns == 1);
}

TEST_CASE("RX1 passed: RX2 at 869.525 MHz SF12, tmst + 2 s, both passed: too_late") {
  World w;
  std::string why;
  auto tx = w.d->onUplink(confirmedUp(kT0), kT0 + 960ms, &why);
  REQUIRE(tx);
  const Resp r = parseResp(*tx);
  CHECK(r.tmst == 3512348611U + 2000000U);
  CHECK(r.freq == doctest::Approx(869.525));
  CHECK(r.datr == "SF12BW125");
  CHECK(w.d->counters().rx2 == 1);
  CHECK_FALSE(w.d->onUplink(confirmedUp(kT0), kT0 + 1960ms, &why));
  CHECK(why == "too_late: RX2 has passed");
  CHECK(droppedOf(*w.d, DropReason::TooLate) == 1);
  CHECK(w.d->nextFcntDown(0) == 1);  // a refused downlink uses no counter
}

TEST_CASE("refusals: no PULL_DATA, no tmst, not EU868, duty cycle") {
  std::string why;
  {
    World w;
    AcceptedUplink u = confirmedUp(kT0);
    u.gatewayEui = kGw + 7;
    CHECK_FALSE(w.d->onUplink(u, kT0, &why));
    CHECK(droppedOf(*w.d, DropReason::NoPullAddress) == 1);
    u = confirmedUp(kT0);
    u.hasTmst = false;
    CHECK_FALSE(w.d->onUplink(u, kT0, &why));
    CHECK(droppedOf(*w.d, DropReason::NoTmst) == 1);
  }
  {
    World w;
    AcceptedUplink u = confirmedUp(kT0);
    u.frequency = 915.0;  // RX1 outside EU868: RX2 serves
    auto tx = w.d->onUplink(u, kT0, &why);
    REQUIRE(tx);
    CHECK(parseResp(*tx).freq == doctest::Approx(869.525));
    u.datr = "SF7BW125";
    CHECK_FALSE(w.d->onUplink(u, kT0 + 1960ms, &why));  // RX2 passed too: too late wins
    CHECK(droppedOf(*w.d, DropReason::TooLate) == 1);
  }
  {
    World w;
    // g1 spent (on this gateway): RX2 in g3; g3 spent too: duty_cycle.
    w.d->dutyCycle().record(kGw, SubBand::G1, 36s, kT0);
    auto tx = w.d->onUplink(confirmedUp(kT0), kT0, &why);
    REQUIRE(tx);
    CHECK(parseResp(*tx).datr == "SF12BW125");
    w.d->dutyCycle().record(kGw, SubBand::G3, 360s, kT0);
    CHECK_FALSE(w.d->onUplink(confirmedUp(kT0), kT0, &why));
    CHECK(why == "duty_cycle: sub-band g3 has no airtime left");
    CHECK(droppedOf(*w.d, DropReason::DutyCycle) == 1);
  }
}

TEST_CASE("TX_ACK TOO_LATE / COLLISION_PACKET on RX1: retried in RX2, or dropped with a reason") {
  World w;
  std::string why;
  auto tx = w.d->onUplink(confirmedUp(kT0), kT0 + 200ms);
  REQUIRE(tx);
  const Resp first = parseResp(*tx);
  auto retry = w.d->onTxAck(kGw, first.token, TxAckError::TooLate, kT0 + 300ms, &why);
  REQUIRE(retry);
  const Resp second = parseResp(*retry);
  CHECK(second.tmst == first.tmst + 1000000U);
  CHECK(second.freq == doctest::Approx(869.525));
  CHECK(second.phy == first.phy);  // the same frame, the same FCntDown
  CHECK(second.token != first.token);
  CHECK(w.d->counters().retriedRx2 == 1);
  CHECK(w.d->counters().txAck[static_cast<std::size_t>(TxAckError::TooLate)] == 1);
  // An error in RX2 ends it.
  CHECK_FALSE(w.d->onTxAck(kGw, second.token, TxAckError::CollisionPacket, kT0 + 400ms, &why));
  CHECK(why == "tx_ack_error: COLLISION_PACKET in RX2");
  CHECK(droppedOf(*w.d, DropReason::TxAckError) == 1);

  // RX2 cannot be met any more.
  tx = w.d->onUplink(confirmedUp(kT0 + 10s), kT0 + 10s + 200ms);
  REQUIRE(tx);
  CHECK_FALSE(w.d->onTxAck(kGw, parseResp(*tx).token, TxAckError::CollisionPacket, kT0 + 11s + 990ms, &why));
  CHECK(why == "retry_too_late: COLLISION_PACKET in RX1, RX2 has passed");
  CHECK(droppedOf(*w.d, DropReason::RetryTooLate) == 1);

  // RX2's sub-band has no airtime left.
  tx = w.d->onUplink(confirmedUp(kT0 + 20s), kT0 + 20s + 200ms);
  REQUIRE(tx);
  w.d->dutyCycle().record(kGw, SubBand::G3, 360s, kT0 + 20s);
  CHECK_FALSE(w.d->onTxAck(kGw, parseResp(*tx).token, TxAckError::TooLate, kT0 + 20s + 300ms, &why));
  CHECK(droppedOf(*w.d, DropReason::RetryDutyCycle) == 1);

  // Other errors are not retried.
  tx = w.d->onUplink(confirmedUp(kT0 + 30s), kT0 + 30s + 200ms);
  REQUIRE(tx);
  CHECK_FALSE(w.d->onTxAck(kGw, parseResp(*tx).token, TxAckError::TxFreq, kT0 + 30s + 300ms, &why));
  CHECK(why == "tx_ack_error: TX_FREQ in RX1");
  CHECK(droppedOf(*w.d, DropReason::TxAckError) == 2);

  // A token nobody sent, and one from another gateway.
  CHECK_FALSE(w.d->onTxAck(kGw, 1, TxAckError::None, kT0 + 31s));
  CHECK(w.d->counters().txAckUnknownToken == 1);
}

TEST_CASE("a refused RX1 transmission's airtime is refunded") {
  World w;
  auto tx = w.d->onUplink(confirmedUp(kT0), kT0 + 200ms);
  REQUIRE(tx);
  CHECK(w.d->dutyCycle().used(kGw, SubBand::G1, kT0 + 250ms) > 0us);
  (void)w.d->onTxAck(kGw, parseResp(*tx).token, TxAckError::TooLate, kT0 + 300ms);
  CHECK(w.d->dutyCycle().used(kGw, SubBand::G1, kT0 + 350ms) == 0us);
  CHECK(w.d->dutyCycle().used(kGw, SubBand::G3, kT0 + 350ms) > 0us);
}

TEST_CASE("missing TX_ACKs expire, a full in-flight table forgets the oldest, a failed send is counted") {
  World w;
  AcceptedUplink fast = confirmedUp(kT0);
  fast.datr = "SF7BW125";  // 257 ACKs fit g1's 36 s
  for (int i = 0; i < static_cast<int>(Downlinks::kMaxInflight) + 1; ++i) {
    if (w.d->persistWanted()) w.d->markPersisted(w.d->reservations());  // the writer keeps up
    REQUIRE(w.d->onUplink(fast, kT0 + 100ms));
  }
  CHECK(droppedOf(*w.d, DropReason::InflightFull) == 1);
  w.d->expire(kT0 + 10s);
  CHECK(w.d->counters().txAckMissing == Downlinks::kMaxInflight);
  auto tx = w.d->onUplink(confirmedUp(kT0 + 20s), kT0 + 20s + 100ms);
  REQUIRE(tx);
  w.d->sendFailed(*tx);
  CHECK(droppedOf(*w.d, DropReason::SendFailed) == 1);
}

TEST_CASE("FCntDown: handed out only below a written reservation, never reused across restarts") {
  World w;
  auto reserved = w.d->reservations();
  REQUIRE(reserved.size() == 1);
  CHECK(reserved[0].reserved == kFcntDownReserve);
  // Restart without the reservation written: nothing is handed out.
  auto c = crypto();
  DownlinkDevice dev;
  dev.id = "sign-1";
  dev.devAddr = 0x49BE7DF1;
  dev.nwkSKey = kNwk;
  dev.appSKey = kApp;
  dev.keyCheck = 0x1234;
  Downlinks d2({dev}, {}, *c);
  d2.restore(decodeFcntDown(encodeFcntDown(reserved), nullptr).value());
  d2.notePull(kGw);
  CHECK(d2.nextFcntDown(0) == kFcntDownReserve);
  std::string why;
  CHECK_FALSE(d2.onUplink(confirmedUp(kT0), kT0, &why));
  CHECK(why == "fcnt_down_unsaved");
  CHECK(d2.persistWanted());
  d2.markPersisted(d2.reservations());
  CHECK_FALSE(d2.persistWanted());
  auto tx = d2.onUplink(confirmedUp(kT0), kT0);
  REQUIRE(tx);
  DataFrame f;
  REQUIRE(parseDataFrame(parseResp(*tx).phy, f, true) == PhyError::None);
  CHECK(f.fcnt16 == kFcntDownReserve);
  // Half the reservation used: a new one is wanted before it runs out.
  for (std::uint32_t i = 1; i <= kFcntDownReserve / 2; ++i) (void)d2.onUplink(confirmedUp(kT0 + 1h * i), kT0 + 1h * i);
  CHECK(d2.persistWanted());
  // A re-keyed device starts afresh.
  dev.keyCheck = 0x9999;
  Downlinks d3({dev}, {}, *c);
  d3.restore(reserved);
  CHECK(d3.nextFcntDown(0) == 0);
}

TEST_CASE("the FCntDown file: round trip, damage refused") {
  const std::vector<FcntDownRecord> recs{{"a", 0x26011F42, 0xDEADBEEF, 256}, {"b-2", 1, 2, 4294967295U}};
  const std::string text = encodeFcntDown(recs);
  const auto back = decodeFcntDown(text, nullptr);
  REQUIRE(back);
  REQUIRE(back->size() == 2);
  CHECK((*back)[1].reserved == 4294967295U);
  CHECK((*back)[0].devAddr == 0x26011F42);
  std::string why;
  CHECK_FALSE(decodeFcntDown(text.substr(0, text.size() - 3), &why));
  std::string flipped = text;
  flipped[30] ^= 1;
  CHECK_FALSE(decodeFcntDown(flipped, &why));
  CHECK(why == "bad CRC");
  CHECK_FALSE(decodeFcntDown("citygate-lora-fcnt 2\n", &why));
  CHECK_FALSE(decodeFcntDown("", &why));
}

TEST_CASE("application downlinks: queued per device, bounded, sent after the next uplink") {
  DownlinkOptions o;
  o.queueDepth = 2;
  World w(o);
  const std::vector<std::uint8_t> b{0xAB, 0xCD};
  CHECK(w.d->enqueue("nobody", 1, b, false) == EnqueueResult::UnknownDevice);
  CHECK(w.d->enqueue("49be7df1", 0, b, false) == EnqueueResult::BadPort);
  CHECK(w.d->enqueue("49be7df1", 224, b, false) == EnqueueResult::BadPort);
  CHECK(w.d->enqueue("sign-1", 1, std::vector<std::uint8_t>(52), false) == EnqueueResult::TooLarge);
  CHECK(w.d->enqueue("49BE7DF1", 5, b, false) == EnqueueResult::Queued);
  CHECK(w.d->enqueue("0004a30b001c0530", 6, b, true) == EnqueueResult::Queued);
  CHECK(w.d->enqueue("sign-1", 7, b, false) == EnqueueResult::QueueFull);
  CHECK(enqueueResultName(EnqueueResult::QueueFull) == "queue_full");
  AcceptedUplink u = confirmedUp(kT0);
  u.confirmed = false;
  auto tx = w.d->onUplink(u, kT0 + 100ms);
  REQUIRE(tx);
  DataFrame f;
  Resp r = parseResp(*tx);
  REQUIRE(parseDataFrame(r.phy, f, true) == PhyError::None);
  CHECK(f.fport == 5);
  CHECK(f.mtype == MType::UnconfirmedDataDown);
  std::vector<std::uint8_t> plain(2);
  REQUIRE(w.c->cryptPayload(kApp, Dir::Down, f.devAddr, 0, f.frmPayload, plain));
  CHECK(plain == b);
  CHECK(w.d->queued(0) == 1);
  u.receivedAt = kT0 + 10s;
  tx = w.d->onUplink(u, kT0 + 10s + 100ms);
  REQUIRE(tx);
  r = parseResp(*tx);
  REQUIRE(parseDataFrame(r.phy, f, true) == PhyError::None);
  CHECK(f.mtype == MType::ConfirmedDataDown);
  CHECK(w.d->counters().appSent == 2);
  u.ackBit = true;
  (void)w.d->onUplink(u, kT0 + 20s);
  CHECK(w.d->counters().confirmedAcked == 1);
}
