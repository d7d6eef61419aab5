// citygate.v1.AirNodeSettings (proto/citygate/v1/node.proto) to the node's AirConfig. A template
// over the settings' C struct, so the node does not depend on the generated code's header: nanopb
// generates `dev_addr`, `nwk_s_key` / `app_s_key` as {size, bytes[16]}, `interval_s`,
// `fcnt_resume_margin` (0 = unset: the defaults 300 s and 16). The host's provisioning file fills
// a struct of the same shape.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nodes/air/air_node.hpp"

namespace citygate::fw::air {

inline constexpr uint32_t kDefaultIntervalS = 300;
inline constexpr uint32_t kDefaultFcntMargin = 16;

// nullptr, or what is wrong (never a key's value).
template <class Settings>
const char* fromSettings(const Settings& s, AirConfig& out) {
  if (s.nwk_s_key.size != kKeyBytes) return "nwk_s_key must be 16 bytes";
  if (s.app_s_key.size != kKeyBytes) return "app_s_key must be 16 bytes";
  out.devAddr = s.dev_addr;
  memcpy(out.nwkSKey, s.nwk_s_key.bytes, kKeyBytes);
  memcpy(out.appSKey, s.app_s_key.bytes, kKeyBytes);
  out.intervalS = s.interval_s != 0 ? s.interval_s : kDefaultIntervalS;
  out.fcntMargin = s.fcnt_resume_margin != 0 ? s.fcnt_resume_margin : kDefaultFcntMargin;
  return validate(out);
}

}  // namespace citygate::fw::air
