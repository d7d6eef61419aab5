// FrameProcessor: acceptance, dedup, replay, rollover, shared DevAddr, persistence. Time is passed
// in, so windows close without sleeping.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <map>

#include "inputs/lora/codecs/parking.hpp"
#include "inputs/lora/frame_processor.hpp"
#include "lora_test_util.hpp"

using namespace citygate;
using namespace citygate::lora;
using lora_test::buildUplink;
using lora_test::hex;
using lora_test::key;
using lora_test::Uplink;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

const char* kNwkHex = "44024241ed4ce9a68c6a8bc055233fd3";
const char* kAppHex = "ec925802ae430ca77fd3dd73cb2cc588";
constexpr std::uint32_t kAddr = 0x26011F42;

DeviceSpec parkingDevice(const std::string& id, std::uint32_t addr, const char* nwk, const char* app,
                         bool relax = false) {
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = id;
  sensor->kind = pb::PARKING;
  core::PointSpec status;
  status.name = "status";
  status.field = *core::findField(pb::PARKING, "status");
  core::PointSpec temp;
  temp.name = "temperature";
  temp.field = *core::findField(pb::PARKING, "temperature");
  temp.unitCode = "CEL";
  core::PointSpec batt;
  batt.name = "battery_voltage";
  batt.field = *core::findField(pb::PARKING, "battery_voltage");
  batt.unitCode = "VLT";
  sensor->points = {status, temp, batt};
  sensor->source.mutable_lorawan()->set_dev_addr("X");
  core::buildGroups(*sensor);
  DeviceSpec d;
  d.sensor = sensor;
  d.codec = std::make_shared<NwaveNps405Codec>();
  d.devAddr = addr;
  d.nwkSKey = key(nwk);
  d.appSKey = key(app);
  d.relaxFcnt = relax;
  return d;
}

struct Submitted {
  std::string id;
  core::RawSample sample;
};

struct Rig {
  explicit Rig(std::vector<DeviceSpec> devices, ProcessorOptions o = {}) {
    auto log = std::make_shared<spdlog::logger>("lora", std::make_shared<spdlog::sinks::null_sink_mt>());
    proc = std::make_unique<FrameProcessor>(
        std::move(devices), o, Crypto::create(nullptr),
        [this](const core::SensorSpec& s, core::SensorMemory&, core::RawSample&& r) {
          out.push_back(Submitted{s.id, std::move(r)});
        },
        log);
    crypto = Crypto::create(nullptr);
  }
  std::optional<Reason> rx(const std::vector<std::uint8_t>& phy, double rssi = -60, double snr = 7,
                           std::uint64_t eui = 0xAA555A0000000000ULL) {
    RxPacket p;
    p.freq = 868.1;
    p.stat = 1;
    p.datr = "SF7BW125";
    p.rssi = rssi;
    p.lsnr = snr;
    std::copy(phy.begin(), phy.end(), p.data.begin());
    p.size = phy.size();
    return proc->onRxpk(p, eui, now, WallClock::now());
  }
  std::vector<std::uint8_t> frame(std::uint32_t fcnt, std::string_view payload = "95", std::uint8_t port = 1,
                                  const char* nwk = kNwkHex, const char* app = kAppHex, std::uint32_t addr = kAddr) {
    Uplink u;
    u.devAddr = addr;
    u.fcnt = fcnt;
    u.fport = port;
    u.payload = hex(payload);
    return buildUplink(*crypto, u, key(nwk), key(app));
  }
  void advance(std::chrono::milliseconds d) {
    now += d;
    proc->flushDue(now);
  }
  std::uint64_t rejected(Reason r) const { return proc->counters().rejected[static_cast<std::size_t>(r)]; }
  std::map<std::string, std::uint64_t> deviceRejected(std::size_t i) const {
    google::protobuf::RepeatedPtrField<pb::DeviceHealth> h;
    proc->fillHealth(h);
    return {h[static_cast<int>(i)].frames_rejected().begin(), h[static_cast<int>(i)].frames_rejected().end()};
  }
  pb::DeviceHealth health(std::size_t i) const {
    google::protobuf::RepeatedPtrField<pb::DeviceHealth> h;
    proc->fillHealth(h);
    return h[static_cast<int>(i)];
  }

