// The join path: the input is a sequence of [length][frame] records (join-requests, data frames of
// a joined session, anything) through a FrameProcessor with one OTAA device (the AppKey and DevEUI
// of protocols.md L6) beside the ABP devices of lora_harness.hpp; time advances 300 ms per frame.
// A record whose length byte is 0xFF is instead the joins' state file (the rest of the input), as
// read at start. Checks: the parser agrees with itself; every accepted join-request yields a
// join-accept that the device decrypts and verifies, with a DevAddr in the range, and a session the
// processor holds; a state file that decodes encodes back to itself.
#include <cstdint>
#include <string_view>

#include "inputs/lora/join.hpp"
#include "lora_harness.hpp"

namespace cl = citygate::lora;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<cl::Crypto> crypto = cl::Crypto::create(nullptr);
  static const cl::Key appKey = *cl::Key::fromHex("98929b92c49edba9676d646d3b612456");
  static const auto log = std::make_shared<spdlog::logger>("lora", std::make_shared<spdlog::sinks::null_sink_st>());
  auto specs = lora_fuzz::deviceSpecs();
  cl::DeviceSpec otaa = specs[0];
  otaa.sensor = std::make_shared<citygate::core::SensorSpec>(*specs[0].sensor);
  otaa.otaa = true;
  otaa.devAddr = 0;
  otaa.nwkSKey = cl::Key{};
  otaa.appSKey = cl::Key{};
  otaa.devEuiValue = 0x3331383274356905ULL;
  otaa.appKey = appKey;
  specs.push_back(otaa);
  const std::size_t otaaIndex = specs.size() - 1;
  cl::ProcessorOptions o;
  o.maxPending = 16;
  cl::JoinSpec js;
  js.netId = 0x13;
  js.devAddrFirst = 0x26011F40;  // overlaps the ABP devices' addresses: allocation must skip them
  js.devAddrLast = 0x26011F44;
  js.cflist = cl::eu868DefaultCflist();
  o.join = js;
  std::vector<cl::AcceptedUplink> ups;
  cl::FrameProcessor proc(
      specs, o, cl::Crypto::create(nullptr), [](const auto&, auto&, auto&&) {}, log);
  proc.setUplinkHook([&](const cl::AcceptedUplink& u) { ups.push_back(u); });

  citygate::SteadyTime now = citygate::SteadyTime{} + std::chrono::hours(1000);
  std::size_t pos = 0;
  std::size_t frames = 0;
  while (pos < size && frames < 64) {
    const std::size_t len = data[pos++];
    if (len == 0xFF) {
      const std::string_view text(reinterpret_cast<const char*>(data + pos), size - pos);
      std::string why;
      if (auto st = cl::decodeOtaaState(text, &why)) {
        const std::string again = cl::encodeOtaaState(*st);
        auto back = cl::decodeOtaaState(again, &why);
        if (!back || cl::encodeOtaaState(*back) != again) __builtin_trap();
        (void)proc.restoreJoins(*st);
      } else if (why.empty()) {
        __builtin_trap();  // a refusal always says why
      }
      break;
    }
    const std::size_t n = std::min(len, size - pos);
    cl::RxPacket rx;
    rx.freq = 868.1;
    rx.stat = 1;
    rx.datr = "SF7BW125";
    rx.rssi = -60.0;
    rx.lsnr = 5.0;
    rx.hasTmst = true;
    rx.tmst = static_cast<std::uint32_t>(frames * 1000);
    std::copy(data + pos, data + pos + n, rx.data.begin());
    rx.size = n;
    pos += n;
    cl::JoinRequest jr;
    if (cl::parseJoinRequest(rx.phy(), jr) == cl::JoinParseError::None && jr.micInput.size() != 19) __builtin_trap();
    const auto before = proc.counters().joinsAccepted;
    (void)proc.onRxpk(rx, 0x0102030405060708ULL, now, citygate::WallClock::now());
    if (proc.counters().joinsAccepted != before) {
      const cl::DeviceSpec& d = proc.device(otaaIndex);
      if (!proc.hasSession(otaaIndex) || d.devAddr < js.devAddrFirst || d.devAddr > js.devAddrLast) __builtin_trap();
      for (std::size_t i = 0; i + 1 < specs.size(); ++i) {
        if (specs[i].devAddr == d.devAddr) __builtin_trap();  // never an ABP device's address
      }
    }
    now += std::chrono::milliseconds(300);
    proc.flushDue(now);
    ++frames;
  }
  proc.flushAll();
  for (const auto& u : ups) {
    if (!u.join) continue;
    const auto& w = u.joinAccept;
    if (w.size() != 33) __builtin_trap();
    std::vector<std::uint8_t> plain(w.size());
    plain[0] = w[0];
    if (!crypto->aesEncrypt(appKey, std::span(w).subspan(1), std::span(plain).subspan(1))) __builtin_trap();
    const auto mic = crypto->joinAcceptMic(appKey, std::span(plain).first(29));
    const std::uint32_t sent = (std::uint32_t{plain[29]} << 24) | (std::uint32_t{plain[30]} << 16) |
                               (std::uint32_t{plain[31]} << 8) | plain[32];
    if (!mic || *mic != sent) __builtin_trap();
  }
  return 0;
}
