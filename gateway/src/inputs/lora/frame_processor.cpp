#include "inputs/lora/frame_processor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "inputs/lora/phy_payload.hpp"

namespace citygate::lora {

namespace pb = citygate::v1;

std::uint64_t frameHash(std::span<const std::uint8_t> phy) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (auto b : phy) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return h;
}

namespace {

Reason fromPhyError(PhyError e) {
  switch (e) {
    case PhyError::TooShort:
      return Reason::TruncatedFrame;
    case PhyError::BadMajor:
      return Reason::BadMajor;
    case PhyError::NotDataUp:
      return Reason::NotDataUplink;
    case PhyError::FOptsWithPort0:
      return Reason::FOptsWithPort0;
    case PhyError::None:
      break;
  }
  return Reason::TruncatedFrame;
}

void setReception(AcceptedUplink& u, const RxPacket& rx, std::uint64_t gatewayEui) {
  u.gatewayEui = gatewayEui;
  u.hasTmst = rx.hasTmst;
  u.tmst = rx.tmst;
  u.frequency = rx.freq;
  u.datr = rx.lora ? std::string(rx.datr) : std::string();
  u.snr = rx.lsnr;
}

}  // namespace

FrameProcessor::FrameProcessor(std::vector<DeviceSpec> devices, ProcessorOptions options,
                               std::unique_ptr<Crypto> crypto, Submit submit, std::shared_ptr<spdlog::logger> log)
    : options_(options), crypto_(std::move(crypto)), submit_(std::move(submit)), log_(std::move(log)) {
  sessions_.reserve(devices.size());
  for (auto& d : devices) {
    Session s;
    s.spec = std::move(d);
    s.keyCheck = crypto_->keyCheckValue(s.spec.nwkSKey).value_or(0);
    if (s.spec.otaa) s.appKeyCheck = crypto_->keyCheckValue(s.spec.appKey).value_or(0);
    s.lastError = s.spec.otaa ? "not joined yet" : "no frame received yet";
    sessions_.push_back(std::move(s));
  }
  rebuildAddrIndex();
  pendingIndex_.reserve(std::min<std::size_t>(options_.maxPending, 1024));
}

FrameProcessor::~FrameProcessor() = default;

// DevAddr -> sessions, of the devices that have a session (every ABP device, OTAA once joined).
void FrameProcessor::rebuildAddrIndex() {
  byAddr_.clear();
  for (std::size_t i = 0; i < sessions_.size(); ++i) {
    if (hasSession(sessions_[i])) byAddr_.emplace_back(sessions_[i].spec.devAddr, i);
  }
  std::sort(byAddr_.begin(), byAddr_.end());
}

// An OTAA device's session: its DevAddr and keys; its counters start afresh (FCnt 0 after a join).
void FrameProcessor::setSession(Session& s, std::uint32_t devAddr, const SessionKeys& keys) {
  s.joined = true;
  s.spec.devAddr = devAddr;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08X", static_cast<unsigned>(devAddr));
  s.spec.devAddrHex = hex;
  s.spec.nwkSKey = keys.nwkSKey;
  s.spec.appSKey = keys.appSKey;
  s.keyCheck = crypto_->keyCheckValue(keys.nwkSKey).value_or(0);
  s.seen = false;
  s.lastFcnt = 0;
  s.lastAccepted = 0;
  s.persistedSeen = false;
  s.persistedFcnt = 0;
  s.lastFrameHash = 0;
  // Readings carry the DevAddr of the session they came in.
  auto sensor = std::make_shared<core::SensorSpec>(*s.spec.sensor);
  sensor->source.mutable_lorawan()->set_dev_addr(s.spec.devAddrHex);
  s.spec.sensor = std::move(sensor);
}

void FrameProcessor::reject(Reason r, Session* s) {
  ++counters_.rejected[static_cast<std::size_t>(r)];
  if (s == nullptr) return;
  ++s->rejected[static_cast<std::size_t>(r)];
  s->lastRejectReason = r;
  s->lastRejectedAt = lastWall_;
  // Until a frame is accepted, "no frame received yet" would contradict the count: say why.
  if (s->accepted == 0) s->lastError = reasonLabel(r);
}