  std::unique_ptr<FrameProcessor> proc;
  std::unique_ptr<Crypto> crypto;
  std::vector<Submitted> out;
  SteadyTime now = SteadyClock::now();
};

}  // namespace

TEST_CASE("an authentic frame becomes one sample after the dedup window, with its LoRa metadata") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  CHECK_FALSE(r.rx(r.frame(0, "95"), -71, 6.5));
  CHECK(r.out.empty());  // waits for other receptions
  r.advance(199ms);
  CHECK(r.out.empty());
  r.advance(1ms);
  REQUIRE(r.out.size() == 1);
  const auto& s = r.out[0].sample;
  CHECK(r.out[0].id == "bay");
  REQUIRE(s.lora);
  CHECK(s.lora->fCnt == 0);
  CHECK(s.lora->fPort == 1);
  CHECK(s.lora->rssi == -71);
  CHECK(s.lora->snr == 6.5);
  CHECK(s.lora->frequency == doctest::Approx(868.1));
  CHECK(s.lora->dataRate == "SF7BW125");
  CHECK(s.lora->gatewayEui == "AA555A0000000000");
  CHECK(s.lora->receptions == 1);
  REQUIRE(s.values.size() == 3);
  CHECK(s.values[kParkingStatus].state == core::RawValue::State::Ok);
  CHECK(s.values[kParkingStatus].value == 1);
  CHECK(s.values[kParkingTemperature].state == core::RawValue::State::Skip);
  CHECK(r.proc->counters().framesAccepted == 1);
  CHECK(r.health(0).state() == pb::OK);
  CHECK(r.health(0).frames_accepted() == 1);
}

TEST_CASE("the same frame heard several times within the window is one reading with the best signal") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  const auto f = r.frame(5);
  CHECK_FALSE(r.rx(f, -90, 1, 1));
  r.advance(50ms);
  CHECK_FALSE(r.rx(f, -60, 8, 2));
  r.advance(50ms);
  CHECK_FALSE(r.rx(f, -75, 9, 3));
  r.advance(150ms);
  REQUIRE(r.out.size() == 1);
  CHECK(r.out[0].sample.lora->receptions == 3);
  CHECK(r.out[0].sample.lora->rssi == -60);
  CHECK(r.out[0].sample.lora->snr == 8);
  CHECK(r.out[0].sample.lora->gatewayEui == "0000000000000002");
  CHECK(r.proc->counters().duplicates == 2);
  CHECK(r.proc->counters().framesAccepted == 1);
  // A late copy inside the TTL is still a duplicate; after it, the same bytes are a retransmission.
  r.advance(100ms);
  CHECK_FALSE(r.rx(f));
  CHECK(r.proc->counters().duplicates == 3);
  r.advance(500ms);
  CHECK(r.rx(f) == Reason::Retransmission);
  r.advance(500ms);
  CHECK(r.out.size() == 1);
  CHECK(r.deviceRejected(0).at("retransmission") == 1);
}

TEST_CASE("replayed and older counters are rejected, never a second reading") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  const auto f10 = r.frame(10, "95");
  const auto f11 = r.frame(11, "15");
  CHECK_FALSE(r.rx(f10));
  CHECK_FALSE(r.rx(f11));
  r.advance(1s);
  CHECK(r.out.size() == 2);
  CHECK(r.rx(f10) == Reason::Replay);                // older
  CHECK(r.rx(r.frame(11, "80")) == Reason::Replay);  // same counter, other content
  CHECK(r.rx(f11) == Reason::Retransmission);        // the last frame again
  CHECK(r.rx(r.frame(3)) == Reason::Replay);
  r.advance(1s);
  CHECK(r.out.size() == 2);
  CHECK(r.rejected(Reason::Replay) == 3);
  const auto dev = r.deviceRejected(0);
  CHECK(dev.at("replay") == 3);
  CHECK(dev.at("retransmission") == 1);
  CHECK_FALSE(r.rx(r.frame(12)));  // the device itself goes on
}

