// The air-quality node: every interval it measures PM (SPS30) and T/RH (SHT3x), encodes a
// citygate-air v1 frame (node_format.hpp) and sends it as a LoRaWAN 1.0.x class A uplink on
// FPort 1, within the EU868 1 % duty cycle, with a frame counter that a power cut never sends
// twice (FcntStore). ABP, or OTAA: the node joins first (JoinStore keeps the DevNonce and the
// session across power cuts). After every uplink it listens in RX1 and RX2; a confirmed uplink
// (every `confirmedEvery`th) that no ACK answers is sent again, the same frame, a bounded number
// of times. Hardware through hal.hpp only; the port's main loop calls poll() and sleeps for what
// it returns.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"
#include "nodes/air/duty_cycle.hpp"
#include "nodes/air/fcnt_store.hpp"
#include "nodes/air/join_store.hpp"
#include "nodes/air/lorawan.hpp"
#include "nodes/air/sensors.hpp"

namespace citygate::fw::air {

// The node's settings (the port maps citygate.v1.AirNodeSettings to it).
struct AirConfig {
  bool otaa = false;       // join with devEui / joinEui / appKey instead of the ABP session
  uint8_t devEui[8] = {};  // as displayed (MSB first)
  uint8_t joinEui[8] = {};
  uint8_t appKey[kKeyBytes] = {};
  uint32_t devAddr = 0;  // ABP
  uint8_t nwkSKey[kKeyBytes] = {};
  uint8_t appSKey[kKeyBytes] = {};
  uint32_t confirmedEvery = 0;    // 0: unconfirmed; N: every Nth uplink confirmed (the first is)
  uint8_t confirmedTries = 4;     // transmissions of a confirmed uplink without ACK (1..8)
  uint32_t rxWindowMs = 400;      // how long RX1 and RX2 stay open
  uint32_t intervalS = 300;       // stretched by the duty cycle
  uint32_t fcntMargin = 16;       // counters reserved per flash record (skipped at most after a power cut)
  uint8_t spreadingFactor = 7;    // 7..12 at 125 kHz
  int8_t powerDbm = 14;           // EU868: 14 dBm ERP
  uint32_t firstUplinkMs = 1500;  // after start (the SPS30 has its first values after 1 s)
};

// nullptr, or what is wrong with the settings (never mentions a key's value).
const char* validate(const AirConfig& config);

class AirNode {
 public:
  struct Stats {
    uint32_t uplinks = 0;       // frames handed to the radio
    uint32_t radioRefused = 0;  // transmit() returned false (the counter is not reused)
    uint32_t fcntFailures = 0;  // no counter could be reserved on the flash: uplink skipped
    uint32_t dutyWaits = 0;     // an uplink waited for the duty cycle
    uint32_t stretched = 0;     // intervals stretched to 100 x time on air
    uint32_t downlinks = 0;     // frames the radio gave (any)
    uint32_t lastFcnt = 0;      // the session's FCntUp of the last uplink
    uint32_t lastToaUs = 0;
    // OTAA
    uint32_t joinRequests = 0;
    uint32_t joinAccepts = 0;
    uint32_t joinTimeouts = 0;      // RX2 closed without a valid join-accept
    uint32_t devNonceFailures = 0;  // no DevNonce could be reserved on the flash (or used up)
    uint32_t sessionSaveErrors = 0;
    uint32_t sessionsDropped = 0;  // a stored session of another DevEUI / JoinEUI / AppKey (re-provisioned)
    uint32_t lastDevNonce = 0;
    // Confirmed uplinks and downlinks
    uint32_t confirmed = 0;        // confirmed uplinks (first transmissions)
    uint32_t acked = 0;            // confirmed uplinks an ACK answered
    uint32_t unacked = 0;          // confirmed uplinks given up after confirmedTries
    uint32_t retransmissions = 0;  // a confirmed uplink's frame sent again
    uint32_t downlinksAccepted = 0;
    uint32_t outsideWindow = 0;                                  // frames received while no RX window was open
    uint32_t refused[static_cast<size_t>(RxError::Count)] = {};  // bad downlinks, by reason
    uint32_t linkChecks = 0;                                     // LinkCheckAns received
    uint8_t linkMargin = 0;
    uint8_t linkGateways = 0;
    uint32_t devStatusAnswers = 0;  // DevStatusAns sent in FOpts
    uint32_t lastFcntDown = 0;
    uint32_t badDownlinks() const {
      uint32_t n = 0;
      for (uint32_t r : refused) n += r;
      return n;
    }
  };

