// The codecs a LoRa device may name, registered explicitly here (static self-registration would
// be dropped by the linker from a static library). buildCodec() is part of the config check:
// it validates the device's codec settings (kind, LPP channel map) with FILE:LINE:COL
// diagnostics and returns the codec with the points it fills.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/diagnostics.hpp"
#include "inputs/lora/codecs/codec.hpp"

namespace citygate::v1 {
class LoraDevice;
}

namespace citygate::lora {

struct BuiltCodec {
  std::shared_ptr<const Codec> codec;
  core::pb::ObservationKind kind = core::pb::OBSERVATION_KIND_UNSPECIFIED;
  std::vector<core::PointSpec> points;
  std::string category;  // parking: onStreet
};

// `at` is the device's location in the config. nullopt when the settings have errors (all of
// them in `diags`).
std::optional<BuiltCodec> buildCodec(const citygate::v1::LoraDevice& device, const config::Location& at,
                                     config::Diagnostics& diags);

// "bosch-tps110, cayenne-lpp, citygate-air, citygate-traffic, nwave-nps405"
std::string knownCodecs();

}  // namespace citygate::lora