void FrameProcessor::noteHeard(const DataFrame& f, const RxPacket& rx, std::uint64_t gatewayEui, WallTime wallNow) {
  HeardSignal sig;
  sig.rssi = rx.rssi;
  sig.snr = rx.lsnr;
  sig.frequency = rx.freq;
  sig.fcnt16 = f.fcnt16;
  sig.gatewayEui = gatewayEui;
  std::array<char, 16> fsk{};
  if (rx.lora) {
    sig.dataRate = rx.datr;
  } else {
    // "FSK50000" without a std::string (no allocation per frame).
    std::memcpy(fsk.data(), "FSK", 3);
    const auto end = std::to_chars(fsk.data() + 3, fsk.data() + fsk.size() - 1, rx.fskRate).ptr;
    sig.dataRate = std::string_view(fsk.data(), static_cast<std::size_t>(end - fsk.data()));
  }
  heard_.heard(f.devAddr, sig, wallNow);
}

FrameProcessor::Pending* FrameProcessor::findPending(std::uint64_t hash, std::span<const std::uint8_t> phy) {
  const auto it = pendingIndex_.find(hash);
  if (it == pendingIndex_.end() || it->second < pendingBase_) return nullptr;
  Pending& p = pending_[static_cast<std::size_t>(it->second - pendingBase_)];
  if (p.len != phy.size() || std::memcmp(p.phy.data(), phy.data(), phy.size()) != 0) return nullptr;
  return &p;
}

FrameProcessor::Verdict FrameProcessor::verify(Session& s, const DataFrame& f, std::uint64_t hash,
                                               std::uint32_t& fcntOut) {
  auto micOk = [&](std::uint32_t fcnt) -> std::optional<bool> {
    const auto mic = crypto_->dataMic(s.spec.nwkSKey, Dir::Up, f.devAddr, fcnt, f.micInput);
    if (!mic) return std::nullopt;
    return *mic == f.mic;
  };
  if (!s.seen) {
    // No counter known yet (a new device, or state lost): the 16 bits are the counter.
    const auto ok = micOk(f.fcnt16);
    if (!ok) return Verdict::CryptoError;
    fcntOut = f.fcnt16;
    return *ok ? Verdict::Accept : Verdict::MicFailed;
  }
  const std::uint32_t next = s.lastFcnt + 1;
  const std::uint32_t full = fullFcnt(next, f.fcnt16);
  fcntOut = full;
  const auto ok = micOk(full);
  if (!ok) return Verdict::CryptoError;
  if (*ok) {
    if (full == s.lastFcnt) {
      if (hash == s.lastFrameHash) return Verdict::Retransmission;
      return full > s.lastAccepted ? Verdict::BelowResumeMargin : Verdict::Replay;
    }
    if (full - next > options_.maxFcntGap) return Verdict::Gap;
    if (s.lastFcnt == 0xFFFFFFFFU) return Verdict::Replay;  // the counter space is exhausted
    return Verdict::Accept;
  }
  // An older frame: the most recent counter at or below the last accepted with these 16 bits.
  std::uint32_t old = (s.lastFcnt & 0xFFFF0000U) | f.fcnt16;
  bool haveOld = true;
  if (old > s.lastFcnt) {
    if (s.lastFcnt >= 0x10000U) {
      old -= 0x10000U;
    } else {
      haveOld = false;
    }
  }
  if (haveOld && old != full) {
    const auto okOld = micOk(old);
    if (!okOld) return Verdict::CryptoError;
    if (*okOld) {
      fcntOut = old;
      // relax_fcnt: a counter that went back to a small value is a device restart.
      if (s.spec.relaxFcnt && old == f.fcnt16) return Verdict::AcceptReset;
      // Above the last accepted counter, at or below the floor: the resume margin of an unclean
      // stop, not a replay of a frame known to be accepted.
      return old > s.lastAccepted ? Verdict::BelowResumeMargin : Verdict::Replay;
    }
  }
  const bool triedRaw = f.fcnt16 == full || (haveOld && old == f.fcnt16);
  if (s.spec.relaxFcnt && !triedRaw) {
    // relax_fcnt: an ABP device that restarted its counter (a deliberate replay hole).
    const auto okReset = micOk(f.fcnt16);
    if (!okReset) return Verdict::CryptoError;
    if (*okReset) {
      fcntOut = f.fcnt16;
      return Verdict::AcceptReset;
    }
  }
  return Verdict::MicFailed;
}