TEST_CASE("tampered MIC, wrong key, unknown DevAddr, truncated frames, join requests") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  auto f = r.frame(1);
  f.back() ^= 0x01;
  CHECK(r.rx(f) == Reason::MicFailed);
  f = r.frame(1);
  f[10] ^= 0x80;  // a ciphertext bit: the MIC covers it
  CHECK(r.rx(f) == Reason::MicFailed);
  CHECK(r.rx(r.frame(1, "95", 1, "2b7e151628aed2a6abf7158809cf4f3c")) == Reason::MicFailed);  // wrong NwkSKey
  CHECK(r.rx(r.frame(1, "95", 1, kNwkHex, kAppHex, 0x26011F99)) == Reason::UnknownDevAddr);
  CHECK(r.rx(hex("40421F0126000100")) == Reason::TruncatedFrame);
  CHECK(r.rx(hex("0039363463336913AA05693574323831330489C65B1304")) == Reason::JoinUnknownDevEui);  // no OTAA device
  CHECK(r.rx({}) == Reason::TruncatedFrame);
  r.advance(1s);
  CHECK(r.out.empty());
  CHECK(r.rejected(Reason::MicFailed) == 3);
  CHECK(r.deviceRejected(0).at("mic_failed") == 3);
  CHECK(r.health(0).state() == pb::DOWN);  // nothing authentic yet
  // Said, not contradicted: the MIC failures stand in for "no frame received yet".
  CHECK(r.health(0).last_error() == "frames fail the MIC check (wrong NwkSKey?)");
  CHECK(r.health(0).last_rejected_reason() == "mic_failed");
  CHECK(r.health(0).has_last_rejected_at());
  // The unknown DevAddr is remembered (heard, not configured); the configured one is not.
  REQUIRE(r.proc->heard().size() == 1);
  CHECK(r.proc->heard().entries()[0].devAddr == 0x26011F99);
  // A wrong AppSKey passes the MIC (the network key is right) and decodes to garbage, which the
  // codec takes or refuses: it is authentic traffic, counted as accepted.
  CHECK_FALSE(r.rx(r.frame(2, "95", 1, kNwkHex, "000102030405060708090a0b0c0d0e0f")));
  CHECK(r.health(0).last_error() != "frames fail the MIC check (wrong NwkSKey?)");  // a frame was accepted
}

TEST_CASE("a first frame without payload (FPort 0) ends \"no frame received yet\"") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  CHECK(r.health(0).last_error() == "no frame received yet");
  Uplink u;
  u.devAddr = kAddr;
  u.fcnt = 1;
  u.fport = 0;
  u.payload = hex("02");  // a LinkCheckReq on FPort 0
  CHECK_FALSE(r.rx(buildUplink(*r.crypto, u, key(kNwkHex), key(kNwkHex))));
  CHECK(r.health(0).last_error().empty());
  CHECK(r.health(0).state() == pb::OK);
}

TEST_CASE("unknown DevAddrs go to the heard table with their signal, the table stays bounded") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  for (int i = 0; i < 3; ++i) {
    CHECK(r.rx(r.frame(7 + static_cast<std::uint32_t>(i), "95", 1, kNwkHex, kAppHex, 0x26011FAA), -90 - i, -3.5) ==
          Reason::UnknownDevAddr);
  }
  CHECK(r.rx(r.frame(1, "95", 1, kNwkHex, kAppHex, 0x26011FBB), -101, 2) == Reason::UnknownDevAddr);
  const auto& t = r.proc->heard();
  REQUIRE(t.size() == 2);
  const auto sorted = t.sorted();
  CHECK(sorted[0].devAddr == 0x26011FBB);  // most recent first
  CHECK(sorted[1].devAddr == 0x26011FAA);
  CHECK(sorted[1].frames == 3);
  CHECK(sorted[1].lastRssi == -92);
  CHECK(sorted[1].lastSnr == -3.5);
  CHECK(sorted[1].lastFcnt16 == 9);
  CHECK(sorted[1].dataRateText() == "SF7BW125");
  CHECK(sorted[1].frequency == 868.1);
  CHECK(sorted[1].gatewayEui == 0xAA555A0000000000ULL);
  CHECK(r.rejected(Reason::UnknownDevAddr) == 4);
  // A flood of DevAddrs: never more than the capacity, every replacement counted.
  for (std::uint32_t a = 0; a < 1000; ++a) {
    CHECK(r.rx(r.frame(1, "95", 1, kNwkHex, kAppHex, 0x01000000 + a)) == Reason::UnknownDevAddr);
  }
  CHECK(t.size() == HeardTable::kDefaultCapacity);
  CHECK(t.evicted() == 1000 + 2 - HeardTable::kDefaultCapacity);
}

