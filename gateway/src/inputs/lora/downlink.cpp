#include "inputs/lora/downlink.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "inputs/lora/base64.hpp"
#include "inputs/lora/state_file.hpp"

namespace citygate::lora {

std::optional<TxAckError> parseTxAck(std::string_view body, json::Document& doc) {
  const bool blank = std::all_of(body.begin(), body.end(), [](char c) { return c == ' ' || c == '\n' || c == '\0'; });
  if (blank) return TxAckError::None;
  if (doc.parse(body) != json::Error::None) return std::nullopt;
  const json::Value root = doc.root();
  if (!root.isObject()) return std::nullopt;
  const json::Value ack = root.get("txpk_ack");
  if (!ack.isObject()) return std::nullopt;
  const json::Value err = ack.get("error");
  if (!err.valid()) return TxAckError::None;  // {"txpk_ack":{"warn":...}}: sent
  if (!err.isString()) return std::nullopt;
  for (std::size_t i = 0; i + 1 < kTxAckErrorCount; ++i) {
    if (err.string() == kTxAckErrorNames[i]) return static_cast<TxAckError>(i);
  }
  return TxAckError::Unknown;
}

std::string_view enqueueResultName(EnqueueResult r) {
  switch (r) {
    case EnqueueResult::Queued:
      return "queued";
    case EnqueueResult::Disabled:
      return "downlinks_disabled";
    case EnqueueResult::UnknownDevice:
      return "unknown_device";
    case EnqueueResult::BadPort:
      return "bad_port";
    case EnqueueResult::TooLarge:
      return "too_large";
    case EnqueueResult::QueueFull:
      return "queue_full";
  }
  return "unknown";
}

std::chrono::microseconds loraAirtime(int sf, int bandwidthKhz, std::size_t phyLength, bool crc) {
  const double tsym = std::ldexp(1.0, sf) * 1000.0 / bandwidthKhz;  // us
  const int de = (sf >= 11 && bandwidthKhz == 125) ? 1 : 0;
  const double num = 8.0 * static_cast<double>(phyLength) - 4.0 * sf + 28 + (crc ? 16 : 0);
  const double symbols = 8 + std::max(std::ceil(num / (4.0 * (sf - 2 * de))) * 5, 0.0);  // CR 4/5
  return std::chrono::microseconds(static_cast<std::int64_t>(std::llround((8 + 4.25 + symbols) * tsym)));
}

std::optional<std::pair<int, int>> parseDatr(std::string_view s) {
  if (s.size() < 7 || s.substr(0, 2) != "SF") return std::nullopt;
  const std::size_t bw = s.find("BW");
  if (bw == std::string_view::npos) return std::nullopt;
  int sf = 0, khz = 0;
  auto r1 = std::from_chars(s.data() + 2, s.data() + bw, sf);
  auto r2 = std::from_chars(s.data() + bw + 2, s.data() + s.size(), khz);
  if (r1.ec != std::errc() || r1.ptr != s.data() + bw || r2.ec != std::errc() || r2.ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  if (sf < 5 || sf > 12 || (khz != 125 && khz != 250 && khz != 500)) return std::nullopt;
  return std::make_pair(sf, khz);
}

std::optional<SubBand> subBandOf(double mhz) {
  if (mhz >= 863.0 && mhz < 868.0) return SubBand::G;
  if (mhz >= 868.0 && mhz <= 868.6) return SubBand::G1;
  if (mhz >= 868.7 && mhz <= 869.2) return SubBand::G2;
  if (mhz >= 869.4 && mhz <= 869.65) return SubBand::G3;
  if (mhz >= 869.7 && mhz <= 870.0) return SubBand::G4;
  return std::nullopt;
}

double dutyCycleLimit(SubBand b) {
  switch (b) {
    case SubBand::G2:
      return 0.001;
    case SubBand::G3:
      return 0.1;
    default:
      return 0.01;
  }
}

std::deque<DutyCycle::Entry>& DutyCycle::band(std::uint64_t eui, SubBand b) {
  for (auto& g : gateways_) {
    if (g.eui == eui) return g.bands[static_cast<std::size_t>(b)];
  }
  gateways_.emplace_back().eui = eui;
  return gateways_.back().bands[static_cast<std::size_t>(b)];
}

std::chrono::microseconds DutyCycle::used(std::uint64_t eui, SubBand b, SteadyTime now) {
  auto& q = band(eui, b);
  while (!q.empty() && q.front().at + kWindow <= now) q.pop_front();
  std::chrono::microseconds sum{0};
  for (const auto& e : q) sum += e.airtime;
  return sum;
}

bool DutyCycle::allows(std::uint64_t eui, SubBand b, std::chrono::microseconds airtime, SteadyTime now) {
  const auto budget = std::chrono::duration_cast<std::chrono::microseconds>(kWindow) * dutyCycleLimit(b);
  return std::chrono::duration<double, std::micro>(used(eui, b, now) + airtime) <= budget;
}

void DutyCycle::record(std::uint64_t eui, SubBand b, std::chrono::microseconds airtime, SteadyTime now) {
  band(eui, b).push_back(Entry{now, airtime});
}

void DutyCycle::refund(std::uint64_t eui, SubBand b, std::chrono::microseconds airtime, SteadyTime at) {
  auto& q = band(eui, b);
  const auto it = std::find_if(q.begin(), q.end(), [&](const Entry& e) { return e.at == at && e.airtime == airtime; });
  if (it != q.end()) q.erase(it);
}

Window rx1Window(std::uint32_t tmst, SteadyTime receivedAt, double frequency, std::string_view datr,
                 std::chrono::seconds delay) {
  Window w;
  w.tmst = tmst + static_cast<std::uint32_t>(
                      std::chrono::microseconds(delay).count());  // mod 2^32, as the concentrator counts
  w.at = receivedAt + delay;
  w.frequency = frequency;
  w.datr = std::string(datr);
  return w;
}

Window rx2Window(std::uint32_t tmst, SteadyTime receivedAt, std::chrono::seconds delay, std::string_view datr) {
  Window w = rx1Window(tmst, receivedAt, kRx2FrequencyMhz, datr, delay + std::chrono::seconds(1));
  w.rx2 = true;
  return w;
}

std::optional<int> eu868DataRate(std::string_view datr) {
  const auto r = parseDatr(datr);
  if (!r) return std::nullopt;
  if (r->second == 125 && r->first >= 7 && r->first <= 12) return 12 - r->first;
  if (r->second == 250 && r->first == 7) return 6;
  return std::nullopt;
}

std::string eu868Datr(int dr) {
  if (dr == 6) return "SF7BW250";
  return "SF" + std::to_string(12 - std::clamp(dr, 0, 5)) + "BW125";
}

std::string rx1Datr(std::string_view uplinkDatr, int offset) {
  if (offset == 0) return std::string(uplinkDatr);
  const auto dr = eu868DataRate(uplinkDatr);
  if (!dr) return std::string(uplinkDatr);
  return eu868Datr(std::max(std::min(*dr, 5) - offset, 0));
}

UplinkMac parseUplinkMac(std::span<const std::uint8_t> f) {
  UplinkMac m;
  std::size_t i = 0;
  while (i < f.size()) {
    const std::uint8_t cid = f[i++];
    std::size_t len = 0;
    switch (cid) {
      case 0x02:  // LinkCheckReq
        m.linkCheckReq = true;
        break;
      case 0x06:  // DevStatusAns
        if (i + 2 > f.size()) return m;
        m.devStatusAns = true;
        m.battery = f[i];
        m.devStatusMargin = static_cast<std::int8_t>(static_cast<std::uint8_t>(f[i + 1] << 2)) / 4;  // 6-bit signed
        len = 2;
        break;
      case 0x03:  // LinkADRAns
      case 0x05:  // RXParamSetupAns
      case 0x07:  // NewChannelAns
      case 0x0A:  // DlChannelAns
        len = 1;
        break;
      case 0x04:  // DutyCycleAns
      case 0x08:  // RXTimingSetupAns
      case 0x09:  // TxParamSetupAns
      case 0x0D:  // DeviceTimeReq
        break;
      default:
        return m;  // unknown: its length is unknown, the rest cannot be read
    }
    i += len;
  }
  return m;
}

std::uint8_t linkMargin(double snr, int sf) {
  static constexpr std::array<double, 8> kFloor{-2.5, -5.0, -7.5, -10.0, -12.5, -15.0, -17.5, -20.0};  // SF5..SF12
  const double floor = (sf >= 5 && sf <= 12) ? kFloor[static_cast<std::size_t>(sf - 5)] : -20.0;
  const double m = std::floor(snr - floor);
  return static_cast<std::uint8_t>(std::clamp(m, 0.0, 254.0));
}

std::optional<std::vector<std::uint8_t>> buildDataDown(Crypto& crypto, const Key& nwkSKey, const Key& appSKey,
                                                       const DataDown& d) {
  if (d.fopts.size() > 15 || (d.hasPort && d.fport == 0 && !d.fopts.empty())) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(13 + d.fopts.size() + d.payload.size() + 4);
  out.push_back(static_cast<std::uint8_t>((d.confirmed ? 0xA0 : 0x60)));  // MType | Major R1
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(d.devAddr >> (8 * i)));
  out.push_back(static_cast<std::uint8_t>((d.ack ? 0x20 : 0x00) | d.fopts.size()));
  out.push_back(static_cast<std::uint8_t>(d.fcnt));
  out.push_back(static_cast<std::uint8_t>(d.fcnt >> 8));
  out.insert(out.end(), d.fopts.begin(), d.fopts.end());
  if (d.hasPort) {
    out.push_back(d.fport);
    std::vector<std::uint8_t> enc(d.payload.size());
    const Key& key = d.fport == 0 ? nwkSKey : appSKey;
    if (!crypto.cryptPayload(key, Dir::Down, d.devAddr, d.fcnt, d.payload, enc)) return std::nullopt;
    out.insert(out.end(), enc.begin(), enc.end());
  }
  const auto mic = crypto.dataMic(nwkSKey, Dir::Down, d.devAddr, d.fcnt, out);
  if (!mic) return std::nullopt;
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(*mic >> (8 * i)));
  return out;
}

