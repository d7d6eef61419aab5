// Parking-sensor codecs (protocols.md 4.3, after the vendors' published decoders in TTN's device
// repository). Both fill the same three points: status (0 free / 1 occupied), temperature (°C)
// and battery_voltage (V), so they share kParkingPoints. Vendor frames may grow in later
// firmware: only a minimum length is enforced, extra bytes are ignored.
#pragma once

#include "inputs/lora/codecs/codec.hpp"

namespace citygate::lora {

inline constexpr std::size_t kParkingStatus = 0;
inline constexpr std::size_t kParkingTemperature = 1;
inline constexpr std::size_t kParkingBattery = 2;
inline constexpr std::size_t kParkingPoints = 3;

// Nwave NPS405 / NPS310: FPort 1 status (bit7 occupied), 2 heartbeat (bit7 occupied, battery
// 2500 + 4*b1 mV, temperature int8(b2)/2 + 10 °C), 3 start-up (b4 bit0 occupied), 6 debug,
// 10 SDI tag registration (bit7 occupied, else no status).
class NwaveNps405Codec final : public Codec {
 public:
  std::string_view name() const override { return "nwave-nps405"; }
  DecodeResult decode(std::uint8_t fport, std::span<const std::uint8_t> payload,
                      std::span<core::RawValue> values) const override;
};

// Bosch Parking Lot Sensor TPS110: FPort 1 status (b0 bit0), 2 heartbeat (b0 bit0, optional
// temperature int8 b1), 3 start-up (b16 bit0 occupied), 4 device information, 5 usage, 6 debug.
class BoschTps110Codec final : public Codec {
 public:
  std::string_view name() const override { return "bosch-tps110"; }
  DecodeResult decode(std::uint8_t fport, std::span<const std::uint8_t> payload,
                      std::span<core::RawValue> values) const override;
};

}  // namespace citygate::lora
