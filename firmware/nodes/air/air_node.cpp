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

bool due(uint32_t now, uint32_t at) {
  return static_cast<int32_t>(now - at) >= 0;
}

uint32_t until(uint32_t now, uint32_t at) {
  return due(now, at) ? 0 : at - now;
}

}  // namespace

const char* validate(const AirConfig& c) {
  if (c.devAddr == 0) return "the DevAddr is not set";
  static constexpr uint8_t kZero[kKeyBytes] = {};
  if (memcmp(c.nwkSKey, kZero, kKeyBytes) == 0) return "the NwkSKey is not set";
  if (memcmp(c.appSKey, kZero, kKeyBytes) == 0) return "the AppSKey is not set";
  if (c.intervalS == 0 || c.intervalS > kMaxIntervalS) return "the interval must be 1..86400 s";
  if (c.fcntMargin == 0 || c.fcntMargin > kMaxFcntMargin) return "the FCnt resume margin must be 1..10000";
  if (c.spreadingFactor < 7 || c.spreadingFactor > 12) return "the spreading factor must be 7..12";
  return nullptr;
}

AirNode::AirNode(hal::Clock& clock, hal::Radio& radio, hal::I2c& i2c, hal::Flash& flash)
    : clock_(clock), radio_(radio), sps30_(i2c), sht3x_(i2c), store_(flash, 16) {}

const char* AirNode::start(const AirConfig& config, Observer* observer) {
  state_ = State::Stopped;
  if (const char* why = validate(config)) return why;
  config_ = config;
  observer_ = observer;
  if (!session_.init(config_.nwkSKey, config_.appSKey)) return "Mbed TLS could not set the session keys";
  store_.setMargin(config_.fcntMargin);
  if (!store_.start()) return "the flash cannot hold the frame counter (sectors 2..5 unreadable or too small)";
  spsStarted_ = sps30_.start() == SensorStatus::Ok;  // retried before each measurement when absent
  dueMs_ = clock_.nowMs() + config_.firstUplinkMs;
  state_ = State::Idle;
  return nullptr;
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
  Modulation mod;
  mod.spreadingFactor = config_.spreadingFactor;
  const size_t frameSize = kFrameOverhead + payloadSize_;
  const uint32_t toaUs = timeOnAirUs(mod, frameSize);
  if (!duty_.allows(now)) {
    ++stats_.dutyWaits;
    dueMs_ = now + duty_.waitMs(now);
    return duty_.waitMs(now);
  }
  state_ = State::Idle;
  dueMs_ = now + intervalMs;
  uint32_t fcnt = 0;
  if (payloadSize_ == 0 || !store_.take(fcnt)) {
    ++stats_.fcntFailures;
    return intervalMs;
  }
  uint8_t frame[kMaxFrame];
  Uplink up;
  up.devAddr = config_.devAddr;
  up.fcnt = fcnt;
  up.fport = nf::kPort;
  const size_t size = buildUplink(session_, up, payload_, payloadSize_, frame, sizeof frame);
  hal::TxParams params{kEu868Channels[fcnt % 3], config_.spreadingFactor, 125, config_.powerDbm};
  if (size == 0 || !radio_.transmit(frame, size, params)) {
    ++stats_.radioRefused;
    return intervalMs;
  }
  ++stats_.uplinks;
  stats_.lastFcnt = fcnt;
  stats_.lastToaUs = toaUs;
  duty_.onTransmit(now, toaUs);
  if (duty_.silenceMs() > intervalMs) {  // the interval stretched to 100 x the time on air
    ++stats_.stretched;
    dueMs_ = now + duty_.silenceMs();
  }
  if (observer_) observer_->onUplink(frame, size, fcnt, params, toaUs, payload_, payloadSize_);
  return until(now, dueMs_);
}

uint32_t AirNode::poll() {
  uint8_t rx[kMaxFrame];
  while (radio_.receive(rx, sizeof rx) > 0) ++stats_.downlinks;  // no downlinks are expected
  for (int step = 0; step < 4; ++step) {
    const uint32_t now = clock_.nowMs();
    if (state_ == State::Stopped) return 1000;
    if (!due(now, dueMs_)) return until(now, dueMs_);
    switch (state_) {
      case State::Idle:
        beginMeasurement(now);
        break;
      case State::Measuring:
        measure(now);
        break;
      case State::Sending:
        send(now);
        break;
      case State::Stopped:
        break;
    }
  }
  return until(clock_.nowMs(), dueMs_);
}

}  // namespace citygate::fw::air
