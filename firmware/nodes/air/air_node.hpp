// The air-quality node: every interval it measures PM (SPS30) and T/RH (SHT3x), encodes a
// citygate-air v1 frame (node_format.hpp) and sends it as a LoRaWAN 1.0.x unconfirmed ABP uplink
// on FPort 1, within the EU868 1 % duty cycle, with a frame counter that a power cut never sends
// twice (FcntStore). Hardware through hal.hpp only; the port's main loop calls poll() and
// sleeps for what it returns.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"
#include "nodes/air/duty_cycle.hpp"
#include "nodes/air/fcnt_store.hpp"
#include "nodes/air/lorawan.hpp"
#include "nodes/air/sensors.hpp"

namespace citygate::fw::air {

// The node's settings (the port maps citygate.v1.AirNodeSettings to it).
struct AirConfig {
  uint32_t devAddr = 0;
  uint8_t nwkSKey[kKeyBytes] = {};
  uint8_t appSKey[kKeyBytes] = {};
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
    uint32_t downlinks = 0;     // frames received (class A RX windows; ignored)
    uint32_t lastFcnt = 0;
    uint32_t lastToaUs = 0;
  };

  // Told of every uplink (the host port logs it; never gets keys).
  class Observer {
   public:
    virtual void onUplink(const uint8_t* frame, size_t size, uint32_t fcnt, const hal::TxParams& params, uint32_t toaUs,
                          const uint8_t* payload, size_t payloadSize) = 0;

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

 private:
  enum class State : uint8_t { Stopped, Idle, Measuring, Sending };

  void beginMeasurement(uint32_t now);
  uint32_t measure(uint32_t now);
  uint32_t send(uint32_t now);

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
};

}  // namespace citygate::fw::air
