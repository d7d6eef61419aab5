// LoraSource on a real io_context with real UDP datagrams on loopback: ACKs, stat, readings after
// the dedup window, the state file across a restart, junk floods, a taken port. Its timers (the
// dedup window's flush, the periodic save) run on a manual clock: runUntil() handles every datagram
// that has come in before it moves the clock to the next timer.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/seq_store.hpp"
#include "inputs/lora/base64.hpp"
#include "inputs/lora/codecs/parking.hpp"
#include "inputs/lora/source.hpp"
#include "lora_test_util.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace citygate::lora;
using lora_test::hex;
using lora_test::key;
namespace asio = boost::asio;
using asio::ip::udp;
namespace pb = citygate::v1;
using namespace std::chrono_literals;

namespace {

const char* kNwkHex = "44024241ed4ce9a68c6a8bc055233fd3";
const char* kAppHex = "ec925802ae430ca77fd3dd73cb2cc588";
constexpr std::uint32_t kAddr = 0x26011F42;

LoraSpec spec(const std::string& stateDir, const std::string& runtimeDir = "") {
  LoraSpec s;
  s.runtimeDir = runtimeDir;
  s.bind = "127.0.0.1";
  s.port = 0;
  s.dedupWindow = 50ms;
  s.statePath = stateDir.empty() ? "" : stateDir + "/lora-fcnt.state";
  auto sensor = std::make_shared<core::SensorSpec>();
  sensor->id = "bay";
  sensor->kind = pb::PARKING;
  for (const char* f : {"status", "temperature", "battery_voltage"}) {
    core::PointSpec p;
    p.name = f;
    p.field = *core::findField(pb::PARKING, f);
    sensor->points.push_back(p);
  }
  core::buildGroups(*sensor);
  DeviceSpec d;
  d.sensor = sensor;
  d.codec = std::make_shared<NwaveNps405Codec>();
  d.devAddr = kAddr;
  d.nwkSKey = key(kNwkHex);
  d.appSKey = key(kAppHex);
  s.devices.push_back(d);
  return s;
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/citygate-lora-src-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// The gateway side on its own io_context; the test plays the concentrator with a plain socket.
struct Rig {
  explicit Rig(const std::string& stateDir, core::FileWriter::WriteFn stateWrite = {},
               const std::string& runtimeDir = "", const std::string& bootId = "",
               const std::function<void(LoraSpec&)>& tweak = {})
      : client(ioc) {
    auto log = std::make_shared<spdlog::logger>("lora", std::make_shared<spdlog::sinks::null_sink_mt>());
    LoraSpec sp = spec(stateDir, runtimeDir);
    if (tweak) tweak(sp);
    source = std::make_shared<LoraSource>(
        ioc.get_executor(), clock, std::move(sp),
        [this](const core::SensorSpec&, core::SensorMemory&, core::RawSample&& s) { samples.push_back(std::move(s)); },
        log);
    if (!bootId.empty()) source->setBootId(bootId);
    if (stateWrite) source->setStateWrite(std::move(stateWrite));
    started = source->start();
    client.open(udp::v4());
    client.non_blocking(true);
    server = udp::endpoint(asio::ip::make_address("127.0.0.1"), source->localPort());
  }
  ~Rig() {
    source->stop();
    clock.dropHandlers();  // they hold the source (its socket), which must go before the io_context
  }

  void send(const std::vector<std::uint8_t>& d) { client.send_to(asio::buffer(d), server); }

  // Runs the executor until `done` or the (real) deadline; true when done. What has come in is
  // handled first; only then does the clock move, to the next timer's time.
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds deadline = 3000ms) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      ioc.restart();
      if (ioc.poll() > 0) continue;
      if (const auto due = clock.nextDue()) {
        clock.advance(*due - clock.steadyNow(), [this] {
          ioc.restart();
          ioc.poll();
        });
        continue;
      }
      ioc.restart();
      ioc.run_one_for(5ms);  // a datagram on its way (the event), with a bound
    }
    return true;
  }

  std::vector<std::vector<std::uint8_t>> replies() {
    std::vector<std::vector<std::uint8_t>> out;
    for (;;) {
      std::array<std::uint8_t, 1024> buf{};
      udp::endpoint from;
      boost::system::error_code ec;
      const auto n = client.receive_from(asio::buffer(buf), from, 0, ec);
      if (ec) break;
      out.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    return out;
  }

  pb::GatewayHealth health() const {
    pb::GatewayHealth h;
    source->fillHealth(h);
    return h;
  }
  std::uint64_t rejected(const std::string& reason) const {
    const auto h = health();
    const auto it = h.lora().rejected().find(reason);
    return it == h.lora().rejected().end() ? 0 : it->second;
  }

  testing::ManualClock clock;  // outlives the io_context (the source's timers)
  asio::io_context ioc;
  std::shared_ptr<LoraSource> source;
  Status started = Ok{};
  udp::socket client;
  udp::endpoint server;
  std::vector<core::RawSample> samples;
};