// Another reception of a frame (or join-request) already accepted: keep the best signal, count it.
void FrameProcessor::mergeDuplicate(Pending& p, const RxPacket& rx, std::uint64_t gatewayEui) {
  ++counters_.duplicates;
  auto& meta = *p.sample.lora;
  ++meta.receptions;
  if (!p.flushed && (rx.rssi > meta.rssi || (rx.rssi == meta.rssi && rx.lsnr > meta.snr))) {
    meta.rssi = rx.rssi;
    meta.snr = rx.lsnr;
    meta.frequency = rx.freq;
    meta.dataRate = rx.lora ? std::string(rx.datr) : "FSK" + std::to_string(rx.fskRate);
    meta.gatewayEui = formatEui(gatewayEui);
    if (uplinkHook_) setReception(p.uplink, rx, gatewayEui);
  }
}

// The dedup entry of an authentic frame: later copies merge into it until its TTL.
FrameProcessor::Pending& FrameProcessor::addPending(std::uint64_t hash, std::span<const std::uint8_t> phy,
                                                    std::size_t session, const RxPacket& rx, std::uint64_t gatewayEui,
                                                    SteadyTime now, WallTime wallNow) {
  makeRoom();
  Pending& p = pending_.emplace_back();
  const std::uint64_t seq = pendingBase_ + pending_.size() - 1;
  pendingIndex_[hash] = seq;
  p.hash = hash;
  p.len = static_cast<std::uint8_t>(phy.size());
  std::memcpy(p.phy.data(), phy.data(), phy.size());
  const auto ttl = std::max<SteadyClock::duration>(2 * options_.dedupWindow, std::chrono::milliseconds(200));
  p.flushAt = now + options_.dedupWindow;
  p.expiresAt = now + ttl;
  p.session = session;
  auto& meta = p.sample.lora.emplace();
  meta.rssi = rx.rssi;
  meta.snr = rx.lsnr;
  meta.frequency = rx.freq;
  meta.dataRate = rx.lora ? std::string(rx.datr) : "FSK" + std::to_string(rx.fskRate);
  meta.gatewayEui = formatEui(gatewayEui);
  meta.receptions = 1;
  p.sample.observedAt = wallNow;
  p.sample.periodStart = wallNow;
  if (uplinkHook_) {
    p.uplink.device = session;
    p.uplink.receivedAt = now;
    setReception(p.uplink, rx, gatewayEui);
  }
  return p;
}