std::vector<std::uint8_t> buildPullResp(std::uint8_t version, std::uint16_t token, const TxParams& tx,
                                        std::span<const std::uint8_t> phy) {
  char head[160];
  const int n = std::snprintf(head, sizeof head,
                              R"({"txpk":{"imme":false,"tmst":%u,"freq":%.6f,"rfch":0,"powe":%d,"modu":"LORA",)",
                              static_cast<unsigned>(tx.tmst), tx.frequency, tx.power);
  std::string json(head, static_cast<std::size_t>(std::max(n, 0)));
  json += R"("datr":")" + tx.datr + R"(","codr":"4/5","ipol":true,"size":)" + std::to_string(phy.size()) +
          R"(,"data":")" + encodeBase64(phy) + "\"}}";
  std::vector<std::uint8_t> out(4 + json.size());
  out[0] = version;
  out[1] = static_cast<std::uint8_t>(token >> 8);
  out[2] = static_cast<std::uint8_t>(token);
  out[3] = 0x03;
  std::copy(json.begin(), json.end(), out.begin() + 4);
  return out;
}

// ---- FCntDown state file ----
namespace {
constexpr std::string_view kDownHead = "citygate-lora-fcntdown 1";

std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", v);
  return buf;
}

template <typename T>
bool parseNum(std::string_view s, T& out, int base) {
  if (s.empty() || s.size() > 10) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}
}  // namespace