std::vector<std::uint8_t> pushData(std::uint16_t token, const std::vector<std::uint8_t>& phy, int stat = 1,
                                   const std::string& extra = "") {
  std::vector<std::uint8_t> d{
      2, static_cast<std::uint8_t>(token >> 8), static_cast<std::uint8_t>(token), 0, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0};
  const std::string json = R"({"rxpk":[{"tmst":1,"chan":0,"rfch":0,"freq":868.3,"stat":)" + std::to_string(stat) +
                           R"(,"modu":"LORA","datr":"SF9BW125","codr":"4/5","rssi":-80,"lsnr":4.5,"size":)" +
                           std::to_string(phy.size()) + R"(,"data":")" + encodeBase64(phy) + "\"}]" + extra + "}";
  d.insert(d.end(), json.begin(), json.end());
  return d;
}

std::vector<std::uint8_t> frame(std::uint32_t fcnt, std::string_view payload = "95") {
  auto c = Crypto::create(nullptr);
  lora_test::Uplink u;
  u.devAddr = kAddr;
  u.fcnt = fcnt;
  u.payload = hex(payload);
  return lora_test::buildUplink(*c, u, key(kNwkHex), key(kAppHex));
}

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("PUSH_DATA is acknowledged with its token, PULL_DATA too, the frame becomes a sample") {
  TempDir t;
  Rig r(t.path);
  REQUIRE_MESSAGE(r.started.ok(), r.started.error());
  r.send(pushData(0x1234, frame(1)));
  std::vector<std::vector<std::uint8_t>> acks;
  REQUIRE(r.runUntil([&] {
    for (auto& a : r.replies()) acks.push_back(a);
    return !acks.empty() && !r.samples.empty();
  }));
  CHECK(acks[0] == std::vector<std::uint8_t>{2, 0x12, 0x34, 1});
  REQUIRE(r.samples.size() == 1);
  CHECK(r.samples[0].lora->fCnt == 1);
  CHECK(r.samples[0].lora->dataRate == "SF9BW125");
  CHECK(r.samples[0].lora->gatewayEui == "AA555A0000000000");

  r.send({1, 0xBE, 0xEF, 2, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0});
  acks.clear();
  REQUIRE(r.runUntil([&] {
    for (auto& a : r.replies()) acks.push_back(a);
    return !acks.empty();
  }));
  CHECK(acks[0] == std::vector<std::uint8_t>{1, 0xBE, 0xEF, 4});
  const auto h = r.health();
  REQUIRE(h.lora().concentrators_size() == 1);
  CHECK(h.lora().concentrators(0).gateway_eui() == "AA555A0000000000");
  CHECK(h.lora().concentrators(0).push_data() == 1);
  CHECK(h.lora().concentrators(0).pull_data() == 1);
  CHECK(h.lora().concentrators(0).protocol_version() == 1);
  CHECK(h.lora().frames_accepted() == 1);
  CHECK(h.lora().readings() == 1);
  REQUIRE(h.devices_size() == 1);
  CHECK(h.devices(0).last_f_cnt() == 1);
  CHECK(h.devices(0).last_rssi() == -80);
}

