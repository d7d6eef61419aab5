// OTAA joins (LoRaWAN 1.0.x): the join-request vectors of lora-packet (protocols.md L6), the
// join-accept and session keys as lora-packet builds them, every refusal reason, DevNonce replay
// and the session across a restart of the state, the state file's damage, and the ACK of a
// confirmed retransmission. Time is passed in: nothing sleeps.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "inputs/lora/base64.hpp"
#include "inputs/lora/codecs/parking.hpp"
#include "inputs/lora/downlink.hpp"
#include "inputs/lora/frame_processor.hpp"
#include "inputs/lora/join.hpp"
#include "lora_test_util.hpp"

using namespace citygate;
using namespace citygate::lora;
using lora_test::buildUplink;
using lora_test::hex;
using lora_test::key;
using lora_test::toHex;
using lora_test::Uplink;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

// lora-packet's join vectors (protocols.md 3.7 L6).
const char* kAppKeyHex = "98929b92c49edba9676d646d3b612456";
const char* kJoinL6 = "0039363463336913AA05693574323831330489C65B1304";
const char* kJoinL6b = "0039363463336913AA05693574323831338EF1C1D5EC6C";  // DevNonce f18e
constexpr std::uint64_t kJoinEui = 0xAA13693363343639ULL;
constexpr std::uint64_t kDevEui = 0x3331383274356905ULL;
const char* kNwkHex = "44024241ed4ce9a68c6a8bc055233fd3";
const char* kAppHex = "ec925802ae430ca77fd3dd73cb2cc588";

std::shared_ptr<core::SensorSpec> parkingSensor(const std::string& id) {
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = id;
  sensor->kind = pb::PARKING;
  for (const char* f : {"status", "temperature", "battery_voltage"}) {
    core::PointSpec p;
    p.name = f;
    p.field = *core::findField(pb::PARKING, f);
    sensor->points.push_back(p);
  }
  core::buildGroups(*sensor);
  return sensor;
}

DeviceSpec otaaDevice(const std::string& id, std::uint64_t devEui = kDevEui, const char* appKey = kAppKeyHex) {
  DeviceSpec d;
  d.sensor = parkingSensor(id);
  d.codec = std::make_shared<NwaveNps405Codec>();
  d.otaa = true;
  d.devEuiValue = devEui;
  d.joinEui = kJoinEui;
  d.appKey = key(appKey);
  return d;
}

DeviceSpec abpDevice(const std::string& id, std::uint32_t addr) {
  DeviceSpec d;
  d.sensor = parkingSensor(id);
  d.codec = std::make_shared<NwaveNps405Codec>();
  d.devAddr = addr;
  d.nwkSKey = key(kNwkHex);
  d.appSKey = key(kAppHex);
  return d;
}

JoinSpec joinSpec(std::uint32_t first = 0x26011000, std::uint32_t last = 0x260110FF) {
  JoinSpec j;
  j.netId = 0x000013;
  j.devAddrFirst = first;
  j.devAddrLast = last;
  j.cflist = eu868DefaultCflist();
  return j;
}

// A join-request signed with `appKey` (the gateway's CMAC, checked against L6 below).
std::vector<std::uint8_t> joinRequest(Crypto& c, std::uint16_t devNonce, std::uint64_t devEui = kDevEui,
                                      const char* appKey = kAppKeyHex, std::uint64_t joinEui = kJoinEui) {
  std::vector<std::uint8_t> f{0x00};
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<std::uint8_t>(joinEui >> (8 * i)));
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<std::uint8_t>(devEui >> (8 * i)));
  f.push_back(static_cast<std::uint8_t>(devNonce));
  f.push_back(static_cast<std::uint8_t>(devNonce >> 8));
  const std::uint32_t mic = *c.joinRequestMic(key(appKey), f);
  for (int i = 3; i >= 0; --i) f.push_back(static_cast<std::uint8_t>(mic >> (8 * i)));
  return f;
}