std::string encodeFcntDown(const std::vector<FcntDownRecord>& records) {
  std::string s;
  for (const auto& r : records) {
    s += "device " + r.id + " " + hex8(r.devAddr) + " " + hex8(r.keyCheck) + " " + std::to_string(r.reserved) + "\n";
  }
  return frameTextState(kDownHead, s);
}

std::optional<std::vector<FcntDownRecord>> decodeFcntDown(std::string_view text, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<std::vector<FcntDownRecord>> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  auto checkHead = [](std::string_view head) -> std::optional<std::string> {
    if (head != kDownHead) return "not a version-1 citygate FCntDown file";
    return std::nullopt;
  };
  const auto frame = unframeTextState(text, checkHead, why);
  if (!frame) return std::nullopt;
  const std::string_view body = frame->lines;
  std::vector<FcntDownRecord> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t end = body.find('\n', pos);
    std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    std::array<std::string_view, 5> w{};
    std::size_t n = 0;
    while (n < w.size() && !line.empty()) {
      const std::size_t sp = line.find(' ');
      w[n++] = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    }
    FcntDownRecord r;
    if (n != 5 || !line.empty() || w[0] != "device" || w[1].empty() || w[2].size() != 8 || w[3].size() != 8 ||
        !parseNum(w[2], r.devAddr, 16) || !parseNum(w[3], r.keyCheck, 16) || !parseNum(w[4], r.reserved, 10)) {
      return fail("bad line");
    }
    r.id = std::string(w[1]);
    out.push_back(std::move(r));
  }
  return out;
}