TEST_CASE("a counter crossing 65535 -> 65536 keeps being accepted (frames from lora-packet)") {
  Rig r({parkingDevice("parking-bay-0042", kAddr, kNwkHex, kAppHex)});
  int accepted = 0;
  for (const auto& pf : lora_test::peerFrames()) {
    if (pf.id != "parking-bay-0042" || pf.fcnt < 65534) continue;
    INFO("fcnt ", pf.fcnt);
    CHECK_FALSE(r.rx(pf.phy));
    r.advance(300ms);
    REQUIRE(!r.out.empty());
    CHECK(r.out.back().sample.lora->fCnt == pf.fcnt);
    ++accepted;
  }
  CHECK(accepted == 4);  // 65534, 65535, 65536, 65537
  CHECK(r.health(0).last_f_cnt() == 65537);
  // The frame with counter 65535 replayed after the rollover: rejected.
  for (const auto& pf : lora_test::peerFrames()) {
    if (pf.id == "parking-bay-0042" && pf.fcnt == 65535) CHECK(r.rx(pf.phy) == Reason::Replay);
  }
}

TEST_CASE("a first frame above 65535 after lost frames, and gaps beyond max_fcnt_gap") {
  ProcessorOptions o;
  o.maxFcntGap = 100;
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
  CHECK_FALSE(r.rx(r.frame(65500)));
  CHECK_FALSE(r.rx(r.frame(65560)));  // lost frames, crosses the boundary: gap 59
  CHECK(r.rx(r.frame(65700)) == Reason::FcntGap);
  CHECK_FALSE(r.rx(r.frame(65661)));  // gap 100: still fine
  r.advance(1s);
  CHECK(r.out.size() == 3);
  CHECK(r.deviceRejected(0).at("fcnt_gap") == 1);
}

TEST_CASE("several devices sharing a DevAddr are told apart by their MIC") {
  const char* nwkB = "2b7e151628aed2a6abf7158809cf4f3c";
  const char* appB = "000102030405060708090a0b0c0d0e0f";
  Rig r({parkingDevice("a", kAddr, kNwkHex, kAppHex), parkingDevice("b", kAddr, nwkB, appB)});
  CHECK_FALSE(r.rx(r.frame(7, "95")));
  CHECK_FALSE(r.rx(r.frame(3, "15", 1, nwkB, appB)));
  r.advance(1s);
  REQUIRE(r.out.size() == 2);
  CHECK(r.out[0].id == "a");
  CHECK(r.out[0].sample.values[kParkingStatus].value == 1);
  CHECK(r.out[1].id == "b");
  CHECK(r.out[1].sample.values[kParkingStatus].value == 0);
  // A replay of b's frame is blamed on b; a MIC that fits neither is counted globally only.
  CHECK(r.rx(r.frame(3, "15", 1, nwkB, appB)) == Reason::Retransmission);
  CHECK(r.deviceRejected(1).at("retransmission") == 1);
  CHECK(r.deviceRejected(0).empty());
  CHECK(r.rx(r.frame(9, "15", 1, "e1e2e3e4e5e6e7e8e9eaebecedeeeff0")) == Reason::MicFailed);
  CHECK(r.deviceRejected(0).empty());
  CHECK(r.deviceRejected(1).size() == 1);
}

TEST_CASE("FPort 0, no port, unknown ports and malformed payloads advance the counter without a reading") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  CHECK_FALSE(r.rx(r.frame(1, "0203", 0)));  // MAC commands, encrypted with the NwkSKey
  CHECK(r.rx(r.frame(2, "95", 7)) == Reason::UnknownPort);
  CHECK(r.rx(r.frame(3, "00", 2)) == Reason::CodecError);  // a heartbeat needs 3 bytes
  r.advance(1s);
  CHECK(r.out.empty());
  CHECK(r.proc->counters().framesAccepted == 3);
  CHECK(r.health(0).state() == pb::DEGRADED);
  CHECK(r.health(0).last_error() == "heartbeat needs 3 bytes");
  CHECK(r.rx(r.frame(3, "00", 2)) == Reason::Retransmission);
  CHECK_FALSE(r.rx(r.frame(4, "80D3D8", 2)));
  r.advance(1s);
  CHECK(r.out.size() == 1);
  CHECK(r.health(0).state() == pb::OK);
}