// What the device does with a join-accept: AES-encrypt it back, check the MIC, read the fields.
struct Decoded {
  std::uint32_t joinNonce = 0, netId = 0, devAddr = 0;
  std::uint8_t dlSettings = 0, rxDelay = 0;
  std::vector<std::uint8_t> cflist;
  bool micOk = false;
};
Decoded deviceDecrypts(Crypto& c, const std::vector<std::uint8_t>& wire, const char* appKey = kAppKeyHex) {
  std::vector<std::uint8_t> plain(wire.size());
  plain[0] = wire[0];
  REQUIRE(c.aesEncrypt(key(appKey), std::span(wire).subspan(1), std::span(plain).subspan(1)));
  Decoded d;
  auto le = [&](std::size_t at, int n) {
    std::uint32_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | plain[at + static_cast<std::size_t>(i)];
    return v;
  };
  d.joinNonce = le(1, 3);
  d.netId = le(4, 3);
  d.devAddr = le(7, 4);
  d.dlSettings = plain[11];
  d.rxDelay = plain[12];
  if (plain.size() == 33) d.cflist.assign(plain.begin() + 13, plain.begin() + 29);
  const auto mic = c.joinAcceptMic(key(appKey), std::span(plain).first(plain.size() - 4));
  const std::size_t m = plain.size() - 4;
  const std::uint32_t sent = (std::uint32_t{plain[m]} << 24) | (std::uint32_t{plain[m + 1]} << 16) |
                             (std::uint32_t{plain[m + 2]} << 8) | plain[m + 3];
  d.micOk = mic && *mic == sent;
  return d;
}

struct Rig {
  explicit Rig(std::vector<DeviceSpec> devices, std::optional<JoinSpec> join = joinSpec()) {
    ProcessorOptions o;
    o.join = join;
    auto log = std::make_shared<spdlog::logger>("lora", std::make_shared<spdlog::sinks::null_sink_mt>());
    proc = std::make_unique<FrameProcessor>(
        std::move(devices), o, Crypto::create(nullptr),
        [this](const core::SensorSpec& s, core::SensorMemory&, core::RawSample&& r) {
          ids.push_back(s.id);
          addrs.push_back(s.source.lorawan().dev_addr());
          out.push_back(std::move(r));
        },
        log);
    proc->setUplinkHook([this](const AcceptedUplink& u) { uplinks.push_back(u); });
    crypto = Crypto::create(nullptr);
  }
  std::optional<Reason> rx(const std::vector<std::uint8_t>& phy) {
    RxPacket p;
    p.freq = 868.1;
    p.stat = 1;
    p.datr = "SF7BW125";
    p.rssi = -60;
    p.lsnr = 7;
    p.hasTmst = true;
    p.tmst = 1000000;
    std::copy(phy.begin(), phy.end(), p.data.begin());
    p.size = phy.size();
    return proc->onRxpk(p, 0xAA555A0000000000ULL, now, WallClock::now());
  }
  void advance(std::chrono::milliseconds d) {
    now += d;
    proc->flushDue(now);
  }
  std::uint64_t rejected(Reason r) const { return proc->counters().rejected[static_cast<std::size_t>(r)]; }
  pb::DeviceHealth health(std::size_t i) const {
    google::protobuf::RepeatedPtrField<pb::DeviceHealth> h;
    proc->fillHealth(h);
    return h[static_cast<int>(i)];
  }
  // A data uplink with the device's current session keys.
  std::vector<std::uint8_t> uplink(std::size_t device, std::uint32_t fcnt, bool confirmed = false) {
    const DeviceSpec& d = proc->device(device);
    Uplink u;
    u.devAddr = d.devAddr;
    u.fcnt = fcnt;
    u.payload = hex("95");
    u.confirmed = confirmed;
    return buildUplink(*crypto, u, d.nwkSKey, d.appSKey);
  }

  std::unique_ptr<FrameProcessor> proc;
  std::unique_ptr<Crypto> crypto;
  std::vector<core::RawSample> out;
  std::vector<std::string> ids;
  std::vector<std::string> addrs;
  std::vector<AcceptedUplink> uplinks;
  SteadyTime now = SteadyTime{} + 1000h;
};

}  // namespace