// ---- the scheduler ----
Downlinks::Downlinks(std::vector<DownlinkDevice> devices, DownlinkOptions options, Crypto& crypto)
    : options_(options), crypto_(crypto) {
  devices_.reserve(devices.size());
  for (auto& d : devices) devices_.emplace_back().spec = std::move(d);
}

void Downlinks::notePull(std::uint64_t eui) {
  if (!hasPull(eui)) pulls_.push_back(eui);
}

bool Downlinks::hasPull(std::uint64_t eui) const {
  return std::find(pulls_.begin(), pulls_.end(), eui) != pulls_.end();
}

std::optional<Tx> Downlinks::drop(DropReason r, std::string* why, std::string detail) {
  ++counters_.dropped[static_cast<std::size_t>(r)];
  if (why != nullptr) *why = std::string(dropReasonName(r)) + (detail.empty() ? "" : ": " + detail);
  return std::nullopt;
}

Downlinks::Choice Downlinks::choose(const AcceptedUplink& up, const std::array<Window, 2>& windows, std::size_t length,
                                    SteadyTime now) {
  Choice c;
  bool any = false;
  for (const Window& w : windows) {
    const auto rate = parseDatr(w.datr);
    const auto sb = subBandOf(w.frequency);
    if (!rate || !sb) {
      if (!any) c.refused = DropReason::NotEu868;
      any = true;
      c.detail = "no EU868 window for " + w.datr;
      continue;
    }
    if (!canMeet(w, now, options_.lead)) {
      if (c.refused != DropReason::DutyCycle) c.refused = DropReason::TooLate;
      any = true;
      c.detail = w.rx2 ? "RX2 has passed" : "RX1 has passed";
      continue;
    }
    const auto air = loraAirtime(rate->first, rate->second, length);
    if (!duty_.allows(up.gatewayEui, *sb, air, now)) {
      c.refused = DropReason::DutyCycle;
      any = true;
      c.detail = "sub-band " + std::string(kSubBandNames[static_cast<std::size_t>(*sb)]) + " has no airtime left";
      continue;
    }
    c.window = &w;
    c.band = *sb;
    c.airtime = air;
    break;
  }
  return c;
}