std::optional<Reason> FrameProcessor::onJoinRequest(const RxPacket& rx, std::span<const std::uint8_t> phy,
                                                    std::uint64_t gatewayEui, SteadyTime now, WallTime wallNow) {
  JoinRequest jr;
  switch (parseJoinRequest(phy, jr)) {
    case JoinParseError::None:
      break;
    case JoinParseError::BadMajor:
      reject(Reason::BadMajor, nullptr);
      return Reason::BadMajor;
    case JoinParseError::BadLength:
    case JoinParseError::NotJoinRequest:
      reject(Reason::TruncatedFrame, nullptr);
      return Reason::TruncatedFrame;
  }
  const std::uint64_t hash = frameHash(phy);
  if (Pending* p = findPending(hash, phy)) {
    mergeDuplicate(*p, rx, gatewayEui);  // the same join-request heard again within the dedup TTL
    return std::nullopt;
  }
  const auto it = std::find_if(sessions_.begin(), sessions_.end(),
                               [&](const Session& c) { return c.spec.otaa && c.spec.devEuiValue == jr.devEui; });
  if (it == sessions_.end() || !options_.join) {
    reject(Reason::JoinUnknownDevEui, nullptr);
    return Reason::JoinUnknownDevEui;
  }
  Session& s = *it;
  if (s.spec.joinEui && *s.spec.joinEui != jr.joinEui) {
    reject(Reason::JoinEuiMismatch, &s);
    return Reason::JoinEuiMismatch;
  }
  const auto mic = crypto_->joinRequestMic(s.spec.appKey, jr.micInput);
  if (!mic) {
    reject(Reason::CryptoError, &s);
    return Reason::CryptoError;
  }
  if (*mic != jr.mic) {
    reject(Reason::JoinMicFailed, &s);
    return Reason::JoinMicFailed;
  }
  if (std::find(s.usedNonces.begin(), s.usedNonces.end(), jr.devNonce) != s.usedNonces.end()) {
    reject(Reason::JoinDevNonceReplay, &s);
    return Reason::JoinDevNonceReplay;
  }
  const JoinSpec& js = *options_.join;
  std::vector<std::uint32_t> taken;
  taken.reserve(byAddr_.size());
  for (const auto& [addr, index] : byAddr_) {
    if (&sessions_[index] != &s) taken.push_back(addr);
  }
  const auto addr = allocateDevAddr(js.devAddrFirst, js.devAddrLast,
                                    s.joined ? std::optional<std::uint32_t>(s.spec.devAddr) : std::nullopt, taken);
  if (!addr) {
    reject(Reason::JoinNoDevAddr, &s);
    return Reason::JoinNoDevAddr;
  }
  const std::uint32_t joinNonce = nextJoinNonce_;
  const auto keys = deriveSessionKeys(*crypto_, s.spec.appKey, joinNonce, js.netId, jr.devNonce);
  JoinAcceptFields fields;
  fields.joinNonce = joinNonce;
  fields.netId = js.netId;
  fields.devAddr = *addr;
  fields.rx1DrOffset = js.rx1DrOffset;
  fields.rx2DataRate = js.rx2DataRate;
  fields.rxDelay = js.rxDelay;
  fields.cflist = js.cflist;
  auto accept = keys ? buildJoinAccept(*crypto_, s.spec.appKey, fields) : std::nullopt;
  if (!accept) {
    reject(Reason::CryptoError, &s);
    return Reason::CryptoError;
  }
  nextJoinNonce_ = (joinNonce + 1) & 0xFFFFFFU;  // 16.7 million joins before a JoinNonce comes back
  setSession(s, *addr, *keys);
  s.joinNonce = joinNonce;
  s.netId = js.netId;
  s.devNonce = jr.devNonce;
  s.usedNonces.push_back(jr.devNonce);
  if (s.usedNonces.size() > kMaxDevNonces) s.usedNonces.erase(s.usedNonces.begin());
  ++s.joins;
  s.lastJoinAt = wallNow;
  if (s.accepted == 0) s.lastError = "joined, no frame received yet";
  ++counters_.joinsAccepted;
  ++joinGen_;
  dirty_ = true;  // the frame counters' storage copy forgets the old session
  rebuildAddrIndex();
  const auto index = static_cast<std::size_t>(&s - sessions_.data());
  if (counterHook_) counterHook_(index);  // the RAM slot of the old session is emptied
  log_->info("[{}] joined (OTAA): DevAddr {}, JoinNonce {}, DevNonce {:04X}", s.spec.sensor->id, s.spec.devAddrHex,
             joinNonce, jr.devNonce);
  Pending& p = addPending(hash, phy, index, rx, gatewayEui, now, wallNow);
  if (uplinkHook_) {
    p.uplink.join = true;
    p.uplink.joinAccept = std::move(*accept);
    p.uplink.joinGeneration = joinGen_;
  }
  return std::nullopt;
}