TEST_CASE("restart: a clean stop resumes exactly, an unclean one with the margin, replays stay out") {
  ProcessorOptions o;
  o.resumeMargin = 16;
  FcntState saved;
  std::vector<std::uint8_t> f20;
  std::vector<std::uint8_t> f21;
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    f20 = r.frame(20);
    f21 = r.frame(21);
    CHECK(r.proc->urgentPersist() == false);
    CHECK_FALSE(r.rx(f20));
    CHECK(r.proc->urgentPersist());  // a first counter: write before anything else
    r.proc->markPersisted(r.proc->snapshot(false));
    CHECK_FALSE(r.proc->urgentPersist());
    CHECK_FALSE(r.rx(f21));
    CHECK(r.proc->dirty());
    CHECK_FALSE(r.proc->urgentPersist());  // 1 ahead of the file, within the margin
    saved = r.proc->snapshot(true);
  }
  REQUIRE(saved.records.size() == 1);
  CHECK(saved.records[0].lastFcnt == 21);
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    r.proc->restore(&saved, nullptr);
    CHECK(r.proc->urgentPersist());  // rewritten at once as unclean
    CHECK(r.rx(f21) == Reason::Replay);
    CHECK(r.rx(f20) == Reason::Replay);
    CHECK_FALSE(r.rx(r.frame(22)));
  }
  saved.clean = false;
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    r.proc->restore(&saved, nullptr);
    CHECK(r.health(0).last_f_cnt() == 21);  // the last accepted; the floor is 21 + 16
    // At or below the last accepted counter: a replay. Above it, within the margin: the margin's
    // cost (may have been accepted after the last write), labelled as such, not as an attack.
    CHECK(r.rx(f21) == Reason::Replay);
    CHECK(r.rx(r.frame(30)) == Reason::FcntBelowResumeMargin);
    CHECK(r.rx(r.frame(37)) == Reason::FcntBelowResumeMargin);  // the floor itself
    CHECK(r.rejected(Reason::Replay) == 1);
    CHECK(r.rejected(Reason::FcntBelowResumeMargin) == 2);
    const auto h = r.health(0);
    CHECK(h.f_cnt_floor() == 37);
    CHECK(h.frames_rejected().at("fcnt_below_resume_margin") == 2);
    CHECK(h.last_rejected_reason() == "fcnt_below_resume_margin");
    CHECK(h.has_last_rejected_at());
    // Not "no frame received yet" next to those counts: the label of the last rejection.
    CHECK(h.last_error() == reasonLabel(Reason::FcntBelowResumeMargin));
    CHECK(h.state() == pb::DOWN);
    CHECK_FALSE(r.rx(r.frame(38)));
    CHECK(r.health(0).f_cnt_floor() == 38);
    CHECK(r.health(0).last_error().empty());
  }
  {
    // Re-keyed device: the stored counter does not apply.
    Rig r({parkingDevice("bay", kAddr, "2b7e151628aed2a6abf7158809cf4f3c", kAppHex)}, o);
    r.proc->restore(&saved, nullptr);
    CHECK_FALSE(r.rx(r.frame(0, "95", 1, "2b7e151628aed2a6abf7158809cf4f3c")));
  }
}

TEST_CASE("the margin invariant: a counter never runs more than the margin ahead of the file") {
  ProcessorOptions o;
  o.resumeMargin = 4;
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
  CHECK_FALSE(r.rx(r.frame(0)));
  r.proc->markPersisted(r.proc->snapshot(false));
  for (std::uint32_t f = 1; f <= 4; ++f) {
    CHECK_FALSE(r.rx(r.frame(f)));
    CHECK_FALSE(r.proc->urgentPersist());
  }
  CHECK_FALSE(r.rx(r.frame(5)));
  CHECK(r.proc->urgentPersist());
  r.proc->markPersisted(r.proc->snapshot(false));
  CHECK_FALSE(r.rx(r.frame(100)));  // a jump: urgent at once
  CHECK(r.proc->urgentPersist());
}