TEST_CASE("a frame becomes a sample when its dedup window (50 ms) ends, not before") {
  TempDir t;
  Rig r(t.path);
  REQUIRE_MESSAGE(r.started.ok(), r.started.error());
  r.send(pushData(1, frame(1)));
  REQUIRE(r.runUntil([&] { return r.health().lora().datagrams() == 1; }));
  auto poll = [&r] {
    r.ioc.restart();
    r.ioc.poll();
  };
  CHECK(r.samples.empty());
  r.clock.advance(49ms, poll);
  CHECK(r.samples.empty());
  r.clock.advance(1ms, poll);
  // Due now; a new device's first frame goes out once its counter is on disk (the state file's
  // writer thread posts that back), so wait for that event, not for time.
  CHECK(r.runUntil([&] { return r.samples.size() == 1; }));
}

TEST_CASE("stat reports are kept per concentrator") {
  TempDir t;
  Rig r(t.path);
  REQUIRE(r.started.ok());
  std::vector<std::uint8_t> d{2, 0, 7, 0, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 9};
  const std::string json =
      R"({"stat":{"time":"2014-01-12 08:59:28 GMT","lati":46.24,"long":3.2523,"alti":145,"rxnb":12,"rxok":10,"rxfw":9,"ackr":50.0,"dwnb":1,"txnb":1,"temp":31.5}})";
  d.insert(d.end(), json.begin(), json.end());
  r.send(d);
  REQUIRE(r.runUntil([&] { return r.health().lora().concentrators_size() == 1; }));
  const auto c = r.health().lora().concentrators(0);
  CHECK(c.gateway_eui() == "AA555A0000000009");
  CHECK(c.rxnb() == 12);
  CHECK(c.rxok() == 10);
  CHECK(c.rxfw() == 9);
  CHECK(c.ackr() == 50.0);
  CHECK(c.temperature() == 31.5);
  CHECK(c.has_last_stat_at());
}

TEST_CASE("junk of every kind is ACKed where due, rejected by reason, and valid frames still arrive") {
  TempDir t;
  Rig r(t.path);
  REQUIRE(r.started.ok());
  auto tampered = frame(2);
  tampered.back() ^= 1;
  std::vector<std::uint8_t> badB64{2, 0, 1, 0, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0};
  const std::string j =
      R"({"rxpk":[{"stat":1,"modu":"LORA","datr":"SF7BW125","freq":868.1,"rssi":-1,"lsnr":1,"size":3,"data":"QP-x"}]})";
  badB64.insert(badB64.end(), j.begin(), j.end());
  std::vector<std::uint8_t> badJson{2, 0, 1, 0, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0, '{', '"', 'r'};
  const int rounds = 200;
  for (int i = 0; i < rounds; ++i) {
    r.send({0xFF, 1, 2});
    r.send(badJson);
    r.send(badB64);
    r.send(pushData(static_cast<std::uint16_t>(i), tampered));
    r.send(pushData(static_cast<std::uint16_t>(i), frame(5), -1));
    r.send(pushData(static_cast<std::uint16_t>(i), hex("40421F01260001")));
    if (i % 50 == 0) r.send(pushData(static_cast<std::uint16_t>(i), frame(10 + static_cast<std::uint32_t>(i))));
    if (i % 20 == 0) r.runUntil([] { return true; }, 1ms);
  }
  REQUIRE(r.runUntil([&] { return r.health().lora().datagrams() == rounds * 6 + 4 && r.samples.size() == 4; }));
  CHECK(r.rejected("datagram_too_short") == rounds);
  CHECK(r.rejected("bad_json") == rounds);
  CHECK(r.rejected("bad_base64") == rounds);
  CHECK(r.rejected("mic_failed") == rounds);
  CHECK(r.rejected("crc_failed") == rounds);
  CHECK(r.rejected("truncated_frame") == rounds);
  CHECK(r.health().devices(0).frames_rejected().at("mic_failed") == rounds);
  for (std::size_t i = 0; i < 4; ++i) CHECK(r.samples[i].lora->fCnt == 10 + 50 * i);
}

