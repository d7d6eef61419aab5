// EU868 airtime rules for the air node: the time on air of a LoRa frame (Semtech's formula,
// SX1276 datasheet 4.1.1.7 / AN1200.13), the 1 % duty cycle of sub-band g1 (868.0-868.6 MHz,
// ETSI EN 300 220), and the three default channels of every EU868 device.
//
// The duty cycle: after a frame of time on air T, the band stays silent for 99 T (the next frame
// starts no earlier than 100 T after the last one started). Integer maths only.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"

namespace citygate::fw::air {

inline constexpr uint32_t kEu868Channels[3] = {868100000, 868300000, 868500000};

struct Modulation {
  uint8_t spreadingFactor = 7;  // 7..12
  uint16_t bandwidthKhz = 125;  // 125 or 250
  uint8_t codingRate = 1;       // 4/(4 + codingRate): 1 = 4/5
  uint8_t preamble = 8;         // symbols (LoRaWAN: 8)
  bool crc = true;              // uplinks carry a CRC
  bool explicitHeader = true;
};

// Time on air in microseconds of a frame of `payloadBytes` (the PHYPayload); 0 for a
// modulation outside SF7..12 / 125, 250 kHz. Low data-rate optimisation as LoRaWAN sets it
// (SF11 and SF12 at 125 kHz).
uint32_t timeOnAirUs(const Modulation& m, size_t payloadBytes);

class DutyCycle {
 public:
  // A frame of `toaUs` started at `startMs`.
  void onTransmit(uint32_t startMs, uint32_t toaUs);
  // May a frame start at nowMs?
  bool allows(uint32_t nowMs) const;
  // Milliseconds from nowMs until a frame may start (0: now).
  uint32_t waitMs(uint32_t nowMs) const;
  uint32_t silenceMs() const { return silenceMs_; }  // of the last frame: 100 x its time on air

 private:
  bool any_ = false;
  uint32_t lastStartMs_ = 0;
  uint32_t silenceMs_ = 0;
};

}  // namespace citygate::fw::air