TEST_CASE("join-request vectors of lora-packet (L6): parse and MIC") {
  auto c = Crypto::create(nullptr);
  const auto phy = hex(kJoinL6);
  JoinRequest jr;
  REQUIRE(parseJoinRequest(phy, jr) == JoinParseError::None);
  CHECK(jr.joinEui == kJoinEui);
  CHECK(jr.devEui == kDevEui);
  CHECK(jr.mic == 0xc65b1304U);
  CHECK(*c->joinRequestMic(key(kAppKeyHex), jr.micInput) == 0xc65b1304U);
  auto bad = phy;
  bad.back() = 0x05;  // "...05 must fail"
  REQUIRE(parseJoinRequest(bad, jr) == JoinParseError::None);
  CHECK(*c->joinRequestMic(key(kAppKeyHex), jr.micInput) != jr.mic);

  const auto b = hex(kJoinL6b);
  REQUIRE(parseJoinRequest(b, jr) == JoinParseError::None);
  CHECK(jr.joinEui == 0xaa13693363343639ULL);
  CHECK(jr.devEui == 0x3331383274356905ULL);
  CHECK(jr.devNonce == 0xf18e);
  CHECK(jr.mic == 0xc1d5ec6cU);
  CHECK(*c->joinRequestMic(key(kAppKeyHex), jr.micInput) == 0xc1d5ec6cU);
  // Our own builder agrees with lora-packet's bytes.
  CHECK(toHex(joinRequest(*c, 0xf18e)) == "0039363463336913aa05693574323831338ef1c1d5ec6c");

  CHECK(parseJoinRequest(std::span(b).first(22), jr) == JoinParseError::BadLength);
  auto major = b;
  major[0] = 0x01;
  CHECK(parseJoinRequest(major, jr) == JoinParseError::BadMajor);
  CHECK(parseJoinRequest(hex("40F17DBE4900020001954378762B11FF0D"), jr) == JoinParseError::NotJoinRequest);
  CHECK(parseJoinRequest({}, jr) == JoinParseError::NotJoinRequest);
}

TEST_CASE("join-accept and session keys as lora-packet builds them (fromFields, generateSessionKeys)") {
  // lora-packet fromFields({MType: "Join Accept", AppNonce: 123456, NetID: 000013, DevAddr:
  // 26011f42, DLSettings: 0x02, RxDelay: 1, CFList: 867.1..867.9}, null, null, AppKey).
  auto c = Crypto::create(nullptr);
  JoinAcceptFields f;
  f.joinNonce = 0x123456;
  f.netId = 0x000013;
  f.devAddr = 0x26011F42;
  f.rx2DataRate = 2;
  f.rxDelay = 1;
  f.cflist = eu868DefaultCflist();
  auto wire = buildJoinAccept(*c, key(kAppKeyHex), f);
  REQUIRE(wire);
  CHECK(toHex(*wire) == "20600a572dfecfdeb1a5973b119a75acdcbfcd42eea9db949c9511ce5bcb114393");
  f.cflist.clear();
  wire = buildJoinAccept(*c, key(kAppKeyHex), f);
  REQUIRE(wire);
  CHECK(toHex(*wire) == "20b0b6a0bd85e1720dbf3a977c065f8860");
  const Decoded d = deviceDecrypts(*c, *wire);
  CHECK(d.micOk);
  CHECK(d.devAddr == 0x26011F42);

  // generateSessionKeys(AppKey, NetID 000013, AppNonce 123456, DevNonce f18e)
  const auto keys = deriveSessionKeys(*c, key(kAppKeyHex), 0x123456, 0x000013, 0xf18e);
  REQUIRE(keys);
  CHECK(keys->nwkSKey == key("53de6aaa7ed5d63ac36aa6e23f6d87f4"));
  CHECK(keys->appSKey == key("0e269d253419ed2a9687776400b8be35"));

  f.rxDelay = 16;
  CHECK_FALSE(buildJoinAccept(*c, key(kAppKeyHex), f));
}

TEST_CASE("DevAddr allocation: a rejoin keeps its address, else the lowest free one, none when full") {
  const std::vector<std::uint32_t> taken{0x26011000, 0x26011001, 0x26011003};
  CHECK(allocateDevAddr(0x26011000, 0x260110FF, std::nullopt, taken) == 0x26011002U);
  CHECK(allocateDevAddr(0x26011000, 0x260110FF, 0x26011050U, taken) == 0x26011050U);
  CHECK(allocateDevAddr(0x26011000, 0x260110FF, 0x26011001U, taken) == 0x26011002U);  // taken by another
  CHECK(allocateDevAddr(0x26011000, 0x260110FF, 0x27000000U, taken) == 0x26011002U);  // out of the range now
  CHECK_FALSE(allocateDevAddr(0x26011000, 0x26011001, std::nullopt, taken));
  CHECK(allocateDevAddr(0xFFFFFFFF, 0xFFFFFFFF, std::nullopt, {}) == 0xFFFFFFFFU);
}