std::optional<Tx> Downlinks::launch(const AcceptedUplink& up, const Choice& c, const Window& rx2,
                                    std::vector<std::uint8_t> phy, SteadyTime now) {
  Inflight in;
  in.token = ++token_;
  in.gatewayEui = up.gatewayEui;
  in.version = up.version;
  in.sentAt = now;
  in.window = *c.window;
  in.rx2 = rx2;
  in.phy = std::move(phy);
  in.band = c.band;
  in.airtime = c.airtime;
  duty_.record(up.gatewayEui, c.band, c.airtime, now);
  return send(in, now);
}

// The join-accept: RX1 at tmst + 5 s on the uplink's channel and data rate, RX2 at tmst + 6 s on
// 869.525 MHz SF12 (the device has no other settings before it is accepted). No FCntDown.
std::optional<Tx> Downlinks::joinAccept(const AcceptedUplink& up, SteadyTime now, std::string* why) {
  if (!hasPull(up.gatewayEui)) return drop(DropReason::NoPullAddress, why, "gateway sent no PULL_DATA yet");
  if (!up.hasTmst) return drop(DropReason::NoTmst, why, "");
  const std::array<Window, 2> windows{rx1Window(up.tmst, up.receivedAt, up.frequency, up.datr, kJoinAcceptDelay1),
                                      rx2Window(up.tmst, up.receivedAt, kJoinAcceptDelay1)};
  const Choice c = choose(up, windows, up.joinAccept.size(), now);
  if (c.window == nullptr) return drop(c.refused, why, "join-accept: " + c.detail);
  ++counters_.joinAccepts;
  return launch(up, c, windows[1], up.joinAccept, now);
}

std::optional<Tx> Downlinks::onUplink(const AcceptedUplink& up, SteadyTime now, std::string* why) {
  if (up.device >= devices_.size()) return std::nullopt;
  if (up.join) return joinAccept(up, now, why);
  Device& d = devices_[up.device];
  if (up.ackBit && d.awaitingAck) {
    d.awaitingAck = false;
    ++counters_.confirmedAcked;
  }
  const bool app = !d.queue.empty();
  if (!up.confirmed && !up.mac.linkCheckReq && !app && !d.devStatusReq) return std::nullopt;
  if (!hasPull(up.gatewayEui)) return drop(DropReason::NoPullAddress, why, "gateway sent no PULL_DATA yet");
  if (!up.hasTmst) return drop(DropReason::NoTmst, why, "");

  DataDown f;
  f.devAddr = d.spec.devAddr;
  f.ack = up.confirmed;
  const auto sfbw = parseDatr(up.datr);
  if (up.mac.linkCheckReq) f.fopts = {0x02, linkMargin(up.snr, sfbw ? sfbw->first : 12), 1};
  if (d.devStatusReq) f.fopts.push_back(0x06);
  if (app) {
    f.hasPort = true;
    f.fport = d.queue.front().fport;
    f.payload = d.queue.front().bytes;
    f.confirmed = d.queue.front().confirmed;
  }
  const std::size_t length = 12 + f.fopts.size() + (f.hasPort ? 1 + f.payload.size() : 0);

  const std::array<Window, 2> windows{
      rx1Window(up.tmst, up.receivedAt, up.frequency, rx1Datr(up.datr, d.spec.rx1DrOffset), d.spec.rx1Delay),
      rx2Window(up.tmst, up.receivedAt, d.spec.rx1Delay, d.spec.rx2Datr)};
  const Choice c = choose(up, windows, length, now);
  if (c.window == nullptr) return drop(c.refused, why, c.detail);
  if (d.next >= d.reserved) {
    persistWanted_ = true;
    return drop(DropReason::FcntDownUnsaved, why, "");
  }
  f.fcnt = d.next++;
  if (d.reserved - d.next < kFcntDownReserve / 2) persistWanted_ = true;
  auto phy = buildDataDown(crypto_, d.spec.nwkSKey, d.spec.appSKey, f);
  if (!phy) return drop(DropReason::CryptoError, why, "");
  if (app) {
    d.queue.pop_front();
    ++counters_.appSent;
    if (f.confirmed) d.awaitingAck = true;
  }
  if (f.ack) ++counters_.acks;
  if (up.mac.linkCheckReq) ++counters_.linkCheckAns;
  if (d.devStatusReq) {
    d.devStatusReq = false;
    ++counters_.devStatusReq;
  }
  return launch(up, c, windows[1], std::move(*phy), now);
}