TEST_CASE("the state file: written at stop (clean), read at start, and replays stay rejected") {
  TempDir t;
  const auto f7 = frame(7);
  {
    Rig r(t.path);
    REQUIRE(r.started.ok());
    CHECK(slurp(t.path + "/lora-fcnt.state").find("clean 0") != std::string::npos);
    r.send(pushData(1, f7));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1; }));
    // The first counter of a device is written before its reading goes out.
    CHECK(slurp(t.path + "/lora-fcnt.state").find(" 7 7\n") != std::string::npos);
  }
  const std::string stopped = slurp(t.path + "/lora-fcnt.state");
  CHECK(stopped.find("clean 1\ndevice bay 26011F42 ") != std::string::npos);
  CHECK(stopped.find(" 7 7\ncrc32 ") != std::string::npos);
  CHECK(std::filesystem::status(t.path + "/lora-fcnt.state").permissions() ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  {
    Rig r(t.path);
    REQUIRE(r.started.ok());
    r.send(pushData(2, f7));
    r.send(pushData(3, frame(8)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1 && r.rejected("replay") == 1; }));
    CHECK(r.samples[0].lora->fCnt == 8);
  }
}

namespace {
struct Files {
  std::string state;
  std::string ram;
};
// What a kill -9 leaves: every write made so far (the page cache and tmpfs keep them).
std::string ramFile(const std::string& stateDir, const std::string& runtimeDir) {
  return LoraSource::ramCopyPath(runtimeDir, stateDir + "/lora-fcnt.state");
}
Files killImage(const std::string& stateDir, const std::string& runtimeDir) {
  return Files{slurp(stateDir + "/lora-fcnt.state"), slurp(ramFile(stateDir, runtimeDir))};
}
void putBack(const Files& f, const std::string& stateDir, const std::string& runtimeDir) {
  std::ofstream(stateDir + "/lora-fcnt.state", std::ios::binary | std::ios::trunc) << f.state;
  if (f.ram.empty()) {
    std::filesystem::remove(ramFile(stateDir, runtimeDir));
  } else {
    std::ofstream(ramFile(stateDir, runtimeDir), std::ios::binary | std::ios::trunc) << f.ram;
  }
}
const std::string kBootA = "11111111-2222-4333-8444-555555555555";
const std::string kBootB = "99999999-2222-4333-8444-555555555555";
}  // namespace

TEST_CASE("kill -9: the RAM copy resumes exactly, the card is not written in steady state") {
  TempDir t;
  const std::string run = t.path + "/run/citygate";  // created by the source (mkdir -p)
  Files killed;
  {
    Rig r(t.path, {}, run, kBootA);
    REQUIRE_MESSAGE(r.started.ok(), r.started.error());
    CHECK((std::filesystem::status(run).permissions() & std::filesystem::perms::all) == std::filesystem::perms(0750));
    r.send(pushData(1, frame(1)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1; }));
    const auto writes = r.health().lora().state_writes();  // start-up + the device's first frame
    for (std::uint32_t f = 2; f <= 12; ++f) r.send(pushData(static_cast<std::uint16_t>(f), frame(f)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 12; }));
    CHECK(r.health().lora().ram_writes() == 12);
    CHECK(r.health().lora().state_writes() == writes);  // nothing on the card for 11 frames
    killed = killImage(t.path, run);
  }
  putBack(killed, t.path, run);
  {
    Rig r(t.path, {}, run, kBootA);
    REQUIRE(r.started.ok());
    r.send(pushData(20, frame(12)));
    r.send(pushData(21, frame(13)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1 && r.rejected("replay") == 1; }));
    CHECK(r.samples[0].lora->fCnt == 13);  // the next real frame: no margin after a kill -9
    killed = killImage(t.path, run);
  }
  // Ten kill -9 in a row without a frame: still exact; the storage copy is rewritten once (it
  // learns 13), then found as it should be (a crash loop does not wear the card).
  for (int i = 0; i < 10; ++i) {
    putBack(killed, t.path, run);
    Rig r(t.path, {}, run, kBootA);
    REQUIRE(r.started.ok());
    CHECK(r.health().lora().state_writes() == (i == 0 ? 1U : 0U));
    killed = killImage(t.path, run);
  }
  putBack(killed, t.path, run);
  {
    Rig r(t.path, {}, run, kBootA);
    REQUIRE(r.started.ok());
    r.send(pushData(30, frame(14)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1; }));
    CHECK(r.rejected("replay") == 0);
    killed = killImage(t.path, run);
  }
  // A reboot: the RAM copy of the previous boot is not trusted; the storage copy (13, written at
  // the first restart above) + margin (16).
  putBack(killed, t.path, run);
  {
    Rig r(t.path, {}, run, kBootB);
    REQUIRE(r.started.ok());
    r.send(pushData(40, frame(14)));
    r.send(pushData(41, frame(13 + 16)));
    r.send(pushData(42, frame(13 + 17)));
    // Above the storage copy's last (13), within the margin: the margin's cost, not a replay.
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1 && r.rejected("fcnt_below_resume_margin") == 2; }));
    CHECK(r.rejected("replay") == 0);
    CHECK(r.samples[0].lora->fCnt == 30);
  }
}