std::optional<Reason> FrameProcessor::onRxpk(const RxPacket& rx, std::uint64_t gatewayEui, SteadyTime now,
                                             WallTime wallNow) {
  lastWall_ = wallNow;
  const auto phy = rx.phy();
  if (!phy.empty() && mtypeOf(phy[0]) == MType::JoinRequest) return onJoinRequest(rx, phy, gatewayEui, now, wallNow);
  DataFrame f;
  if (const PhyError e = parseDataFrame(phy, f); e != PhyError::None) {
    const Reason r = fromPhyError(e);
    reject(r, nullptr);
    return r;
  }
  const auto range = std::equal_range(byAddr_.begin(), byAddr_.end(), std::make_pair(f.devAddr, std::size_t{0}),
                                      [](const auto& a, const auto& b) { return a.first < b.first; });
  if (range.first == range.second) {
    reject(Reason::UnknownDevAddr, nullptr);
    noteHeard(f, rx, gatewayEui, wallNow);
    return Reason::UnknownDevAddr;
  }

  const std::uint64_t hash = frameHash(phy);
  if (Pending* p = findPending(hash, phy)) {
    mergeDuplicate(*p, rx, gatewayEui);
    return std::nullopt;
  }

  // Every session with this DevAddr: the one whose MIC verifies is the sender.
  Session* blamed = nullptr;
  Reason blame = Reason::MicFailed;
  Session* accepted = nullptr;
  std::uint32_t fcnt = 0;
  bool reset = false;
  const auto candidates = static_cast<std::size_t>(range.second - range.first);
  for (auto it = range.first; it != range.second && accepted == nullptr; ++it) {
    Session& s = sessions_[it->second];
    std::uint32_t fc = 0;
    switch (verify(s, f, hash, fc)) {
      case Verdict::Accept:
        accepted = &s;
        fcnt = fc;
        break;
      case Verdict::AcceptReset:
        accepted = &s;
        fcnt = fc;
        reset = true;
        break;
      case Verdict::Replay:
        blamed = &s;
        blame = Reason::Replay;
        break;
      case Verdict::BelowResumeMargin:
        blamed = &s;
        blame = Reason::FcntBelowResumeMargin;
        break;
      case Verdict::Retransmission:
        blamed = &s;
        blame = Reason::Retransmission;
        break;
      case Verdict::Gap:
        blamed = &s;
        blame = Reason::FcntGap;
        break;
      case Verdict::CryptoError:
        reject(Reason::CryptoError, &s);
        return Reason::CryptoError;
      case Verdict::MicFailed:
        break;
    }
  }
  if (accepted == nullptr) {
    if (blamed == nullptr && candidates == 1) blamed = &sessions_[range.first->second];
    reject(blame, blamed);
    if (blame == Reason::Retransmission && blamed != nullptr && f.mtype == MType::ConfirmedDataUp && uplinkHook_) {
      // The node did not hear our ACK and sent the frame again: ACK it again (never a second
      // reading). Its copies merge into this entry like a frame's.
      const auto index = static_cast<std::size_t>(blamed - sessions_.data());
      Pending& p = addPending(hash, phy, index, rx, gatewayEui, now, wallNow);
      p.sample.lora->fCnt = blamed->lastAccepted;
      p.uplink.confirmed = true;
      p.uplink.ackBit = f.ack();
      ++counters_.retransmissionsAcked;
    }
    return blame;
  }

  Session& s = *accepted;
  if (reset) {
    ++counters_.fcntResets;
    log_->warn("[{}] frame counter restarted at {} (relax_fcnt)", s.spec.sensor->id, fcnt);
  }
  s.seen = true;
  s.lastFcnt = fcnt;
  s.lastAccepted = fcnt;
  s.lastFrameHash = hash;
  s.lastRssi = rx.rssi;
  s.lastSnr = rx.lsnr;
  s.lastOkAt = wallNow;
  ++s.accepted;
  // The first frame ends "no frame received yet" or the rejection that stood in for it, also when
  // it carries no payload (FPort 0).
  if (s.accepted == 1) s.lastError = {};
  ++counters_.framesAccepted;
  dirty_ = true;
  if (!s.persistedSeen || fcnt - s.persistedFcnt > options_.resumeMargin || fcnt < s.persistedFcnt) urgent_ = true;
  // The RAM copy first: no reading of this frame exists before its counter is there.
  if (counterHook_) counterHook_(static_cast<std::size_t>(&s - sessions_.data()));

  // The dedup entry exists for every authentic frame, with or without a reading, so that late
  // copies are merged rather than rejected as retransmissions.
  Pending& p =
      addPending(hash, phy, static_cast<std::size_t>(accepted - sessions_.data()), rx, gatewayEui, now, wallNow);
  auto& meta = *p.sample.lora;
  meta.fCnt = fcnt;
  meta.fPort = f.hasPort ? f.fport : 0;
  const UplinkMac mac = parseUplinkMac(f.fopts);
  if (mac.devStatusAns) {
    s.devStatus = true;
    s.devStatusAt = wallNow;
    s.battery = mac.battery;
    s.margin = mac.devStatusMargin;
  }
  if (uplinkHook_) {
    p.uplink.confirmed = f.mtype == MType::ConfirmedDataUp;
    p.uplink.ackBit = f.ack();
    p.uplink.mac = mac;
  }

  if (!f.hasPort || f.fport == 0) return std::nullopt;  // MAC commands only: nothing to publish
  const std::span<std::uint8_t> plain(scratch_.data(), f.frmPayload.size());
  if (!crypto_->cryptPayload(s.spec.appSKey, Dir::Up, f.devAddr, fcnt, f.frmPayload, plain)) {
    reject(Reason::CryptoError, &s);
    return Reason::CryptoError;
  }
  const core::SensorSpec& sensor = *s.spec.sensor;
  p.sample.values.assign(sensor.points.size(), core::RawValue{0.0, core::RawValue::State::Skip});
  const DecodeResult d = s.spec.codec->decode(f.fport, plain, p.sample.values);
  std::fill(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(plain.size()), 0);
  switch (d.status) {
    case DecodeStatus::Reading: {
      const bool any = std::any_of(p.sample.values.begin(), p.sample.values.end(),
                                   [](const core::RawValue& v) { return v.state != core::RawValue::State::Skip; });
      p.hasReading = any;
      if (d.period.count() > 0) p.sample.periodStart = wallNow - d.period;
      s.lastError = {};
      return std::nullopt;
    }
    case DecodeStatus::NoReading:
      p.sample.values.clear();
      s.lastError = {};
      return std::nullopt;
    case DecodeStatus::UnknownPort:
      p.sample.values.clear();
      s.lastError = "unknown port";
      reject(Reason::UnknownPort, &s);
      return Reason::UnknownPort;
    case DecodeStatus::Malformed:
      break;
  }
  p.sample.values.clear();
  s.lastError = d.detail;
  reject(Reason::CodecError, &s);
  log_->debug("[{}] FCnt {} FPort {}: {}", sensor.id, fcnt, f.fport, d.detail);
  return Reason::CodecError;
}