void Downlinks::setSession(std::size_t device, std::uint32_t devAddr, const Key& nwkSKey, const Key& appSKey,
                           std::uint32_t keyCheck, std::chrono::seconds rx1Delay, std::uint8_t rx1DrOffset,
                           std::string rx2Datr) {
  if (device >= devices_.size()) return;
  Device& d = devices_[device];
  if (d.spec.devAddr == devAddr && d.spec.keyCheck == keyCheck) return;  // the same session
  d.spec.devAddr = devAddr;
  d.spec.nwkSKey = nwkSKey;
  d.spec.appSKey = appSKey;
  d.spec.keyCheck = keyCheck;
  d.spec.rx1Delay = rx1Delay;
  d.spec.rx1DrOffset = rx1DrOffset;
  d.spec.rx2Datr = std::move(rx2Datr);
  d.next = 0;
  d.reserved = 0;  // nothing is handed out before the new session's reservation is written
  d.awaitingAck = false;
  persistWanted_ = true;
}

EnqueueResult Downlinks::requestDevStatus(std::string_view device) {
  const auto i = findDevice(device);
  if (!i) return EnqueueResult::UnknownDevice;
  devices_[*i].devStatusReq = true;
  return EnqueueResult::Queued;
}

std::optional<Tx> Downlinks::send(const Inflight& f, SteadyTime now) {
  expire(now);
  Tx tx;
  tx.gatewayEui = f.gatewayEui;
  tx.datagram = buildPullResp(f.version, f.token,
                              TxParams{f.window.tmst, f.window.frequency, f.window.datr, options_.txPower}, f.phy);
  ++counters_.sent;
  ++(f.window.rx2 ? counters_.rx2 : counters_.rx1);
  inflight_.push_back(f);
  if (inflight_.size() > kMaxInflight) {
    inflight_.pop_front();
    ++counters_.dropped[static_cast<std::size_t>(DropReason::InflightFull)];
  }
  return tx;
}

std::optional<Tx> Downlinks::onTxAck(std::uint64_t eui, std::uint16_t token, TxAckError error, SteadyTime now,
                                     std::string* why) {
  ++counters_.txAck[static_cast<std::size_t>(error)];
  const auto it = std::find_if(inflight_.begin(), inflight_.end(),
                               [&](const Inflight& f) { return f.token == token && f.gatewayEui == eui; });
  if (it == inflight_.end()) {
    ++counters_.txAckUnknownToken;
    return std::nullopt;
  }
  Inflight f = std::move(*it);
  inflight_.erase(it);
  if (error == TxAckError::None) return std::nullopt;
  duty_.refund(f.gatewayEui, f.band, f.airtime, f.sentAt);
  const std::string name(txAckErrorName(error));
  if (f.window.rx2 || (error != TxAckError::TooLate && error != TxAckError::CollisionPacket)) {
    return drop(DropReason::TxAckError, why, name + (f.window.rx2 ? " in RX2" : " in RX1"));
  }
  if (!canMeet(f.rx2, now, options_.lead)) return drop(DropReason::RetryTooLate, why, name + " in RX1, RX2 has passed");
  const auto rx2Rate = parseDatr(f.rx2.datr);
  const auto air = loraAirtime(rx2Rate ? rx2Rate->first : 12, rx2Rate ? rx2Rate->second : 125, f.phy.size());
  if (!duty_.allows(eui, SubBand::G3, air, now)) {
    return drop(DropReason::RetryDutyCycle, why, name + " in RX1, sub-band g3 has no airtime left");
  }
  f.window = f.rx2;
  f.band = SubBand::G3;
  f.airtime = air;
  f.sentAt = now;
  f.token = ++token_;
  duty_.record(eui, SubBand::G3, air, now);
  ++counters_.retriedRx2;
  return send(f, now);
}