TEST_CASE("a runtime_dir others can write to is not used (a planted copy could reopen a replay window)") {
  TempDir t;
  const std::string run = t.path + "/run";
  std::filesystem::create_directory(run);
  std::filesystem::permissions(run, std::filesystem::perms(0777));
  Rig r(t.path, {}, run, kBootA);
  REQUIRE(r.started.ok());
  r.send(pushData(1, frame(1)));
  REQUIRE(r.runUntil([&] { return r.samples.size() == 1; }));
  CHECK(r.source->counters().ramWrites == 0);
  CHECK_FALSE(std::filesystem::exists(ramFile(t.path, run)));
}

TEST_CASE("power cut (RAM copy gone): storage + margin, and the margin does not compound") {
  TempDir t;
  const std::string run = t.path + "/run";
  Files killed;
  {
    Rig r(t.path, {}, run, kBootA);
    REQUIRE(r.started.ok());
    r.send(pushData(1, frame(5)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1; }));
    killed = killImage(t.path, run);
  }
  killed.ram.clear();
  for (int cut = 0; cut < 5; ++cut) {
    putBack(killed, t.path, run);
    Rig r(t.path, {}, run, kBootA);
    REQUIRE(r.started.ok());
    killed = killImage(t.path, run);
    killed.ram.clear();
  }
  putBack(killed, t.path, run);
  Rig r(t.path, {}, run, kBootA);
  REQUIRE(r.started.ok());
  r.send(pushData(2, frame(5 + 16)));
  r.send(pushData(3, frame(5 + 17)));  // today: refused up to 5 + 6 * 16
  REQUIRE(r.runUntil([&] { return r.samples.size() == 1 && r.rejected("fcnt_below_resume_margin") == 1; }));
  CHECK(r.samples[0].lora->fCnt == 22);
}

TEST_CASE("a damaged RAM copy falls back to the storage copy") {
  TempDir t;
  const std::string run = t.path + "/run";
  Files killed;
  {
    Rig r(t.path, {}, run, kBootA);
    REQUIRE(r.started.ok());
    r.send(pushData(1, frame(1)));  // the storage copy says 1 (a first frame is written at once)
    REQUIRE(r.runUntil([&] { return r.samples.size() == 1; }));
    for (std::uint32_t f = 2; f <= 3; ++f) r.send(pushData(static_cast<std::uint16_t>(f), frame(f)));
    REQUIRE(r.runUntil([&] { return r.samples.size() == 3; }));
    killed = killImage(t.path, run);
  }
  REQUIRE(killed.ram.size() == kFcntRamHeader + kFcntRamSlot);
  killed.ram[fcntRamSlotOffset(0) + 12] ^= 0x01;  // the slot's counter: its CRC fails
  putBack(killed, t.path, run);
  Rig r(t.path, {}, run, kBootA);
  REQUIRE(r.started.ok());
  r.send(pushData(10, frame(1 + 16)));
  r.send(pushData(11, frame(1 + 17)));
  REQUIRE(r.runUntil([&] { return r.samples.size() == 1 && r.rejected("fcnt_below_resume_margin") == 1; }));
  CHECK(r.samples[0].lora->fCnt == 18);
}

TEST_CASE("a corrupt state file is set aside, flagged, and the source still starts") {
  TempDir t;
  { std::ofstream(t.path + "/lora-fcnt.state") << "citygate-lora-fcnt 1\nclean 1\ndevice bay 26011F42 0"; }
  Rig r(t.path);
  REQUIRE(r.started.ok());
  CHECK(r.health().lora().state_corrupt());
  CHECK(std::filesystem::exists(t.path + "/lora-fcnt.state.corrupt"));
}