void FrameProcessor::publish(Pending& p) {
  p.flushed = true;
  if (uplinkHook_) uplinkHook_(p.uplink);
  if (!p.hasReading) return;
  Session& s = sessions_[p.session];
  ++s.readings;
  ++counters_.readings;
  core::RawSample sample = std::move(p.sample);
  p.sample = core::RawSample{};
  p.sample.lora = sample.lora;  // later copies still count receptions
  submit_(*s.spec.sensor, s.memory, std::move(sample));
}

void FrameProcessor::makeRoom() {
  while (pending_.size() >= options_.maxPending && !pending_.empty()) {
    Pending& front = pending_.front();
    if (!front.flushed) {
      ++counters_.evicted;
      publish(front);
      ++flushCursor_;
    }
    const auto it = pendingIndex_.find(front.hash);
    if (it != pendingIndex_.end() && it->second == pendingBase_) pendingIndex_.erase(it);
    pending_.pop_front();
    ++pendingBase_;
    flushCursor_ = std::max(flushCursor_, pendingBase_);
  }
}

void FrameProcessor::flushDue(SteadyTime now) {
  while (flushCursor_ < pendingBase_ + pending_.size()) {
    Pending& p = pending_[static_cast<std::size_t>(flushCursor_ - pendingBase_)];
    if (p.flushAt > now) break;
    if (!p.flushed) publish(p);
    ++flushCursor_;
  }
  while (!pending_.empty() && pending_.front().flushed && pending_.front().expiresAt <= now) {
    const auto it = pendingIndex_.find(pending_.front().hash);
    if (it != pendingIndex_.end() && it->second == pendingBase_) pendingIndex_.erase(it);
    pending_.pop_front();
    ++pendingBase_;
  }
}

void FrameProcessor::flushAll() {
  for (auto& p : pending_) {
    if (!p.flushed) publish(p);
  }
  flushCursor_ = pendingBase_ + pending_.size();
}

