// The node's provisioning record (citygate.v1.NodeProvisioning, proto/citygate/v1/node.proto):
// its rules, its encoding with nanopb (the bounds in node.options), and its place in flash
// (RecordStore). The same rules refuse a PROVISION request on the service UART and a stored
// record at start-up; citygatectl checks them before it sends (gateway/cli/node.cpp).
//
// The rules (firmware/README.md "Provisioning"):
// - kind is the node's own; node_id is 1..32 characters; only the settings of that kind are set;
// - traffic: unit_id 1..247; baud 0 (19200) or one of 1200 .. 115200; period_s 0 (60) or
//   10..3600; 1..4 lanes, ids 1..4 each at most once, direction "forward" or "backward",
//   detector_length_cm 0 (not measured) or 50..5000;
// - air: dev_eui 8 bytes; ABP: dev_addr not 0, nwk_s_key and app_s_key 16 bytes each; or OTAA:
//   app_key 16 bytes, join_eui 8 bytes, and no dev_addr or session keys; interval_s 0 (300) or
//   10..86400; fcnt_resume_margin 0 (16) or 1..10000; confirmed_every 0..100.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "citygate/v1/node.pb.h"
#include "core/record_store.hpp"

namespace citygate::fw {

using NodeProvisioning = citygate_v1_NodeProvisioning;
using NodeKind = citygate_v1_NodeKind;

// The largest encoded record (nanopb's bound from node.options).
constexpr size_t kProvisioningMaxSize = citygate_v1_NodeProvisioning_size;
static_assert(kProvisioningMaxSize <= RecordStore::kMaxPayload, "node.options bounds exceed the record store");

// A text for people, bounded, without the heap (the service UART sends it in an ERROR reply).
struct Text {
  static constexpr size_t kCapacity = 96;
  char chars[kCapacity + 1] = {};
  size_t size = 0;
  Text& add(const char* s);
  Text& add(uint32_t n);
  void clear() {
    size = 0;
    chars[0] = '\0';
  }
};

enum class Verdict : uint8_t { Ok, WrongKind, Invalid };

// Checks `record` against the rules for a node of `kind`; on refusal, `why` says which field and
// what it must be ("lane 3: lane_id 7 is not 1..4").
Verdict validate(const NodeProvisioning& record, NodeKind kind, Text& why);

// nanopb encode/decode; false when the bytes are not a NodeProvisioning within the bounds.
bool encode(const NodeProvisioning& record, uint8_t* out, size_t capacity, size_t& size);
bool decode(const uint8_t* data, size_t size, NodeProvisioning& record);

// The record as a read-back: keys removed (session keys and AppKey), keys_set true when the
// mode's keys were there (ABP: both session keys; OTAA: the AppKey).
void withoutKeys(NodeProvisioning& record);

// For a node's start-up: the newest valid record in `store` that decodes and passes the rules for
// `kind`. False when there is none (the node then runs unprovisioned: only its service UART).
bool loadProvisioning(RecordStore& store, NodeKind kind, NodeProvisioning& record);

const char* kindName(NodeKind kind);  // "traffic counter", "air-quality node"

}  // namespace citygate::fw