void Downlinks::sendFailed(const Tx& tx) {
  if (tx.datagram.size() < 4) return;
  const auto token = static_cast<std::uint16_t>((tx.datagram[1] << 8) | tx.datagram[2]);
  const auto it = std::find_if(inflight_.begin(), inflight_.end(),
                               [&](const Inflight& f) { return f.token == token && f.gatewayEui == tx.gatewayEui; });
  if (it == inflight_.end()) return;
  duty_.refund(it->gatewayEui, it->band, it->airtime, it->sentAt);
  inflight_.erase(it);
  ++counters_.dropped[static_cast<std::size_t>(DropReason::SendFailed)];
}

void Downlinks::expire(SteadyTime now) {
  while (!inflight_.empty() && inflight_.front().sentAt + options_.txAckTimeout <= now) {
    inflight_.pop_front();
    ++counters_.txAckMissing;
  }
}

std::optional<std::size_t> Downlinks::findDevice(std::string_view key) const {
  std::string upper(key);
  for (char& c : upper) {
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  }
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    const auto& s = devices_[i].spec;
    if (s.id == key || (!s.devEui.empty() && s.devEui == upper) || (upper.size() == 8 && hex8(s.devAddr) == upper)) {
      return i;
    }
  }
  return std::nullopt;
}

EnqueueResult Downlinks::enqueue(std::string_view device, std::uint8_t fport, std::span<const std::uint8_t> bytes,
                                 bool confirmed) {
  const auto i = findDevice(device);
  if (!i) return EnqueueResult::UnknownDevice;
  if (fport == 0 || fport > 223) return EnqueueResult::BadPort;
  if (bytes.size() > 51) return EnqueueResult::TooLarge;  // EU868 DR0 (RX2 SF12): the window every downlink may need
  Device& d = devices_[*i];
  if (d.queue.size() >= options_.queueDepth) return EnqueueResult::QueueFull;
  d.queue.push_back(AppDownlink{fport, std::vector<std::uint8_t>(bytes.begin(), bytes.end()), confirmed});
  ++counters_.appQueued;
  return EnqueueResult::Queued;
}

void Downlinks::restore(const std::vector<FcntDownRecord>& records) {
  for (auto& d : devices_) {
    for (const auto& r : records) {
      if (r.id != d.spec.id) continue;
      if (r.devAddr == d.spec.devAddr && r.keyCheck == d.spec.keyCheck) d.next = r.reserved;
      break;
    }
    d.reserved = d.next;  // nothing may be handed out before a new reservation is written
  }
  persistWanted_ = true;
}

std::vector<FcntDownRecord> Downlinks::reservations() const {
  std::vector<FcntDownRecord> out;
  out.reserve(devices_.size());
  for (const auto& d : devices_) {
    const std::uint64_t r = std::min<std::uint64_t>(std::uint64_t{d.next} + kFcntDownReserve, 0xFFFFFFFFULL);
    out.push_back(FcntDownRecord{d.spec.id, d.spec.devAddr, d.spec.keyCheck, static_cast<std::uint32_t>(r)});
  }
  return out;
}

void Downlinks::markPersisted(const std::vector<FcntDownRecord>& written) {
  persistWanted_ = false;
  for (auto& d : devices_) {
    for (const auto& r : written) {
      if (r.id == d.spec.id && r.devAddr == d.spec.devAddr) d.reserved = std::max(d.reserved, r.reserved);
    }
    if (d.reserved - std::min(d.next, d.reserved) < kFcntDownReserve / 2) persistWanted_ = true;
  }
}

}  // namespace citygate::lora