TEST_CASE(
    "a join-request is answered: join-accept at the dedup window's close, session switched, next uplink accepted") {
  Rig r({otaaDevice("bay")});
  CHECK(r.health(0).last_error() == "not joined yet");
  CHECK_FALSE(r.proc->hasSession(0));
  const auto jr = joinRequest(*r.crypto, 0x0102);
  CHECK_FALSE(r.rx(jr));
  CHECK_FALSE(r.rx(jr));  // a second reception within the TTL: a duplicate, not a replay
  CHECK(r.proc->counters().duplicates == 1);
  CHECK(r.uplinks.empty());
  r.advance(200ms);
  REQUIRE(r.uplinks.size() == 1);
  const AcceptedUplink& up = r.uplinks[0];
  CHECK(up.join);
  CHECK(up.hasTmst);
  CHECK(up.tmst == 1000000);
  CHECK(up.joinGeneration == r.proc->joinGeneration());
  CHECK(r.proc->joinsDirty());
  REQUIRE(up.joinAccept.size() == 33);
  const Decoded d = deviceDecrypts(*r.crypto, up.joinAccept);
  CHECK(d.micOk);
  CHECK(d.netId == 0x13);
  CHECK(d.devAddr == 0x26011000);
  CHECK(d.dlSettings == 0);
  CHECK(d.rxDelay == 1);
  CHECK(toHex(d.cflist) == "184f84e85684b85e84886684586e8400");
  CHECK(d.joinNonce == 1);
  CHECK(r.out.empty());  // a join is no reading
  CHECK(r.proc->counters().joinsAccepted == 1);

  // The device derives its keys from the accept; the gateway holds the same.
  const auto keys = deriveSessionKeys(*r.crypto, key(kAppKeyHex), d.joinNonce, d.netId, 0x0102);
  REQUIRE(keys);
  CHECK(r.proc->device(0).nwkSKey == keys->nwkSKey);
  CHECK(r.proc->device(0).appSKey == keys->appSKey);
  CHECK(r.proc->device(0).devAddr == 0x26011000);
  CHECK(r.health(0).joined());
  CHECK(r.health(0).joins_accepted() == 1);

  CHECK_FALSE(r.rx(r.uplink(0, 0)));  // FCnt 0 after the join
  r.advance(200ms);
  REQUIRE(r.out.size() == 1);
  CHECK(r.addrs[0] == "26011000");  // the reading carries the session's DevAddr
  CHECK(r.out[0].lora->fCnt == 0);
  CHECK_FALSE(r.rx(r.uplink(0, 1)));
  r.advance(200ms);
  CHECK(r.out.size() == 2);

  // A rejoin (new DevNonce): same DevAddr, new keys, counters start again at 0.
  r.advance(1s);
  CHECK_FALSE(r.rx(joinRequest(*r.crypto, 0x0103)));
  r.advance(200ms);
  REQUIRE(r.uplinks.size() >= 3);
  const Decoded d2 = deviceDecrypts(*r.crypto, r.uplinks.back().joinAccept);
  CHECK(d2.devAddr == 0x26011000);
  CHECK(d2.joinNonce == 2);
  CHECK_FALSE(r.rx(r.uplink(0, 0)));
  r.advance(200ms);
  CHECK(r.out.size() == 3);
}

