#include "core/provisioning.hpp"

#include <string.h>

#include "pb_decode.h"
#include "pb_encode.h"

namespace citygate::fw {

Text& Text::add(const char* s) {
  while (*s != '\0' && size < kCapacity) chars[size++] = *s++;
  chars[size] = '\0';
  return *this;
}

Text& Text::add(uint32_t n) {
  char digits[10];
  size_t count = 0;
  do {
    digits[count++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  while (count > 0 && size < kCapacity) chars[size++] = digits[--count];
  chars[size] = '\0';
  return *this;
}

const char* kindName(NodeKind kind) {
  switch (kind) {
    case citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER:
      return "traffic counter";
    case citygate_v1_NodeKind_NODE_AIR_QUALITY:
      return "air-quality node";
    default:
      return "unspecified node";
  }
}

namespace {

// A decoded record's kind as a number: proto3 enums are open, so the field may hold a value
// NodeKind does not name, which C++ must not load as the enum (and its size is the target's:
// arm-none-eabi has short enums).
int32_t kindValue(const NodeProvisioning& record) {
  if (sizeof record.kind == 1) {
    int8_t v = 0;
    memcpy(&v, &record.kind, 1);
    return v;
  }
  if (sizeof record.kind == 2) {
    int16_t v = 0;
    memcpy(&v, &record.kind, 2);
    return v;
  }
  int32_t v = 0;
  memcpy(&v, &record.kind, sizeof v < sizeof record.kind ? sizeof v : sizeof record.kind);
  return v;
}

const char* kindText(int32_t kind) {
  switch (kind) {
    case citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER:
      return "a traffic counter";
    case citygate_v1_NodeKind_NODE_AIR_QUALITY:
      return "an air-quality node";
    default:
      return "an unknown kind of node";
  }
}

bool inRangeOrZero(uint32_t v, uint32_t min, uint32_t max) {
  return v == 0 || (v >= min && v <= max);
}

bool knownBaud(uint32_t baud) {
  static constexpr uint32_t kBauds[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200};
  for (uint32_t b : kBauds) {
    if (b == baud) return true;
  }
  return false;
}

Verdict invalid(Text& why, const char* field, uint32_t value, const char* rule) {
  why.add(field).add(" ").add(value).add(" is not ").add(rule);
  return Verdict::Invalid;
}

Verdict checkTraffic(const citygate_v1_TrafficNodeSettings& t, Text& why) {
  if (t.unit_id < 1 || t.unit_id > 247) return invalid(why, "traffic.unit_id", t.unit_id, "1..247");
  if (t.baud != 0 && !knownBaud(t.baud)) {
    return invalid(why, "traffic.baud", t.baud, "0 (19200) or 1200..115200 (a standard rate)");
  }
  if (!inRangeOrZero(t.period_s, 10, 3600)) return invalid(why, "traffic.period_s", t.period_s, "0 (60) or 10..3600");
  if (t.lane_count < 1 || t.lane_count > 4) return invalid(why, "traffic: lane count", t.lane_count, "1..4");
  bool seen[5] = {};
  for (pb_size_t i = 0; i < t.lane_count; ++i) {
    const citygate_v1_LaneGeometry& lane = t.lane[i];
    if (lane.lane_id < 1 || lane.lane_id > 4) return invalid(why, "lane.lane_id", lane.lane_id, "1..4");
    if (seen[lane.lane_id]) {
      why.add("lane ").add(lane.lane_id).add(" is given twice");
      return Verdict::Invalid;
    }
    seen[lane.lane_id] = true;
    if (strcmp(lane.direction, "forward") != 0 && strcmp(lane.direction, "backward") != 0) {
      why.add("lane ").add(lane.lane_id).add(": direction '").add(lane.direction).add("' is not forward or backward");
      return Verdict::Invalid;
    }
    if (!inRangeOrZero(lane.detector_length_cm, 50, 5000)) {
      why.add("lane ").add(lane.lane_id).add(": ");
      return invalid(why, "detector_length_cm", lane.detector_length_cm, "0 (not measured) or 50..5000");
    }
  }
  return Verdict::Ok;
}

Verdict checkAir(const citygate_v1_AirNodeSettings& a, Text& why) {
  if (a.dev_eui.size != 8) return invalid(why, "air.dev_eui: bytes", a.dev_eui.size, "8");
  const bool otaa = a.app_key.size != 0 || a.join_eui.size != 0;
  if (otaa) {
    // OTAA: the join-accept gives the DevAddr and the session keys.
    if (a.app_key.size != 16) return invalid(why, "air.app_key: bytes", a.app_key.size, "16");
    if (a.join_eui.size != 8) return invalid(why, "air.join_eui: bytes", a.join_eui.size, "8");
    if (a.dev_addr != 0 || a.nwk_s_key.size != 0 || a.app_s_key.size != 0) {
      why.add("air: OTAA (app_key, join_eui) takes no dev_addr, nwk_s_key or app_s_key");
      return Verdict::Invalid;
    }
  } else {
    if (a.dev_addr == 0) {
      why.add("air.dev_addr is 0 (the DevAddr the network server gave the node)");
      return Verdict::Invalid;
    }
    if (a.nwk_s_key.size != 16) return invalid(why, "air.nwk_s_key: bytes", a.nwk_s_key.size, "16");
    if (a.app_s_key.size != 16) return invalid(why, "air.app_s_key: bytes", a.app_s_key.size, "16");
  }
  if (a.confirmed_every > 100) return invalid(why, "air.confirmed_every", a.confirmed_every, "0 (none) or 1..100");
  if (!inRangeOrZero(a.interval_s, 10, 86400)) {
    return invalid(why, "air.interval_s", a.interval_s, "0 (300) or 10..86400");
  }
  if (!inRangeOrZero(a.fcnt_resume_margin, 1, 10000)) {
    return invalid(why, "air.fcnt_resume_margin", a.fcnt_resume_margin, "0 (16) or 1..10000");
  }
  return Verdict::Ok;
}

}  // namespace

Verdict validate(const NodeProvisioning& record, NodeKind kind, Text& why) {
  why.clear();
  const int32_t recordKind = kindValue(record);
  if (recordKind != static_cast<int32_t>(kind)) {
    if (recordKind == citygate_v1_NodeKind_NODE_KIND_UNSPECIFIED) {
      why.add("the record's kind is not set");
    } else {
      why.add("the record is for ").add(kindText(recordKind));
    }
    why.add("; this node is ").add(kindText(kind));
    return Verdict::WrongKind;
  }
  const void* end = memchr(record.node_id, '\0', sizeof record.node_id);
  if (end == nullptr || end == record.node_id) {
    why.add("node_id must be 1..").add(static_cast<uint32_t>(sizeof record.node_id - 1)).add(" characters");
    return Verdict::Invalid;
  }
  if (kind == citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER) {
    if (record.has_air) return why.add("a traffic counter takes no air settings"), Verdict::Invalid;
    if (!record.has_traffic) return why.add("traffic settings missing"), Verdict::Invalid;
    return checkTraffic(record.traffic, why);
  }
  if (kind == citygate_v1_NodeKind_NODE_AIR_QUALITY) {
    if (record.has_traffic) return why.add("an air-quality node takes no traffic settings"), Verdict::Invalid;
    if (!record.has_air) return why.add("air settings missing"), Verdict::Invalid;
    return checkAir(record.air, why);
  }
  why.add("kind is not set");
  return Verdict::WrongKind;
}

bool encode(const NodeProvisioning& record, uint8_t* out, size_t capacity, size_t& size) {
  pb_ostream_t stream = pb_ostream_from_buffer(out, capacity);
  if (!pb_encode(&stream, citygate_v1_NodeProvisioning_fields, &record)) return false;
  size = stream.bytes_written;
  return true;
}

bool decode(const uint8_t* data, size_t size, NodeProvisioning& record) {
  record = citygate_v1_NodeProvisioning_init_zero;
  pb_istream_t stream = pb_istream_from_buffer(data, size);
  return pb_decode(&stream, citygate_v1_NodeProvisioning_fields, &record);
}

void withoutKeys(NodeProvisioning& record) {
  record.keys_set = record.has_air && ((record.air.nwk_s_key.size == 16 && record.air.app_s_key.size == 16) ||
                                       record.air.app_key.size == 16);
  memset(&record.air.nwk_s_key, 0, sizeof record.air.nwk_s_key);
  memset(&record.air.app_s_key, 0, sizeof record.air.app_s_key);
  memset(&record.air.app_key, 0, sizeof record.air.app_key);
}

bool loadProvisioning(RecordStore& store, NodeKind kind, NodeProvisioning& record) {
  uint8_t bytes[RecordStore::kMaxPayload];
  size_t size = 0;
  if (store.load(bytes, sizeof bytes, size) != RecordStore::Status::Ok) return false;
  if (!decode(bytes, size, record)) return false;
  Text why;
  return validate(record, kind, why) == Verdict::Ok;
}

}  // namespace citygate::fw