std::optional<SteadyTime> FrameProcessor::nextDeadline() const {
  std::optional<SteadyTime> t;
  if (flushCursor_ < pendingBase_ + pending_.size()) {
    t = pending_[static_cast<std::size_t>(flushCursor_ - pendingBase_)].flushAt;
  }
  if (!pending_.empty() && pending_.front().flushed) {
    const SteadyTime e = pending_.front().expiresAt;
    if (!t || e < *t) t = e;
  }
  return t;
}

FrameProcessor::Restored FrameProcessor::restore(const FcntState* storage, const FcntRam* ram) {
  Restored out;
  auto find = [](const std::vector<FcntRecord>& records, const Session& s) -> const FcntRecord* {
    for (const auto& r : records) {
      if (r.id == s.spec.sensor->id) return &r;
    }
    return nullptr;
  };
  for (auto& s : sessions_) {
    const FcntRecord* d = storage != nullptr ? find(storage->records, s) : nullptr;
    const FcntRecord* m = ram != nullptr ? find(ram->records, s) : nullptr;
    auto matches = [&](const FcntRecord* r) {
      if (r == nullptr) return false;
      if (s.spec.devAddr == r->devAddr && s.keyCheck == r->keyCheck) return true;
      log_->info("[{}] DevAddr or keys changed since the counter was stored: the counter starts afresh", r->id);
      return false;
    };
    if (!matches(d)) d = nullptr;
    if (m != nullptr && !(s.spec.devAddr == m->devAddr && s.keyCheck == m->keyCheck)) m = nullptr;
    // A RAM slot older than the storage copy (its writes failed while the storage's went on) is
    // not the newest knowledge: the storage copy's rule applies.
    if (m != nullptr && d != nullptr && (m->lastFcnt < d->lastFcnt || m->floorFcnt < d->floorFcnt)) m = nullptr;
    if (m != nullptr) {
      s.seen = true;
      s.lastAccepted = m->lastFcnt;
      s.lastFcnt = std::max(m->floorFcnt, m->lastFcnt);
      ++out.exactFromRam;
    } else if (d != nullptr) {
      s.seen = true;
      s.lastAccepted = d->lastFcnt;
      const std::uint32_t floor = std::max(d->floorFcnt, d->lastFcnt);
      if (storage->clean) {
        s.lastFcnt = floor;
        ++out.exactFromStorage;
      } else {
        // A power cut (or a lost RAM copy): up to `margin` frames after the durable <last> may have
        // been accepted. Counted from <last>, never from <floor>: the margin does not compound.
        const std::uint64_t resumed =
            std::min<std::uint64_t>(std::uint64_t{d->lastFcnt} + options_.resumeMargin, 0xFFFFFFFFULL);
        s.lastFcnt = std::max<std::uint32_t>(floor, static_cast<std::uint32_t>(resumed));
        ++out.withMargin;
      }
    }
    if (d != nullptr) {
      // What the storage says now is what a power cut would find: the margin is counted from it.
      s.persistedSeen = true;
      s.persistedFcnt = d->lastFcnt;
    }
  }
  dirty_ = true;  // the storage copy is rewritten at once as "clean 0" (unless it says so already)
  urgent_ = true;
  return out;
}

FcntState FrameProcessor::snapshot(bool clean) const {
  FcntState st;
  st.clean = clean;
  for (const auto& s : sessions_) {
    if (!s.seen) continue;
    st.records.push_back(FcntRecord{s.spec.sensor->id, s.spec.devAddr, s.keyCheck, s.lastAccepted, s.lastFcnt});
  }
  return st;
}

FcntSlotView FrameProcessor::slotView(std::size_t index) const {
  const Session& s = sessions_[index];
  if (!s.seen) return {};
  return FcntSlotView{s.spec.sensor->id, s.spec.devAddr, s.keyCheck, s.lastAccepted, s.lastFcnt};
}

void FrameProcessor::markPersisted(const FcntState& written) {
  dirty_ = false;
  urgent_ = false;
  for (auto& s : sessions_) {
    if (!s.seen) continue;
    for (const auto& r : written.records) {
      if (r.id != s.spec.sensor->id || r.devAddr != s.spec.devAddr) continue;
      s.persistedSeen = true;
      s.persistedFcnt = r.lastFcnt;
      break;
    }
    // Accepted while the snapshot was being written: still to write, and at once if it ran
    // the margin ahead (the rule of accept()).
    if (!s.persistedSeen || s.lastAccepted != s.persistedFcnt) dirty_ = true;
    if (!s.persistedSeen || s.lastAccepted - s.persistedFcnt > options_.resumeMargin ||
        s.lastAccepted < s.persistedFcnt) {
      urgent_ = true;
    }
  }
}