TEST_CASE("every join refusal is counted by its reason, per device where the device is known") {
  Rig r({otaaDevice("bay"), abpDevice("abp", 0x26011000)}, joinSpec(0x26011000, 0x26011000));
  CHECK(r.rx(joinRequest(*r.crypto, 1, 0x1122334455667788ULL)) == Reason::JoinUnknownDevEui);
  CHECK(r.rx(joinRequest(*r.crypto, 1, kDevEui, kAppKeyHex, 0x0102030405060708ULL)) == Reason::JoinEuiMismatch);
  CHECK(r.rx(joinRequest(*r.crypto, 1, kDevEui, kNwkHex)) == Reason::JoinMicFailed);
  // The only address of the range is the ABP device's.
  CHECK(r.rx(joinRequest(*r.crypto, 1)) == Reason::JoinNoDevAddr);
  auto major = joinRequest(*r.crypto, 1);
  major[0] = 0x02;
  CHECK(r.rx(major) == Reason::BadMajor);
  auto shortJoin = joinRequest(*r.crypto, 1);
  shortJoin.pop_back();
  CHECK(r.rx(shortJoin) == Reason::TruncatedFrame);
  CHECK(r.rejected(Reason::JoinUnknownDevEui) == 1);
  CHECK(r.rejected(Reason::JoinEuiMismatch) == 1);
  CHECK(r.rejected(Reason::JoinMicFailed) == 1);
  CHECK(r.rejected(Reason::JoinNoDevAddr) == 1);
  const auto h = r.health(0);
  CHECK(h.frames_rejected().at("join_eui_mismatch") == 1);
  CHECK(h.frames_rejected().at("join_mic_failed") == 1);
  CHECK(h.last_error() == "no free DevAddr in lora.join's range");
  CHECK_FALSE(h.joined());

  // A DevNonce used before.
  Rig q({otaaDevice("bay")});
  CHECK_FALSE(q.rx(joinRequest(*q.crypto, 7)));
  q.advance(1s);
  CHECK(q.rx(joinRequest(*q.crypto, 7)) == Reason::JoinDevNonceReplay);
  CHECK(q.health(0).frames_rejected().at("join_dev_nonce_replay") == 1);
  CHECK(q.proc->counters().joinsAccepted == 1);

  // Without lora.join nothing joins.
  Rig n({otaaDevice("bay")}, std::nullopt);
  CHECK(n.rx(joinRequest(*n.crypto, 1)) == Reason::JoinUnknownDevEui);
}

TEST_CASE("the DevNonce history is bounded: the oldest is forgotten after kMaxDevNonces joins") {
  Rig r({otaaDevice("bay")});
  for (std::uint16_t n = 0; n < kMaxDevNonces + 1; ++n) {
    REQUIRE_FALSE(r.rx(joinRequest(*r.crypto, n)));
    r.advance(1s);
  }
  const OtaaState st = r.proc->joinSnapshot();
  REQUIRE(st.records.size() == 1);
  CHECK(st.records[0].usedNonces.size() == kMaxDevNonces);
  CHECK(st.records[0].usedNonces.front() == 1);
  CHECK(r.rx(joinRequest(*r.crypto, 5)) == Reason::JoinDevNonceReplay);
  CHECK_FALSE(r.rx(joinRequest(*r.crypto, 0)));  // beyond the bound (documented)
}

TEST_CASE("restart: the session and the DevNonces survive the state file, no rejoin needed") {
  std::string text;
  std::vector<std::uint8_t> next;
  {
    Rig r({otaaDevice("bay"), abpDevice("abp", 0x26011F42)});
    REQUIRE_FALSE(r.rx(joinRequest(*r.crypto, 0x0A0B)));
    r.advance(200ms);
    REQUIRE_FALSE(r.rx(r.uplink(0, 0)));
    r.advance(200ms);
    text = encodeOtaaState(r.proc->joinSnapshot());
    next = r.uplink(0, 1);  // what the device sends after the gateway restarted
  }
  CHECK(text.find("device bay 3331383274356905 ") != std::string::npos);
  CHECK(text.find("0A0B") != std::string::npos);
  // No key material in the file: the session is re-derived from the AppKey.
  CHECK(text.find("53de6aaa") == std::string::npos);
  std::string why;
  const auto st = decodeOtaaState(text, &why);
  REQUIRE(st);
  CHECK(st->nextJoinNonce == 2);

  Rig r({otaaDevice("bay"), abpDevice("abp", 0x26011F42)});
  const auto restored = r.proc->restoreJoins(*st);
  CHECK(restored.sessions == 1);
  CHECK(r.proc->hasSession(0));
  CHECK_FALSE(r.rx(next));
  r.advance(200ms);
  CHECK(r.out.size() == 1);
  CHECK(r.rx(joinRequest(*r.crypto, 0x0A0B)) == Reason::JoinDevNonceReplay);
  // The JoinNonce goes on where it was.
  CHECK_FALSE(r.rx(joinRequest(*r.crypto, 0x0A0C)));
  r.advance(200ms);
  REQUIRE_FALSE(r.uplinks.empty());
  CHECK(deviceDecrypts(*r.crypto, r.uplinks.back().joinAccept).joinNonce == 2);

  // A changed AppKey voids the record: the device joins again (with a new history).
  Rig k({otaaDevice("bay", kDevEui, kNwkHex)});
  const auto voided = k.proc->restoreJoins(*st);
  CHECK(voided.sessions == 0);
  CHECK(voided.void_ == 1);
  CHECK_FALSE(k.proc->hasSession(0));
}