TEST_CASE("start fails with a clear reason when the port is taken or the state cannot be written") {
  TempDir t;
  Rig first(t.path);
  REQUIRE(first.started.ok());
  asio::io_context ioc;
  auto s = spec(t.path + "/other");
  std::filesystem::create_directory(t.path + "/other");
  s.port = first.source->localPort();
  auto log = std::make_shared<spdlog::logger>("lora", std::make_shared<spdlog::sinks::null_sink_mt>());
  auto second = std::make_shared<LoraSource>(ioc.get_executor(), first.clock, s, nullptr, log);
  const auto st = second->start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().find("cannot listen on 127.0.0.1:") != std::string::npos);
  auto third = std::make_shared<LoraSource>(ioc.get_executor(), first.clock, spec("/nonexistent/dir"), nullptr, log);
  const auto st3 = third->start();
  REQUIRE_FALSE(st3.ok());
  CHECK(st3.error().find("cannot write /nonexistent/dir/lora-fcnt.state") != std::string::npos);
}

TEST_CASE("the counters are written on the writer's thread: the executor serves on while the disk is stuck") {
  TempDir t;
  struct Gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    int blocked = 0;
    std::thread::id writer;
  };
  auto gate = std::make_shared<Gate>();
  const auto executorThread = std::this_thread::get_id();
  // Writes from the executor's thread (start-up, clean stop) go through; any other one waits for
  // the gate (5 s at most, so that a regression fails instead of hanging).
  auto write = [gate, executorThread](const std::string& path, std::string_view data, unsigned mode) -> Status {
    if (std::this_thread::get_id() != executorThread) {
      std::unique_lock lock(gate->m);
      ++gate->blocked;
      gate->writer = std::this_thread::get_id();
      gate->cv.notify_all();
      gate->cv.wait_for(lock, 5s, [&] { return gate->open; });
    }
    return core::writeFileAtomic(path, data, mode);
  };
  Rig r(t.path, write);
  REQUIRE_MESSAGE(r.started.ok(), r.started.error());
  CHECK(r.source->counters().stateWrites == 1);  // the start-up write, here

  // A new device's counter must be written at once: it goes to the writer, which is stuck.
  r.send(pushData(1, frame(7)));
  REQUIRE(r.runUntil([&] {
    std::lock_guard lock(gate->m);
    return gate->blocked == 1;
  }));
  // The executor still serves: a PULL_DATA is answered while the write waits.
  r.send({1, 0xBE, 0xEF, 2, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0});
  std::vector<std::vector<std::uint8_t>> acks;
  REQUIRE(r.runUntil([&] {
    for (auto& a : r.replies()) acks.push_back(a);
    return std::find(acks.begin(), acks.end(), std::vector<std::uint8_t>{1, 0xBE, 0xEF, 4}) != acks.end();
  }));
  CHECK(gate->writer != executorThread);
  CHECK(r.samples.empty());  // its reading waits for the counter to be durable
  CHECK(r.source->counters().stateWrites == 1);

  {
    std::lock_guard lock(gate->m);
    gate->open = true;
    gate->cv.notify_all();
  }
  REQUIRE(r.runUntil([&] { return r.source->counters().stateWrites == 2 && r.samples.size() == 1; }));
  CHECK(slurp(t.path + "/lora-fcnt.state").find(" 7\ncrc32 ") != std::string::npos);
  CHECK_FALSE(r.source->processor()->urgentPersist());
}

namespace {
// One OTAA device beside the ABP one, with joins and downlinks on.
void withOtaa(LoraSpec& s, const std::string& stateDir) {
  s.downlink = true;
  s.fcntDownPath = stateDir + "/lora-fcntdown.state";
  s.otaaPath = stateDir + "/lora-otaa.state";
  JoinSpec j;
  j.netId = 0x13;
  j.devAddrFirst = 0x26012000;
  j.devAddrLast = 0x260120FF;
  s.join = j;
  DeviceSpec d = s.devices[0];
  auto sensor = std::make_shared<core::SensorSpec>(*d.sensor);
  sensor->id = "bay-otaa";
  d.sensor = sensor;
  d.otaa = true;
  d.devAddr = 0;
  d.nwkSKey = Key{};
  d.appSKey = Key{};
  d.devEuiValue = 0x3331383274356905ULL;
  d.appKey = key("98929b92c49edba9676d646d3b612456");
  s.devices.push_back(d);
}
}  // namespace