  // Told of every uplink (the host port logs it; never gets keys).
  class Observer {
   public:
    virtual void onUplink(const uint8_t* frame, size_t size, uint32_t fcnt, const hal::TxParams& params, uint32_t toaUs,
                          const uint8_t* payload, size_t payloadSize) = 0;
    // OTAA: a join-request sent, a join-accept taken (never a key).
    virtual void onJoinRequest(uint16_t devNonce, const hal::TxParams& params) { (void)devNonce, (void)params; }
    virtual void onJoined(uint32_t devAddr, uint16_t devNonce, uint8_t rxDelay, bool cfList) {
      (void)devAddr, (void)devNonce, (void)rxDelay, (void)cfList;
    }
    // A confirmed uplink's outcome: acked (after `tries` transmissions) or given up; a retransmission.
    virtual void onConfirmed(uint32_t fcnt, bool acked, uint8_t tries) { (void)fcnt, (void)acked, (void)tries; }
    virtual void onRetransmit(uint32_t fcnt, uint8_t attempt) { (void)fcnt, (void)attempt; }
    // A downlink accepted, or one refused and why.
    virtual void onDownlink(const Downlink& d) { (void)d; }
    virtual void onRefused(RxError why) { (void)why; }

   protected:
    ~Observer() = default;
  };

  AirNode(hal::Clock& clock, hal::Radio& radio, hal::I2c& i2c, hal::Flash& flash);

  // nullptr when running, else why not (bad settings, Mbed TLS, the flash).
  const char* start(const AirConfig& config, Observer* observer = nullptr);
  // Does what is due; returns the milliseconds until it next needs to be called.
  uint32_t poll();

  const Stats& stats() const { return stats_; }
  const FcntStore& fcnt() const { return store_; }
  const Sps30& sps30() const { return sps30_; }
  const Sht3x& sht3x() const { return sht3x_; }
  const DutyCycle& dutyCycle() const { return duty_; }
  const JoinStore& joinStore() const { return joins_; }
  bool joined() const { return joined_; }
  uint32_t devAddr() const { return devAddr_; }  // the session's (ABP: the configured one)
  bool listening() const { return state_ == State::Listening; }
  // An uplink's exchange is not over: RX windows open, or a confirmed uplink to send again.
  bool busy() const { return state_ == State::Listening || retransmit_; }

 private:
  enum class State : uint8_t { Stopped, Idle, Measuring, Sending, Listening };
  enum class Awaiting : uint8_t { JoinAccept, Data };

  void beginMeasurement(uint32_t now);
  uint32_t measure(uint32_t now);
  uint32_t send(uint32_t now);
  void sendJoin(uint32_t now);
  void listenAfter(uint32_t now, uint32_t toaUs, uint32_t delayMs, Awaiting what);
  void onFrame(const uint8_t* frame, size_t size, uint32_t now);
  void windowsClosed(uint32_t now);
  void dataDone(uint32_t now, bool acked);
  uint8_t channelCount() const;
  uint32_t channel(uint32_t index) const;
  void refuse(RxError why);
  // The session's DevAddr, RX1 delay and CFList channels (its keys are in session_ already).
  void adopt(const OtaaSession& s);

  hal::Clock& clock_;
  hal::Radio& radio_;
  Sps30 sps30_;
  Sht3x sht3x_;
  Session session_;
  FcntStore store_;
  DutyCycle duty_;
  AirConfig config_;
  Observer* observer_ = nullptr;
  State state_ = State::Stopped;
  uint32_t dueMs_ = 0;  // Idle: the next measurement; Measuring: the next try
  uint8_t shtTries_ = 0;
  uint8_t spsTries_ = 0;
  bool shtDone_ = false;
  bool spsDone_ = false;
  bool spsStarted_ = false;
  Sht3x::Values sht_;
  Sps30::Values sps_;
  bool shtOk_ = false;
  bool spsOk_ = false;
  uint8_t payload_[32 + 4];
  size_t payloadSize_ = 0;
  Stats stats_;
  // OTAA, RX windows, confirmed uplinks
  JoinStore joins_;
  bool joined_ = false;
  uint32_t devAddr_ = 0;
  uint8_t rxDelayS_ = 1;
  uint32_t cfChannels_[5] = {};
  uint16_t devNonce_ = 0;
  uint32_t identity_ = 0;
  uint32_t joinTries_ = 0;
  Awaiting awaiting_ = Awaiting::Data;
  uint32_t rx1Ms_ = 0;
  uint32_t rx2Ms_ = 0;
  bool haveFcntDown_ = false;
  uint32_t fcntDown_ = 0;
  bool ackNext_ = false;        // the last downlink was confirmed: ACK in the next uplink
  bool devStatusNext_ = false;  // DevStatusAns in the next uplink's FOpts
  uint32_t dataUplinks_ = 0;    // first transmissions, for confirmedEvery
  bool retransmit_ = false;     // Sending: the stored frame again
  bool confirmed_ = false;      // the frame in flight is confirmed
  uint8_t tries_ = 0;
  uint32_t nextMeasureMs_ = 0;
  uint8_t frame_[kMaxFrame] = {};
  size_t frameSize_ = 0;
  uint32_t frameFcnt_ = 0;
  hal::TxParams frameParams_ = {};
  uint32_t frameToaUs_ = 0;
};

}  // namespace citygate::fw::air