namespace {
FcntState storageOf(bool clean, std::uint32_t last, std::uint32_t floor, std::uint32_t kcv) {
  FcntState st;
  st.clean = clean;
  st.records.push_back(FcntRecord{"bay", kAddr, kcv, last, floor});
  return st;
}
FcntRam ramOf(std::uint32_t last, std::uint32_t floor, std::uint32_t kcv) {
  FcntRam ram;
  ram.records.push_back(FcntRecord{"bay", kAddr, kcv, last, floor});
  return ram;
}
std::uint32_t kcvOf(const char* nwk) {
  return Crypto::create(nullptr)->keyCheckValue(key(nwk)).value_or(0);
}
}  // namespace

TEST_CASE("restore: a RAM copy of this boot is exact, even with an unclean storage copy behind it") {
  const auto kcv = kcvOf(kNwkHex);
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  const FcntState storage = storageOf(false, 20, 20, kcv);
  const FcntRam ram = ramOf(25, 25, kcv);
  const auto got = r.proc->restore(&storage, &ram);
  CHECK(got.exactFromRam == 1);
  CHECK(got.withMargin == 0);
  CHECK(r.rx(r.frame(25)) == Reason::Replay);  // the last accepted one stays out
  CHECK_FALSE(r.rx(r.frame(26)));              // the very next real frame is in (no margin)
  CHECK(r.health(0).last_f_cnt() == 26);
}

TEST_CASE("restore: no RAM copy of this boot (power cut) -> storage + margin, once") {
  const auto kcv = kcvOf(kNwkHex);
  ProcessorOptions o;
  o.resumeMargin = 16;
  FcntState storage = storageOf(false, 20, 20, kcv);
  FcntState written;
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    const auto got = r.proc->restore(&storage, nullptr);
    CHECK(got.withMargin == 1);
    CHECK(r.rx(r.frame(36)) == Reason::FcntBelowResumeMargin);  // may have been accepted before the cut
    written = r.proc->snapshot(false);                          // the start-up write
    REQUIRE(written.records.size() == 1);
    CHECK(written.records[0].lastFcnt == 20);  // last and floor kept apart
    CHECK(written.records[0].floorFcnt == 36);
    const auto slot = r.proc->slotView(0);  // what the RAM copy holds
    CHECK(slot.lastFcnt == 20);
    CHECK(slot.floorFcnt == 36);
  }
  // Another power cut (or kill -9 without RAM copy) before the device sent a frame: the floor is
  // not raised again (today's file said 36, then 52, 68, ...).
  for (int restart = 0; restart < 5; ++restart) {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    r.proc->restore(&written, nullptr);
    written = r.proc->snapshot(false);
    CHECK(written.records[0].floorFcnt == 36);
  }
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    r.proc->restore(&written, nullptr);
    CHECK(r.rx(r.frame(36)) == Reason::FcntBelowResumeMargin);
    CHECK_FALSE(r.rx(r.frame(37)));
    CHECK(r.proc->urgentPersist());  // 17 ahead of the durable last: written before its reading
  }
  {
    // The same through the RAM copy: a kill -9 after a power-cut restart keeps the floor exactly.
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    const FcntRam ram = ramOf(20, 36, kcv);
    r.proc->restore(&written, &ram);
    CHECK(r.rx(r.frame(36)) == Reason::FcntBelowResumeMargin);
    CHECK_FALSE(r.rx(r.frame(37)));
  }
}

