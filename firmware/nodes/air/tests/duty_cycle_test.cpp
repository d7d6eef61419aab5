// EU868 airtime: Semtech's time-on-air formula against known values, and the 1 % duty cycle.
#include "nodes/air/duty_cycle.hpp"
#include "core/check.hpp"

namespace air = citygate::fw::air;

namespace {
air::Modulation sf(uint8_t s, uint16_t bw = 125) {
  air::Modulation m;
  m.spreadingFactor = s;
  m.bandwidthKhz = bw;
  return m;
}
}  // namespace

FW_TEST("duty cycle: time on air by Semtech's formula") {
  // SF7/125 kHz, 13 bytes: 12.25 + 33 symbols of 1.024 ms = 46.336 ms (Semtech's calculator: 46.3).
  FW_CHECK_EQ(air::timeOnAirUs(sf(7), 13), 46336u);
  // SF12/125 kHz (low data-rate optimisation), 51 bytes: 75.25 symbols of 32.768 ms.
  FW_CHECK_EQ(air::timeOnAirUs(sf(12), 51), 2465792u);
  // SF9/125 kHz, 28 bytes (the air node's frame): 8 + 7 x 5 = 43 + 12.25 symbols of 4.096 ms.
  FW_CHECK_EQ(air::timeOnAirUs(sf(9), 28), 226304u);
  // SF7/250 kHz: half the SF7/125 kHz time.
  FW_CHECK_EQ(air::timeOnAirUs(sf(7, 250), 13), 23168u);
  // The air node's 28-byte frame at SF7: 12.25 + 8 + 9 x 5 symbols; at SF12: 12.25 + 8 + 6 x 5.
  FW_CHECK_EQ(air::timeOnAirUs(sf(7), 28), 66816u);
  FW_CHECK_EQ(air::timeOnAirUs(sf(12), 28), 1646592u);
  // Outside the modulations: 0.
  FW_CHECK_EQ(air::timeOnAirUs(sf(6), 13), 0u);
  FW_CHECK_EQ(air::timeOnAirUs(sf(7, 500), 13), 0u);
}

FW_TEST("duty cycle: 1 %: the next frame no earlier than 99 x its time on air after the last") {
  air::DutyCycle d;
  FW_CHECK(d.allows(0));
  FW_CHECK(d.allows(123456));
  d.onTransmit(1000, 66816);          // 66.816 ms on air
  FW_CHECK_EQ(d.silenceMs(), 6682u);  // 100 x, rounded up to the millisecond
  FW_CHECK(!d.allows(1000));
  FW_CHECK(!d.allows(1000 + 66 + 99 * 66));
  FW_CHECK_EQ(d.waitMs(1000 + 6000), 682u);
  FW_CHECK(!d.allows(1000 + 6681));
  FW_CHECK(d.allows(1000 + 6682));
  // Across the 32-bit wrap of the millisecond clock.
  d.onTransmit(0xFFFFFF00u, 10000);  // 1 s of silence
  FW_CHECK(!d.allows(0x00000100u));
  FW_CHECK(d.allows(0xFFFFFF00u + 1000u));
}

FW_TEST("duty cycle: the three EU868 default channels") {
  FW_CHECK_EQ(air::kEu868Channels[0], 868100000u);
  FW_CHECK_EQ(air::kEu868Channels[1], 868300000u);
  FW_CHECK_EQ(air::kEu868Channels[2], 868500000u);
}