TEST_CASE("the OTAA state file: damage of every kind is refused with a reason, never echoing it") {
  OtaaState st;
  st.nextJoinNonce = 7;
  st.records.push_back(OtaaRecord{"bay", kDevEui, 0x12345678, 0x26011000, 6, 0x13, 0xBEEF, {0xBEEF, 0x0001}});
  st.records.push_back(OtaaRecord{"b2", 1, 2, 3, 4, 5, 6, {}});
  const std::string good = encodeOtaaState(st);
  std::string why;
  const auto back = decodeOtaaState(good, &why);
  REQUIRE(back);
  REQUIRE(back->records.size() == 2);
  CHECK(back->records[0].usedNonces == std::vector<std::uint16_t>{0xBEEF, 0x0001});
  CHECK(back->records[0].devNonce == 0xBEEF);
  CHECK(back->records[1].usedNonces.empty());

  CHECK_FALSE(decodeOtaaState(good.substr(0, good.size() - 5), &why));
  CHECK(why.find("truncated") != std::string::npos);
  std::string flipped = good;
  flipped[30] ^= 0x01;
  CHECK_FALSE(decodeOtaaState(flipped, &why));
  CHECK(why == "bad CRC");
  CHECK_FALSE(decodeOtaaState("citygate-lora-fcnt 2\nclean 1\ncrc32 00000000\n", &why));
  CHECK(why == "not a version-1 citygate OTAA state file");
  CHECK_FALSE(decodeOtaaState("", &why));
  CHECK_FALSE(decodeOtaaState(std::string(2 << 20, 'x') + "\n", &why));
  // A bad line with a good CRC (a foreign writer).
  const std::string body = "citygate-lora-otaa 1\njoin_nonce 1\ndevice x 12 34\n";
  CHECK_FALSE(decodeOtaaState(
      body + "crc32 " +
          [&] {
            char b[9];
            std::snprintf(b, sizeof b, "%08X", crc32(body));
            return std::string(b);
          }() +
          "\n",
      &why));
  CHECK(why == "bad line 3");
}

TEST_CASE("a confirmed uplink retransmitted after the dedup TTL is ACKed again, never published twice") {
  Rig r({abpDevice("abp", 0x26011F42)});
  const auto f = r.uplink(0, 5, true);
  CHECK_FALSE(r.rx(f));
  r.advance(200ms);
  REQUIRE(r.uplinks.size() == 1);
  CHECK(r.uplinks[0].confirmed);
  CHECK(r.out.size() == 1);
  r.advance(5s);  // past the TTL: the node did not hear the ACK and sends the frame again
  CHECK(r.rx(f) == Reason::Retransmission);
  CHECK(r.rx(f) == std::nullopt);  // its second reception merges
  r.advance(200ms);
  REQUIRE(r.uplinks.size() == 2);
  CHECK(r.uplinks[1].confirmed);
  CHECK_FALSE(r.uplinks[1].join);
  CHECK(r.out.size() == 1);  // no second reading
  CHECK(r.proc->counters().retransmissionsAcked == 1);
  CHECK(r.rejected(Reason::Retransmission) == 1);

  // An unconfirmed retransmission gets nothing.
  const auto u = r.uplink(0, 6);
  CHECK_FALSE(r.rx(u));
  r.advance(5s);
  CHECK(r.rx(u) == Reason::Retransmission);
  r.advance(1s);
  CHECK(r.uplinks.size() == 3);
}

TEST_CASE("DevStatusAns in FOpts lands in the device's health") {
  Rig r({abpDevice("abp", 0x26011F42)});
  const DeviceSpec& d = r.proc->device(0);
  Uplink u;
  u.devAddr = d.devAddr;
  u.fcnt = 1;
  u.payload = hex("95");
  u.fopts = {0x06, 200, 0x3E};  // battery 200, margin -2 (6-bit signed)
  CHECK_FALSE(r.rx(buildUplink(*r.crypto, u, d.nwkSKey, d.appSKey)));
  r.advance(200ms);
  const auto h = r.health(0);
  CHECK(h.has_dev_status_at());
  CHECK(h.battery() == 200);
  CHECK(h.margin() == -2);
  REQUIRE(r.uplinks.size() == 1);
  CHECK(r.uplinks[0].mac.devStatusAns);
}