TEST_CASE("a corrupt or foreign OTAA state file is set aside, flagged, and the source still starts") {
  TempDir t;
  auto tweak = [&](LoraSpec& s) { withOtaa(s, t.path); };
  for (const std::string& text : {std::string("citygate-lora-otaa 1\njoin_nonce 4\ndevice bay-otaa 33"),
                                  std::string("citygate-lora-fcnt 2\nclean 1\ncrc32 00000000\n"),
                                  std::string("garbage \x01\x02 not a state file\n")}) {
    { std::ofstream(t.path + "/lora-otaa.state") << text; }
    Rig r(t.path, {}, "", "", tweak);
    REQUIRE(r.started.ok());
    CHECK(r.health().lora().otaa_state_corrupt());
    CHECK(std::filesystem::exists(t.path + "/lora-otaa.state.corrupt"));
    // A fresh file, mode 0600, that says nothing yet.
    const std::string now = slurp(t.path + "/lora-otaa.state");
    CHECK(now.starts_with("citygate-lora-otaa 1\njoin_nonce 1\ncrc32 "));
    struct stat st {};
    REQUIRE(::stat((t.path + "/lora-otaa.state").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    r.source->stop();
    std::filesystem::remove(t.path + "/lora-otaa.state.corrupt");
  }
}

TEST_CASE("a join through the source: the join-accept waits for the state file, then goes to the gateway") {
  TempDir t;
  auto tweak = [&](LoraSpec& s) { withOtaa(s, t.path); };
  std::string nwkAfter;
  {
    Rig r(t.path, {}, "", "", tweak);
    REQUIRE(r.started.ok());
    // PULL_DATA first: the gateway's address for the PULL_RESP.
    std::vector<std::uint8_t> pull{2, 0x12, 0x34, 2, 0xAA, 0x55, 0x5A, 0, 0, 0, 0, 0};
    r.send(pull);
    auto c = Crypto::create(nullptr);
    std::vector<std::uint8_t> jr = hex("0039363463336913AA05693574323831338EF1C1D5EC6C");  // L6, DevNonce f18e
    r.send(pushData(7, jr));
    // The joins' state is written on its thread (the clock stands still meanwhile: the join-accept
    // waits for the write, whose completion is the event), then the dedup window closes.
    const auto end = std::chrono::steady_clock::now() + 3s;
    while (r.health().lora().otaa_state_writes() < 2 && std::chrono::steady_clock::now() < end) {
      r.ioc.restart();
      r.ioc.run_one_for(5ms);
    }
    REQUIRE(r.health().lora().otaa_state_writes() == 2);
    std::vector<std::vector<std::uint8_t>> got;
    const bool sent = r.runUntil([&] {
      for (auto& d : r.replies()) {
        if (d.size() > 4 && d[3] == 0x03) got.push_back(d);
      }
      return !got.empty();
    });
    INFO(r.health().DebugString());
    REQUIRE(sent);
    const std::string json(got[0].begin() + 4, got[0].end());
    CHECK(json.find("\"tmst\":5000001,") != std::string::npos);  // the rxpk's tmst 1 + 5 s
    const auto h = r.health();
    CHECK(h.lora().joins_accepted() == 1);
    CHECK(h.lora().otaa_state_writes() >= 1);
    CHECK(h.lora().downlink().join_accepts() == 1);
    const std::string state = slurp(t.path + "/lora-otaa.state");
    CHECK(state.find("device bay-otaa 3331383274356905 ") != std::string::npos);
    CHECK(state.find("F18E") != std::string::npos);
  }
  // Restarted: the same join-request is a replay; the session is there.
  Rig r(t.path, {}, "", "", tweak);
  REQUIRE(r.started.ok());
  r.send(pushData(8, hex("0039363463336913AA05693574323831338EF1C1D5EC6C")));
  REQUIRE(r.runUntil([&] { return r.rejected("join_dev_nonce_replay") == 1; }));
  CHECK(r.source->processor()->hasSession(1));
  CHECK(r.source->processor()->device(1).devAddr == 0x26012000U);
}