void FrameProcessor::fillHealth(google::protobuf::RepeatedPtrField<pb::DeviceHealth>& out) const {
  for (const auto& s : sessions_) {
    pb::DeviceHealth& h = *out.Add();
    h.set_sensor_id(s.spec.sensor->id);
    h.set_bus("lora");
    if (s.accepted == 0) {
      h.set_state(pb::DOWN);
    } else {
      h.set_state(s.lastError.empty() ? pb::OK : pb::DEGRADED);
      toTimestamp(s.lastOkAt, h.mutable_last_ok_at());
    }
    h.set_last_error(std::string(s.lastError));
    h.set_readings(s.readings);
    h.set_last_f_cnt(s.lastAccepted);
    h.set_last_rssi(s.lastRssi);
    h.set_last_snr(s.lastSnr);
    h.set_frames_accepted(s.accepted);
    h.set_f_cnt_floor(s.lastFcnt);
    if (s.lastRejectReason) {
      toTimestamp(s.lastRejectedAt, h.mutable_last_rejected_at());
      h.set_last_rejected_reason(std::string(reasonName(*s.lastRejectReason)));
    }
    std::uint64_t rejected = 0;
    for (std::size_t i = 0; i < kReasonCount; ++i) {
      if (s.rejected[i] == 0) continue;
      (*h.mutable_frames_rejected())[std::string(kReasonNames[i])] = s.rejected[i];
      rejected += s.rejected[i];
    }
    h.set_polls_ok(s.accepted);
    h.set_polls_failed(rejected);
    if (hasSession(s)) h.set_dev_addr(s.spec.devAddrHex);
    if (s.spec.otaa) {
      h.set_joined(s.joined);
      h.set_joins_accepted(s.joins);
      if (s.joins > 0) toTimestamp(s.lastJoinAt, h.mutable_last_join_at());
    }
    if (s.devStatus) {
      toTimestamp(s.devStatusAt, h.mutable_dev_status_at());
      h.set_battery(s.battery);
      h.set_margin(s.margin);
    }
  }
}

FrameProcessor::JoinsRestored FrameProcessor::restoreJoins(const OtaaState& state) {
  JoinsRestored out;
  nextJoinNonce_ = state.nextJoinNonce & 0xFFFFFFU;
  for (const auto& r : state.records) {
    const auto it = std::find_if(sessions_.begin(), sessions_.end(),
                                 [&](const Session& c) { return c.spec.otaa && c.spec.sensor->id == r.id; });
    if (it == sessions_.end() || it->spec.devEuiValue != r.devEui || it->appKeyCheck != r.appKeyCheck) {
      ++out.void_;
      log_->info("[{}] OTAA session not resumed (the device is gone, or its DevEUI or AppKey changed): it joins again",
                 r.id);
      continue;
    }
    Session& s = *it;
    const auto keys = deriveSessionKeys(*crypto_, s.spec.appKey, r.joinNonce, r.netId, r.devNonce);
    if (!keys) {
      ++out.void_;
      continue;
    }
    setSession(s, r.devAddr, *keys);
    s.joinNonce = r.joinNonce;
    s.netId = r.netId;
    s.devNonce = r.devNonce;
    s.usedNonces = r.usedNonces;
    if (s.accepted == 0) s.lastError = "joined, no frame received yet";
    ++out.sessions;
  }
  rebuildAddrIndex();
  return out;
}

OtaaState FrameProcessor::joinSnapshot() const {
  OtaaState st;
  st.nextJoinNonce = nextJoinNonce_;
  for (const auto& s : sessions_) {
    if (!s.spec.otaa || !s.joined) continue;
    st.records.push_back(OtaaRecord{s.spec.sensor->id, s.spec.devEuiValue, s.appKeyCheck, s.spec.devAddr, s.joinNonce,
                                    s.netId, s.devNonce, s.usedNonces});
  }
  return st;
}

}  // namespace citygate::lora