TEST_CASE("restore: a clean storage copy is exact, a stale or re-keyed RAM slot falls back to storage") {
  const auto kcv = kcvOf(kNwkHex);
  ProcessorOptions o;
  o.resumeMargin = 16;
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    const FcntState clean = storageOf(true, 20, 20, kcv);
    CHECK(r.proc->restore(&clean, nullptr).exactFromStorage == 1);
    CHECK(r.rx(r.frame(20)) == Reason::Replay);
    CHECK_FALSE(r.rx(r.frame(21)));
  }
  {
    // The RAM slot is older than the storage copy (its writes failed while the storage's went on).
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    const FcntState storage = storageOf(false, 30, 30, kcv);
    const FcntRam ram = ramOf(25, 25, kcv);
    const auto got = r.proc->restore(&storage, &ram);
    CHECK(got.exactFromRam == 0);
    CHECK(got.withMargin == 1);
    CHECK(r.rx(r.frame(46)) == Reason::FcntBelowResumeMargin);
    CHECK_FALSE(r.rx(r.frame(47)));
  }
  {
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    const FcntState storage = storageOf(false, 30, 30, kcv);
    const FcntRam ram = ramOf(35, 35, kcv ^ 1);  // another key
    CHECK(r.proc->restore(&storage, &ram).withMargin == 1);
    CHECK(r.rx(r.frame(46)) == Reason::FcntBelowResumeMargin);
  }
  {
    // Only a RAM copy (the storage copy was set aside as corrupt): exact.
    Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
    const FcntRam ram = ramOf(35, 35, kcv);
    CHECK(r.proc->restore(nullptr, &ram).exactFromRam == 1);
    CHECK(r.rx(r.frame(35)) == Reason::Replay);
    CHECK_FALSE(r.rx(r.frame(36)));
    CHECK(r.proc->urgentPersist());  // the storage copy does not know the device
  }
}

TEST_CASE("the RAM hook runs on every accepted frame, before that frame's reading is submitted") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  std::vector<std::pair<std::uint32_t, std::size_t>> hooked;  // (counter, readings submitted then)
  r.proc->setCounterHook([&](std::size_t i) { hooked.emplace_back(r.proc->slotView(i).lastFcnt, r.out.size()); });
  CHECK_FALSE(r.rx(r.frame(5)));
  CHECK(r.rx(r.frame(5)).has_value() == false);  // a duplicate: no second hook
  CHECK_FALSE(r.rx(r.frame(6)));
  CHECK(r.rx(r.frame(4)) == Reason::Replay);
  r.advance(1s);
  CHECK(r.out.size() == 2);
  REQUIRE(hooked.size() == 2);
  CHECK(hooked[0] == std::make_pair(5U, std::size_t{0}));
  CHECK(hooked[1] == std::make_pair(6U, std::size_t{0}));
}

TEST_CASE("relax_fcnt accepts a device that restarted at 0 (and is counted)") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex, true)});
  CHECK_FALSE(r.rx(r.frame(500)));
  CHECK_FALSE(r.rx(r.frame(0)));
  CHECK(r.proc->counters().fcntResets == 1);
  CHECK_FALSE(r.rx(r.frame(1)));
  r.advance(1s);
  CHECK(r.out.size() == 3);
  Rig strict({parkingDevice("bay", kAddr, kNwkHex, kAppHex, false)});
  CHECK_FALSE(strict.rx(strict.frame(500)));
  CHECK(strict.rx(strict.frame(0)) == Reason::Replay);
}

TEST_CASE("the dedup cache is bounded: when full, the oldest frame is published early, never lost") {
  ProcessorOptions o;
  o.maxPending = 8;
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)}, o);
  for (std::uint32_t f = 0; f < 20; ++f) CHECK_FALSE(r.rx(r.frame(f)));
  CHECK(r.proc->pendingFrames() <= 8);
  CHECK(r.out.size() == 12);
  CHECK(r.proc->counters().evicted == 12);
  r.advance(1s);
  CHECK(r.out.size() == 20);
  for (std::size_t i = 0; i < r.out.size(); ++i) CHECK(r.out[i].sample.lora->fCnt == i);
  r.advance(1s);
  CHECK(r.proc->pendingFrames() == 0);
  CHECK_FALSE(r.proc->nextDeadline());
}

TEST_CASE("flushAll publishes frames still inside their window (stop)") {
  Rig r({parkingDevice("bay", kAddr, kNwkHex, kAppHex)});
  CHECK_FALSE(r.rx(r.frame(1)));
  CHECK_FALSE(r.rx(r.frame(2)));
  REQUIRE(r.proc->nextDeadline());
  r.proc->flushAll();
  CHECK(r.out.size() == 2);
}
