// citygate.v1.AirNodeSettings (proto/citygate/v1/node.proto) to the node's AirConfig. A template
// over the settings' C struct, so the node does not depend on the generated code's header: nanopb
// generates `dev_addr`, `nwk_s_key` / `app_s_key` / `app_key` as {size, bytes[16]}, `dev_eui` /
// `join_eui` as {size, bytes[8]}, `interval_s`, `fcnt_resume_margin` (0 = unset: the defaults 300 s
// and 16), `confirmed_every`. The host's provisioning file fills
// a struct of the same shape.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nodes/air/air_node.hpp"

namespace citygate::fw::air {

inline constexpr uint32_t kDefaultIntervalS = 300;
inline constexpr uint32_t kDefaultFcntMargin = 16;

// nullptr, or what is wrong (never a key's value). OTAA when the settings carry an AppKey or a
// JoinEUI (dev_eui, join_eui, app_key), ABP otherwise (dev_addr, nwk_s_key, app_s_key).
template <class Settings>
const char* fromSettings(const Settings& s, AirConfig& out) {
  out.otaa = s.app_key.size != 0 || s.join_eui.size != 0;
  if (out.otaa) {
    if (s.app_key.size != kKeyBytes) return "app_key must be 16 bytes";
    if (s.join_eui.size != 8) return "join_eui must be 8 bytes";
    if (s.dev_eui.size != 8) return "dev_eui must be 8 bytes";
    if (s.dev_addr != 0 || s.nwk_s_key.size != 0 || s.app_s_key.size != 0) {
      return "OTAA (app_key, join_eui) takes no dev_addr, nwk_s_key or app_s_key";
    }
    memcpy(out.appKey, s.app_key.bytes, kKeyBytes);
    memcpy(out.joinEui, s.join_eui.bytes, 8);
    memcpy(out.devEui, s.dev_eui.bytes, 8);
  } else {
    if (s.nwk_s_key.size != kKeyBytes) return "nwk_s_key must be 16 bytes";
    if (s.app_s_key.size != kKeyBytes) return "app_s_key must be 16 bytes";
    out.devAddr = s.dev_addr;
    memcpy(out.nwkSKey, s.nwk_s_key.bytes, kKeyBytes);
    memcpy(out.appSKey, s.app_s_key.bytes, kKeyBytes);
  }
  out.intervalS = s.interval_s != 0 ? s.interval_s : kDefaultIntervalS;
  out.fcntMargin = s.fcnt_resume_margin != 0 ? s.fcnt_resume_margin : kDefaultFcntMargin;
  out.confirmedEvery = s.confirmed_every;
  return validate(out);
}

}  // namespace citygate::fw::air