TEST_CASE(
    "downlinks: the join-accept goes for RX1 at tmst + 5 s, RX2 at + 6 s, and the session's FCntDown starts at 0") {
  auto c = Crypto::create(nullptr);
  DownlinkDevice dev;
  dev.id = "bay";
  Downlinks d({dev}, {}, *c);
  d.restore({});
  d.markPersisted(d.reservations());
  const SteadyTime t0 = SteadyTime{} + 1000h;
  d.notePull(1);
  AcceptedUplink up;
  up.gatewayEui = 1;
  up.hasTmst = true;
  up.tmst = 1000000;
  up.receivedAt = t0;
  up.frequency = 868.3;
  up.datr = "SF9BW125";
  up.join = true;
  up.joinAccept = hex("20b0b6a0bd85e1720dbf3a977c065f8860");
  auto tx = d.onUplink(up, t0 + 200ms);
  REQUIRE(tx);
  const std::string json(tx->datagram.begin() + 4, tx->datagram.end());
  CHECK(json.find("\"tmst\":6000000,") != std::string::npos);
  CHECK(json.find("\"freq\":868.300000") != std::string::npos);
  CHECK(json.find("\"datr\":\"SF9BW125\"") != std::string::npos);
  CHECK(json.find("\"data\":\"ILC2oL2F4XINvzqXfAZfiGA=\"") != std::string::npos);
  CHECK(d.counters().joinAccepts == 1);
  // RX1 cannot be met any more: RX2 at + 6 s, 869.525 MHz SF12.
  tx = d.onUplink(up, t0 + 4980ms);
  REQUIRE(tx);
  const std::string json2(tx->datagram.begin() + 4, tx->datagram.end());
  CHECK(json2.find("\"tmst\":7000000,") != std::string::npos);
  CHECK(json2.find("\"datr\":\"SF12BW125\"") != std::string::npos);
  CHECK_FALSE(d.onUplink(up, t0 + 6s));
  CHECK(d.counters().dropped[static_cast<std::size_t>(DropReason::TooLate)] == 1);

  // The session: FCntDown from 0, only once its reservation is written; the join's RX settings.
  d.setSession(0, 0x26011000, key(kNwkHex), key(kAppHex), 0x1234, 2s, 1, "SF9BW125");
  CHECK(d.persistWanted());
  AcceptedUplink data = up;
  data.join = false;
  data.confirmed = true;
  data.receivedAt = t0 + 10s;
  CHECK_FALSE(d.onUplink(data, t0 + 10s));  // reservation not written yet
  d.markPersisted(d.reservations());
  CHECK(d.requestDevStatus("bay") == EnqueueResult::Queued);
  CHECK(d.requestDevStatus("nobody") == EnqueueResult::UnknownDevice);
  tx = d.onUplink(data, t0 + 10s);
  REQUIRE(tx);
  const std::string json3(tx->datagram.begin() + 4, tx->datagram.end());
  CHECK(json3.find("\"tmst\":3000000,") != std::string::npos);       // RX1 delay 2 s
  CHECK(json3.find("\"datr\":\"SF10BW125\"") != std::string::npos);  // SF9 uplink, RX1DROffset 1
  CHECK(d.counters().devStatusReq == 1);
  CHECK(d.nextFcntDown(0) == 1);
  // The FOpts carry DevStatusReq after nothing else: FCtrl 0x21 (ACK, FOptsLen 1), CID 0x06.
  const auto b64 = json3.substr(json3.find("\"data\":\"") + 8);
  std::vector<std::uint8_t> phy(64);
  const auto n = decodeBase64(b64.substr(0, b64.find('"')), phy);
  REQUIRE(n);
  CHECK(phy[5] == 0x21);
  CHECK(phy[8] == 0x06);
}

TEST_CASE("EU868 data rates for RX1 offsets and RX2") {
  CHECK(eu868DataRate("SF12BW125") == 0);
  CHECK(eu868DataRate("SF7BW125") == 5);
  CHECK(eu868DataRate("SF7BW250") == 6);
  CHECK_FALSE(eu868DataRate("SF7BW500"));
  CHECK(eu868Datr(0) == "SF12BW125");
  CHECK(eu868Datr(3) == "SF9BW125");
  CHECK(rx1Datr("SF7BW125", 2) == "SF9BW125");
  CHECK(rx1Datr("SF11BW125", 3) == "SF12BW125");
  CHECK(rx1Datr("SF9BW125", 0) == "SF9BW125");
}
