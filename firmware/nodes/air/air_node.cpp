#include "nodes/air/air_node.hpp"

#include <string.h>

#include "citygate/v1/node_format.hpp"

namespace citygate::fw::air {

namespace nf = citygate::node_format;

namespace {

constexpr uint32_t kRetryMs = 10;      // SHT3x: the next read after a NACK (still measuring)
constexpr uint8_t kShtTries = 10;      // 16 ms + 10 x 10 ms
constexpr uint32_t kSpsRetryMs = 100;  // SPS30: data not ready yet
constexpr uint8_t kSpsTries = 12;      // 1.2 s: the SPS30 measures every second
constexpr uint32_t kMaxIntervalS = 86400;
// The provisioning rule (core/provisioning.hpp); well below the gateway's max_fcnt_gap (16384),
// so a node that skipped a whole margin after a power cut is still accepted.
constexpr uint32_t kMaxFcntMargin = 10000;

constexpr uint32_t kJoinAcceptDelayMs = 5000;  // JOIN_ACCEPT_DELAY1; RX2 a second later
constexpr uint32_t kRx2AfterRx1Ms = 1000;
constexpr uint32_t kJoinBackoffMs = 15000;  // the first retry; doubled up to kJoinBackoffMaxMs
constexpr uint32_t kJoinBackoffMaxMs = 3600000;
constexpr uint32_t kAckTimeoutMs = 2000;  // ACK_TIMEOUT 2 s +- 1 s (spread by the counter)

bool due(uint32_t now, uint32_t at) {
  return static_cast<int32_t>(now - at) >= 0;
}

uint32_t until(uint32_t now, uint32_t at) {
  return due(now, at) ? 0 : at - now;
}

}  // namespace

const char* validate(const AirConfig& c) {
  static constexpr uint8_t kZero[kKeyBytes] = {};
  if (c.otaa) {
    if (memcmp(c.appKey, kZero, kKeyBytes) == 0) return "the AppKey is not set";
  } else {
    if (c.devAddr == 0) return "the DevAddr is not set";
    if (memcmp(c.nwkSKey, kZero, kKeyBytes) == 0) return "the NwkSKey is not set";
    if (memcmp(c.appSKey, kZero, kKeyBytes) == 0) return "the AppSKey is not set";
  }
  if (c.confirmedEvery > 100) return "confirmed uplinks: every 0..100";
  if (c.confirmedTries == 0 || c.confirmedTries > 8) return "a confirmed uplink is sent 1..8 times";
  if (c.intervalS == 0 || c.intervalS > kMaxIntervalS) return "the interval must be 1..86400 s";
  if (c.fcntMargin == 0 || c.fcntMargin > kMaxFcntMargin) return "the FCnt resume margin must be 1..10000";
  if (c.spreadingFactor < 7 || c.spreadingFactor > 12) return "the spreading factor must be 7..12";
  return nullptr;
}

AirNode::AirNode(hal::Clock& clock, hal::Radio& radio, hal::I2c& i2c, hal::Flash& flash)
    : clock_(clock), radio_(radio), sps30_(i2c), sht3x_(i2c), store_(flash, 16), joins_(flash) {}

const char* AirNode::start(const AirConfig& config, Observer* observer) {
  state_ = State::Stopped;
  if (const char* why = validate(config)) return why;
  config_ = config;
  observer_ = observer;
  joined_ = false;
  haveFcntDown_ = ackNext_ = devStatusNext_ = false;
  rxDelayS_ = 1;
  memset(cfChannels_, 0, sizeof cfChannels_);
  store_.setMargin(config_.fcntMargin);
  if (!store_.start()) return "the flash cannot hold the frame counter (sectors 2..5 unreadable or too small)";
  if (config_.otaa) {
    if (!joins_.start()) return "the flash cannot hold the OTAA state (sectors 6, 7 unreadable or too small)";
    if (!identityOf(config_.appKey, config_.devEui, config_.joinEui, identity_)) return "Mbed TLS failed (CMAC)";
    const OtaaSession& s = joins_.session();
    if (s.valid && s.identity != identity_) ++stats_.sessionsDropped;  // another device's session: join again
    if (s.valid && s.identity == identity_) {  // the session of the last join: a reset does not join again
      if (!session_.init(s.nwkSKey, s.appSKey)) return "Mbed TLS could not set the session keys";
      adopt(s);
    }
  } else {
    if (!session_.init(config_.nwkSKey, config_.appSKey)) return "Mbed TLS could not set the session keys";
    devAddr_ = config_.devAddr;
    joined_ = true;
  }
  spsStarted_ = sps30_.start() == SensorStatus::Ok;  // retried before each measurement when absent
  dueMs_ = clock_.nowMs() + config_.firstUplinkMs;
  state_ = State::Idle;
  return nullptr;
}

uint8_t AirNode::channelCount() const {
  uint8_t n = 3;
  for (uint32_t f : cfChannels_) n = static_cast<uint8_t>(n + (f != 0 ? 1 : 0));
  return n;
}

uint32_t AirNode::channel(uint32_t index) const {
  uint32_t i = index % channelCount();
  if (i < 3) return kEu868Channels[i];
  i -= 3;
  for (uint32_t f : cfChannels_) {
    if (f != 0 && i-- == 0) return f;
  }
  return kEu868Channels[0];
}

void AirNode::refuse(RxError why) {
  ++stats_.refused[static_cast<size_t>(why)];
  if (observer_) observer_->onRefused(why);
}

void AirNode::adopt(const OtaaSession& s) {
  devAddr_ = s.devAddr;
  rxDelayS_ = s.rxDelay;
  for (int i = 0; i < 5; ++i) {
    const uint8_t* f = s.cfList + 3 * i;
    cfChannels_[i] =
        (static_cast<uint32_t>(f[0]) | static_cast<uint32_t>(f[1]) << 8 | static_cast<uint32_t>(f[2]) << 16) * 100u;
  }
  joined_ = true;
}

void AirNode::sendJoin(uint32_t now) {
  Modulation mod;
  mod.spreadingFactor = config_.spreadingFactor;
  const uint32_t toaUs = timeOnAirUs(mod, kJoinRequestBytes);
  if (!duty_.allows(now)) {
    ++stats_.dutyWaits;
    dueMs_ = now + duty_.waitMs(now);
    return;
  }
  state_ = State::Idle;
  const uint32_t backoff = joinTries_ >= 8 ? kJoinBackoffMaxMs : kJoinBackoffMs << joinTries_;
  dueMs_ = now + (backoff < kJoinBackoffMaxMs ? backoff : kJoinBackoffMaxMs);  // if this attempt fails
  ++joinTries_;
  uint16_t nonce = 0;
  if (!joins_.takeDevNonce(nonce)) {
    ++stats_.devNonceFailures;
    return;
  }
  uint8_t frame[kJoinRequestBytes];
  if (!buildJoinRequest(config_.appKey, config_.joinEui, config_.devEui, nonce, frame)) {
    ++stats_.radioRefused;
    return;
  }
  hal::TxParams params{kEu868Channels[nonce % 3], config_.spreadingFactor, 125, config_.powerDbm, toaUs};
  if (!radio_.transmit(frame, sizeof frame, params)) {
    ++stats_.radioRefused;
    return;
  }
  devNonce_ = nonce;
  stats_.lastDevNonce = nonce;
  ++stats_.joinRequests;
  duty_.onTransmit(now, toaUs);
  if (observer_) observer_->onJoinRequest(nonce, params);
  listenAfter(now, toaUs, kJoinAcceptDelayMs, Awaiting::JoinAccept);
}

void AirNode::listenAfter(uint32_t now, uint32_t toaUs, uint32_t delayMs, Awaiting what) {
  awaiting_ = what;
  rx1Ms_ = now + (toaUs + 999) / 1000 + delayMs;
  rx2Ms_ = rx1Ms_ + kRx2AfterRx1Ms;
  state_ = State::Listening;
}

void AirNode::dataDone(uint32_t now, bool acked) {
  if (confirmed_) {
    if (acked) {
      ++stats_.acked;
    } else if (tries_ < config_.confirmedTries) {
      // Not acknowledged: the same frame (same counter) again after ACK_TIMEOUT, within the duty cycle.
      retransmit_ = true;
      state_ = State::Sending;
      dueMs_ = now + kAckTimeoutMs - 1000 + (frameFcnt_ * 397u) % 2000u;
      return;
    } else {
      ++stats_.unacked;
    }
    if (observer_) observer_->onConfirmed(frameFcnt_, acked, tries_);
  }
  confirmed_ = false;
  retransmit_ = false;
  state_ = State::Idle;
  dueMs_ = due(now, nextMeasureMs_) ? now : nextMeasureMs_;
}

void AirNode::windowsClosed(uint32_t now) {
  if (awaiting_ == Awaiting::JoinAccept) {
    ++stats_.joinTimeouts;
    state_ = State::Idle;  // dueMs_: the backoff sendJoin() set
    if (due(now, dueMs_)) dueMs_ = now;
    return;
  }
  dataDone(now, false);
}

void AirNode::onFrame(const uint8_t* frame, size_t size, uint32_t now) {
  const bool inRx1 = due(now, rx1Ms_) && !due(now, rx1Ms_ + config_.rxWindowMs);
  const bool inRx2 = due(now, rx2Ms_) && !due(now, rx2Ms_ + config_.rxWindowMs);
  if (state_ != State::Listening || !(inRx1 || inRx2)) {
    ++stats_.outsideWindow;
    return;
  }
  if (awaiting_ == Awaiting::JoinAccept) {
    JoinAccept a;
    const RxError e = parseJoinAccept(config_.appKey, devNonce_, frame, size, a);
    if (e != RxError::None) return refuse(e);
    OtaaSession s;
    s.valid = true;
    s.devAddr = a.devAddr;
    s.fcntBase = store_.next();  // FCntUp 0 for the new session
    s.identity = identity_;
    s.dlSettings = a.dlSettings;
    s.rxDelay = a.rxDelay;
    memcpy(s.nwkSKey, a.nwkSKey, kKeyBytes);
    memcpy(s.appSKey, a.appSKey, kKeyBytes);
    if (a.hasCfList && a.cfList[15] == 0) memcpy(s.cfList, a.cfList, 15);  // CFListType 0: frequencies
    if (!session_.init(s.nwkSKey, s.appSKey)) return refuse(RxError::Crypto);
    if (!joins_.saveSession(s)) ++stats_.sessionSaveErrors;  // runs anyway; a reset joins again
    memset(a.nwkSKey, 0, kKeyBytes);
    memset(a.appSKey, 0, kKeyBytes);
    adopt(s);
    memset(s.nwkSKey, 0, kKeyBytes);
    memset(s.appSKey, 0, kKeyBytes);
    joinTries_ = 0;
    haveFcntDown_ = ackNext_ = devStatusNext_ = false;
    ++stats_.joinAccepts;
    if (observer_) observer_->onJoined(devAddr_, devNonce_, rxDelayS_, a.hasCfList);
    state_ = State::Idle;
    dueMs_ = now;  // the first uplink of the session (the duty cycle may make it wait)
    return;
  }
  Downlink d;
  const RxError e = parseDownlink(session_, devAddr_, haveFcntDown_, fcntDown_, frame, size, d);
  if (e != RxError::None) return refuse(e);
  MacResult mac;
  const RxError m = parseMacCommands(d.fopts, d.foptsLen, mac);
  haveFcntDown_ = true;
  fcntDown_ = d.fcnt;
  stats_.lastFcntDown = d.fcnt;
  ++stats_.downlinksAccepted;
  if (m != RxError::None) refuse(m);  // the commands before it were read
  if (mac.linkCheck) {
    ++stats_.linkChecks;
    stats_.linkMargin = mac.margin;
    stats_.linkGateways = mac.gatewayCount;
  }
  if (mac.devStatus) devStatusNext_ = true;
  if (d.confirmed) ackNext_ = true;
  if (observer_) observer_->onDownlink(d);
  // Class A: a frame in RX1 closes both windows.
  dataDone(now, d.ack);
}

void AirNode::beginMeasurement(uint32_t now) {
  if (!spsStarted_) spsStarted_ = sps30_.start() == SensorStatus::Ok;
  shtOk_ = spsOk_ = false;
  shtDone_ = sht3x_.trigger() != SensorStatus::Ok;  // a NACK: nothing to fetch, T/RH faulty
  spsDone_ = !spsStarted_;
  shtTries_ = spsTries_ = 0;
  state_ = State::Measuring;
  dueMs_ = now + (shtDone_ ? 0 : Sht3x::kMeasurementMs);
}

uint32_t AirNode::measure(uint32_t now) {
  uint32_t next = kSpsRetryMs;
  if (!shtDone_) {
    const SensorStatus s = sht3x_.fetch(sht_);
    if (s == SensorStatus::NotReady && ++shtTries_ < kShtTries) {
      next = kRetryMs;
    } else {
      if (s == SensorStatus::NotReady) sht3x_.noAnswer();
      shtOk_ = s == SensorStatus::Ok;
      shtDone_ = true;
    }
  }
  if (!spsDone_) {
    const SensorStatus s = sps30_.read(sps_);
    if (s == SensorStatus::NotReady && ++spsTries_ < kSpsTries) {
      if (shtDone_) next = kSpsRetryMs;
    } else {
      spsOk_ = s == SensorStatus::Ok;
      spsDone_ = true;
    }
  }
  if (!shtDone_ || !spsDone_) {
    dueMs_ = now + next;
    return next;
  }
  // The frame: PM1, PM2.5, PM4, PM10, temperature, humidity; a field whose sensor failed is sent
  // as its fault value.
  nf::air::Frame frame;
  using F = nf::air::Field;
  if (spsOk_) {
    nf::air::set(frame, F::Pm1, sps_.pm1);
    nf::air::set(frame, F::Pm25, sps_.pm25);
    nf::air::set(frame, F::Pm4, sps_.pm4);
    nf::air::set(frame, F::Pm10, sps_.pm10);
  } else {
    static constexpr F kPm[] = {F::Pm1, F::Pm25, F::Pm4, F::Pm10};
    for (F f : kPm) nf::air::setFault(frame, f);
  }
  if (shtOk_) {
    nf::air::set(frame, F::Temperature, sht_.temperature);
    nf::air::set(frame, F::RelativeHumidity, sht_.humidity);
  } else {
    nf::air::setFault(frame, F::Temperature);
    nf::air::setFault(frame, F::RelativeHumidity);
  }
  const nf::Encoded e = nf::air::encode(frame, payload_, sizeof payload_);
  payloadSize_ = e.status == nf::Status::Ok ? e.size : 0;
  state_ = State::Sending;
  dueMs_ = now;
  return 0;
}

uint32_t AirNode::send(uint32_t now) {
  const uint32_t intervalMs = config_.intervalS * 1000u;
  if (retransmit_) {  // the confirmed frame again: same bytes, same counter
    if (!duty_.allows(now)) {
      ++stats_.dutyWaits;
      dueMs_ = now + duty_.waitMs(now);
      return duty_.waitMs(now);
    }
    ++tries_;  // a refused transmission counts as a try: the retries stay bounded
    if (!radio_.transmit(frame_, frameSize_, frameParams_)) {
      ++stats_.radioRefused;
      dataDone(now, false);
      return until(now, dueMs_);
    }
    ++stats_.retransmissions;
    duty_.onTransmit(now, frameToaUs_);
    if (observer_) observer_->onRetransmit(frameFcnt_, tries_);
    listenAfter(now, frameToaUs_, rxDelayS_ * 1000u, Awaiting::Data);
    return until(now, rx1Ms_);
  }
  // The FOpts of this uplink: DevStatusAns (battery 255: not measured, SNR margin 0).
  uint8_t fopts[3];
  uint8_t foptsLen = 0;
  if (devStatusNext_) {
    fopts[0] = 0x06;
    fopts[1] = 0xFF;
    fopts[2] = 0x00;
    foptsLen = 3;
  }
  Modulation mod;
  mod.spreadingFactor = config_.spreadingFactor;
  const size_t frameSize = kFrameOverhead + foptsLen + payloadSize_;
  const uint32_t toaUs = timeOnAirUs(mod, frameSize);
  if (!duty_.allows(now)) {
    ++stats_.dutyWaits;
    dueMs_ = now + duty_.waitMs(now);
    return duty_.waitMs(now);
  }
  state_ = State::Idle;
  dueMs_ = now + intervalMs;
  nextMeasureMs_ = dueMs_;
  uint32_t counter = 0;
  if (payloadSize_ == 0 || !store_.take(counter)) {
    ++stats_.fcntFailures;
    return intervalMs;
  }
  const uint32_t fcnt = config_.otaa ? counter - joins_.session().fcntBase : counter;
  const bool confirmed = config_.confirmedEvery != 0 && dataUplinks_ % config_.confirmedEvery == 0;
  Uplink up;
  up.devAddr = devAddr_;
  up.fcnt = fcnt;
  up.fport = nf::kPort;
  up.confirmed = confirmed;
  up.ack = ackNext_;
  up.fopts = fopts;
  up.foptsLen = foptsLen;
  const size_t size = buildUplink(session_, up, payload_, payloadSize_, frame_, sizeof frame_);
  hal::TxParams params{channel(fcnt), config_.spreadingFactor, 125, config_.powerDbm, toaUs};
  if (size == 0 || !radio_.transmit(frame_, size, params)) {
    ++stats_.radioRefused;
    return intervalMs;
  }
  ++dataUplinks_;
  ackNext_ = false;
  if (devStatusNext_) ++stats_.devStatusAnswers;
  devStatusNext_ = false;
  ++stats_.uplinks;
  stats_.lastFcnt = fcnt;
  stats_.lastToaUs = toaUs;
  duty_.onTransmit(now, toaUs);
  if (duty_.silenceMs() > intervalMs) {  // the interval stretched to 100 x the time on air
    ++stats_.stretched;
    nextMeasureMs_ = now + duty_.silenceMs();
  }
  frameSize_ = size;
  frameFcnt_ = fcnt;
  frameParams_ = params;
  frameToaUs_ = toaUs;
  confirmed_ = confirmed;
  retransmit_ = false;
  tries_ = 1;
  if (confirmed) ++stats_.confirmed;
  if (observer_) observer_->onUplink(frame_, size, fcnt, params, toaUs, payload_, payloadSize_);
  listenAfter(now, toaUs, rxDelayS_ * 1000u, Awaiting::Data);
  return until(now, rx1Ms_);
}

uint32_t AirNode::poll() {
  uint8_t rx[kMaxDownlink];
  for (size_t n; (n = radio_.receive(rx, sizeof rx)) > 0;) {
    ++stats_.downlinks;
    onFrame(rx, n, clock_.nowMs());
  }
  for (int step = 0; step < 4; ++step) {
    const uint32_t now = clock_.nowMs();
    if (state_ == State::Stopped) return 1000;
    if (state_ == State::Listening) {
      // RX1, then RX2; after RX2 closes without a frame: timeout.
      if (due(now, rx2Ms_ + config_.rxWindowMs)) {
        windowsClosed(now);
        continue;
      }
      if (!due(now, rx1Ms_)) return until(now, rx1Ms_);
      // An open window: a received frame wakes the port's idle() (the radio's interrupt, the shim's
      // socket); else the window's end.
      if (!due(now, rx1Ms_ + config_.rxWindowMs)) return until(now, rx1Ms_ + config_.rxWindowMs);
      if (!due(now, rx2Ms_)) return until(now, rx2Ms_);
      return until(now, rx2Ms_ + config_.rxWindowMs);
    }
    if (!due(now, dueMs_)) return until(now, dueMs_);
    switch (state_) {
      case State::Idle:
        if (!joined_) {
          sendJoin(now);
        } else {
          beginMeasurement(now);
        }
        break;
      case State::Measuring:
        measure(now);
        break;
      case State::Sending:
        send(now);
        break;
      case State::Listening:
      case State::Stopped:
        break;
    }
  }
  if (state_ == State::Listening) return 0;
  return until(clock_.nowMs(), dueMs_);
}

}  // namespace citygate::fw::air
