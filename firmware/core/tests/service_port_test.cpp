// The service UART: frames, requests, refusals and their counters, on fake hardware.
#include <string.h>

#include "core/check.hpp"
#include "core/provisioning.hpp"
#include "core/service_frame.hpp"
#include "core/service_port.hpp"
#include "fakes.hpp"

namespace {

using namespace citygate::fw;
using service::Reason;
using service::Type;
using Flash = test::FakeFlash;

struct Reply {
  bool ok = false;
  uint8_t type = 0;
  uint8_t seq = 0;
  uint8_t payload[service::kMaxPayload] = {};
  size_t size = 0;
};

// The first frame the node wrote after `from` (byte offset into tx); `from` moves past it.
Reply nextReply(test::FakeUart& uart, size_t& from) {
  Reply r;
  service::FrameParser parser;
  while (from < uart.txSize) {
    if (parser.feed(uart.tx[from++]) == service::FrameParser::Result::Frame) {
      r.ok = true;
      r.type = parser.frame().type;
      r.seq = parser.frame().seq;
      r.size = parser.frame().length;
      memcpy(r.payload, parser.frame().payload, r.size);
      return r;
    }
  }
  return r;
}

void request(test::FakeUart& uart, Type type, uint8_t seq, const uint8_t* payload, size_t size) {
  uint8_t frame[service::kMaxEncoded];
  const size_t n = service::encodeFrame(static_cast<uint8_t>(type), seq, payload, size, frame, sizeof frame);
  uart.arrive(frame, n);
}

NodeProvisioning trafficRecord() {
  NodeProvisioning p = citygate_v1_NodeProvisioning_init_zero;
  strcpy(p.node_id, "traffic-kreuzplatz-1");
  p.kind = citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER;
  p.has_traffic = true;
  p.traffic.unit_id = 7;
  p.traffic.baud = 19200;
  p.traffic.period_s = 60;
  p.traffic.lane_count = 2;
  p.traffic.lane[0].lane_id = 1;
  strcpy(p.traffic.lane[0].direction, "forward");
  p.traffic.lane[0].detector_length_cm = 450;
  p.traffic.lane[1].lane_id = 2;
  strcpy(p.traffic.lane[1].direction, "backward");
  return p;
}

NodeProvisioning airRecord() {
  NodeProvisioning p = citygate_v1_NodeProvisioning_init_zero;
  strcpy(p.node_id, "air-pilatusplatz");
  p.kind = citygate_v1_NodeKind_NODE_AIR_QUALITY;
  p.has_air = true;
  p.air.dev_eui.size = 8;
  for (uint8_t i = 0; i < 8; ++i) p.air.dev_eui.bytes[i] = static_cast<uint8_t>(0x70 + i);
  p.air.dev_addr = 0x26011234;
  p.air.nwk_s_key.size = 16;
  p.air.app_s_key.size = 16;
  for (uint8_t i = 0; i < 16; ++i) {
    p.air.nwk_s_key.bytes[i] = static_cast<uint8_t>(i + 1);
    p.air.app_s_key.bytes[i] = static_cast<uint8_t>(0xA0 + i);
  }
  p.air.interval_s = 300;
  return p;
}

size_t encoded(const NodeProvisioning& p, uint8_t* out) {
  size_t n = 0;
  encode(p, out, service::kMaxPayload, n);
  return n;
}

struct Bench {
  Flash flash{512, 4};
  RecordStore store{flash};
  test::FakeUart uart;
  ServicePort port;
  size_t seen = 0;
  explicit Bench(NodeKind kind) : port(uart, store, kind) {}
  ServicePort::Action pollAll() {
    ServicePort::Action a = ServicePort::Action::None;
    for (int i = 0; i < 50; ++i) {
      if (port.poll() == ServicePort::Action::Reset) a = ServicePort::Action::Reset;
    }
    return a;
  }
  Reply reply() { return nextReply(uart, seen); }
};

bool isError(const Reply& r, uint8_t seq, Reason why) {
  return r.ok && r.type == static_cast<uint8_t>(Type::Error) && r.seq == seq && r.size >= 1 &&
         r.payload[0] == static_cast<uint8_t>(why);
}

}  // namespace

FW_TEST("service frame: encode and parse round-trip, SLIP escapes included") {
  uint8_t payload[] = {0xC0, 0xDB, 0x00, 0xDC, 0xDD, 0xC0};
  uint8_t frame[service::kMaxEncoded];
  const size_t n = service::encodeFrame(0x02, 9, payload, sizeof payload, frame, sizeof frame);
  FW_CHECK(n > sizeof payload + 8);
  FW_CHECK_EQ(frame[0], service::kEnd);
  FW_CHECK_EQ(frame[n - 1], service::kEnd);
  for (size_t i = 1; i + 1 < n; ++i) FW_CHECK(frame[i] != service::kEnd);
  service::FrameParser parser;
  int frames = 0;
  for (size_t i = 0; i < n; ++i) {
    if (parser.feed(frame[i]) == service::FrameParser::Result::Frame) {
      ++frames;
      FW_CHECK_EQ(parser.frame().type, 0x02);
      FW_CHECK_EQ(parser.frame().seq, 9);
      FW_CHECK_EQ(parser.frame().length, sizeof payload);
      FW_CHECK(memcmp(parser.frame().payload, payload, sizeof payload) == 0);
    }
  }
  FW_CHECK_EQ(frames, 1);
  // Too small an output buffer, too big a payload: nothing.
  FW_CHECK_EQ(service::encodeFrame(1, 1, payload, sizeof payload, frame, 8), 0u);
  static uint8_t big[service::kMaxPayload + 1];
  FW_CHECK_EQ(service::encodeFrame(1, 1, big, sizeof big, frame, sizeof frame), 0u);
}

FW_TEST("service frame: every refusal has its reason") {
  uint8_t frame[service::kMaxEncoded];
  const uint8_t payload[] = {1, 2, 3};
  const size_t n = service::encodeFrame(0x01, 1, payload, sizeof payload, frame, sizeof frame);
  auto run = [](const uint8_t* bytes, size_t size, Reason& why) {
    service::FrameParser p;
    int errors = 0;
    for (size_t i = 0; i < size; ++i) {
      if (p.feed(bytes[i]) == service::FrameParser::Result::Error) {
        ++errors;
        why = p.error();
      }
    }
    return errors;
  };
  Reason why = Reason::None;
  uint8_t bad[service::kMaxEncoded];
  memcpy(bad, frame, n);
  bad[5] ^= 0x01;  // a payload bit
  FW_CHECK_EQ(run(bad, n, why), 1);
  FW_CHECK(why == Reason::BadCrc);
  // Cut short: the END of the next frame ends it.
  memcpy(bad, frame, n - 3);
  bad[n - 3] = service::kEnd;
  FW_CHECK_EQ(run(bad, n - 2, why), 1);
  FW_CHECK(why == Reason::Truncated);
  const uint8_t tiny[] = {service::kEnd, 0x01, 0x02, service::kEnd};
  FW_CHECK_EQ(run(tiny, sizeof tiny, why), 1);
  FW_CHECK(why == Reason::Truncated);
  const uint8_t escape[] = {service::kEnd, 0x01, service::kEsc, 0x42, 0, 0, 0, 0, 0, 0, service::kEnd};
  FW_CHECK_EQ(run(escape, sizeof escape, why), 1);
  FW_CHECK(why == Reason::BadEscape);
  const uint8_t longLength[] = {service::kEnd, 0x01, 0x01, 0xFF, 0x7F, 0, 0, 0, 0, service::kEnd};
  FW_CHECK_EQ(run(longLength, sizeof longLength, why), 1);
  FW_CHECK(why == Reason::Oversize);
  static uint8_t flood[service::kMaxFrame + 40];
  memset(flood, 0x11, sizeof flood);
  flood[sizeof flood - 1] = service::kEnd;
  FW_CHECK_EQ(run(flood, sizeof flood, why), 1);
  FW_CHECK(why == Reason::Oversize);
  // One byte more than the length says.
  memcpy(bad, frame, n - 1);
  bad[n - 1] = 0x00;
  bad[n] = service::kEnd;
  FW_CHECK_EQ(run(bad, n + 1, why), 1);
  FW_CHECK(why == Reason::BadLength);
  // END END and noise-free gaps are no frame and no error.
  const uint8_t empty[] = {service::kEnd, service::kEnd, service::kEnd};
  FW_CHECK_EQ(run(empty, sizeof empty, why), 0);
}

FW_TEST("service port: provision, reset, then show reads the record back without its keys") {
  Bench b(citygate_v1_NodeKind_NODE_AIR_QUALITY);
  uint8_t payload[service::kMaxPayload];
  const NodeProvisioning sent = airRecord();
  request(b.uart, Type::Provision, 5, payload, encoded(sent, payload));
  FW_CHECK(b.pollAll() == ServicePort::Action::Reset);
  Reply r = b.reply();
  FW_CHECK(r.ok);
  FW_CHECK_EQ(r.type, 0x82);
  FW_CHECK_EQ(r.seq, 5);
  FW_CHECK_EQ(r.size, 4u);
  FW_CHECK_EQ(r.payload[0], 1);  // generation 1

  NodeProvisioning loaded;
  FW_CHECK(loadProvisioning(b.store, citygate_v1_NodeKind_NODE_AIR_QUALITY, loaded));
  FW_CHECK_EQ(loaded.air.app_s_key.bytes[3], 0xA3);  // the node has its keys
  FW_CHECK(!loadProvisioning(b.store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER, loaded));

  request(b.uart, Type::Show, 6, nullptr, 0);
  FW_CHECK(b.pollAll() == ServicePort::Action::None);
  r = b.reply();
  FW_CHECK(r.ok);
  FW_CHECK_EQ(r.type, 0x81);
  FW_CHECK_EQ(r.seq, 6);
  FW_CHECK_EQ(r.payload[0], 1);  // a record
  FW_CHECK_EQ(r.payload[1], 1);  // generation 1
  NodeProvisioning shown;
  FW_CHECK(decode(r.payload + 5, r.size - 5, shown));
  FW_CHECK(strcmp(shown.node_id, "air-pilatusplatz") == 0);
  FW_CHECK(shown.keys_set);
  FW_CHECK_EQ(shown.air.nwk_s_key.size, 0u);
  FW_CHECK_EQ(shown.air.app_s_key.size, 0u);
  FW_CHECK_EQ(shown.air.dev_addr, 0x26011234u);
  // No key byte anywhere in what went out.
  const uint8_t key[] = {0xA0, 0xA1, 0xA2, 0xA3};
  bool leaked = false;
  for (size_t i = 0; i + sizeof key <= b.uart.txSize; ++i) leaked = leaked || memcmp(b.uart.tx + i, key, 4) == 0;
  FW_CHECK(!leaked);

  request(b.uart, Type::Reset, 7, nullptr, 0);
  FW_CHECK(b.pollAll() == ServicePort::Action::Reset);
  r = b.reply();
  FW_CHECK_EQ(r.type, 0x83);
  FW_CHECK_EQ(b.port.answered(), 3u);
}

FW_TEST("service port: an unprovisioned node shows its kind and no record") {
  Bench b(citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  request(b.uart, Type::Show, 1, nullptr, 0);
  b.pollAll();
  const Reply r = b.reply();
  FW_CHECK_EQ(r.type, 0x81);
  FW_CHECK_EQ(r.payload[0], 0);
  NodeProvisioning shown;
  FW_CHECK(decode(r.payload + 5, r.size - 5, shown));
  FW_CHECK_EQ(shown.kind, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  FW_CHECK(!shown.keys_set);
  FW_CHECK_EQ(shown.node_id[0], '\0');
}

FW_TEST("service port: refused frames and records change nothing and are counted") {
  Bench b(citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  uint8_t payload[service::kMaxPayload];
  request(b.uart, Type::Provision, 1, payload, encoded(trafficRecord(), payload));
  FW_CHECK(b.pollAll() == ServicePort::Action::Reset);
  FW_CHECK_EQ(b.reply().type, 0x82);
  uint8_t before[Flash::kMaxBytes];
  memcpy(before, b.flash.bytes(), b.flash.size());
  const uint32_t erases = b.flash.erases();

  // A corrupted frame: a bit of the record flipped on the line.
  NodeProvisioning other = trafficRecord();
  other.traffic.unit_id = 9;
  uint8_t frame[service::kMaxEncoded];
  size_t n = service::encodeFrame(0x02, 2, payload, encoded(other, payload), frame, sizeof frame);
  frame[12] ^= 0x04;
  b.uart.arrive(frame, n);
  FW_CHECK(b.pollAll() == ServicePort::Action::None);
  FW_CHECK(isError(b.reply(), 0, Reason::BadCrc));

  // Records that break the rules, each with its reason and a text naming the field.
  struct Case {
    void (*change)(NodeProvisioning&);
    Reason why;
    const char* mention;
  };
  const Case cases[] = {
      {[](NodeProvisioning& p) { p.traffic.unit_id = 0; }, Reason::Invalid, "unit_id"},
      {[](NodeProvisioning& p) { p.traffic.unit_id = 248; }, Reason::Invalid, "1..247"},
      {[](NodeProvisioning& p) { p.traffic.lane[1].lane_id = 1; }, Reason::Invalid, "twice"},
      {[](NodeProvisioning& p) { p.traffic.lane[1].lane_id = 5; }, Reason::Invalid, "lane_id"},
      {[](NodeProvisioning& p) { p.traffic.lane_count = 0; }, Reason::Invalid, "lane count"},
      {[](NodeProvisioning& p) { strcpy(p.traffic.lane[0].direction, "north"); }, Reason::Invalid, "north"},
      {[](NodeProvisioning& p) { p.traffic.period_s = 5; }, Reason::Invalid, "period_s"},
      {[](NodeProvisioning& p) { p.traffic.baud = 12345; }, Reason::Invalid, "baud"},
      {[](NodeProvisioning& p) { p.node_id[0] = '\0'; }, Reason::Invalid, "node_id"},
      {[](NodeProvisioning& p) { p.has_air = true; }, Reason::Invalid, "air"},
      {[](NodeProvisioning& p) { p.kind = citygate_v1_NodeKind_NODE_AIR_QUALITY; }, Reason::WrongKind, "air-quality"},
  };
  uint8_t seq = 10;
  for (const Case& c : cases) {
    NodeProvisioning p = trafficRecord();
    c.change(p);
    request(b.uart, Type::Provision, seq, payload, encoded(p, payload));
    FW_CHECK(b.pollAll() == ServicePort::Action::None);
    Reply r = b.reply();
    FW_CHECK(isError(r, seq, c.why));
    r.payload[r.size < sizeof r.payload ? r.size : sizeof r.payload - 1] = 0;
    FW_CHECK(strstr(reinterpret_cast<const char*>(r.payload + 1), c.mention) != nullptr);
    ++seq;
  }
  // A kind NodeKind does not name (proto3 enums are open): refused, never loaded as the enum.
  const uint8_t unknownKind[] = {0x0A, 0x01, 'x', 0x10, 0x10};
  request(b.uart, Type::Provision, 39, unknownKind, sizeof unknownKind);
  b.pollAll();
  {
    Reply r = b.reply();
    FW_CHECK(isError(r, 39, Reason::WrongKind));
    r.payload[r.size < sizeof r.payload ? r.size : sizeof r.payload - 1] = 0;
    FW_CHECK(strstr(reinterpret_cast<const char*>(r.payload + 1), "unknown kind") != nullptr);
  }
  // Not a NodeProvisioning, and an unknown type.
  const uint8_t garbage[] = {0x0A, 0x50, 0x41};  // node_id of 80 bytes announced, 1 given
  request(b.uart, Type::Provision, 40, garbage, sizeof garbage);
  b.pollAll();
  FW_CHECK(isError(b.reply(), 40, Reason::BadRecord));
  request(b.uart, static_cast<Type>(0x33), 41, nullptr, 0);
  b.pollAll();
  FW_CHECK(isError(b.reply(), 41, Reason::UnknownType));

  FW_CHECK(memcmp(before, b.flash.bytes(), b.flash.size()) == 0);
  FW_CHECK_EQ(b.flash.erases(), erases);
  FW_CHECK_EQ(b.port.refused(Reason::BadCrc), 1u);
  FW_CHECK_EQ(b.port.refused(Reason::Invalid), 10u);
  FW_CHECK_EQ(b.port.refused(Reason::WrongKind), 2u);
  FW_CHECK_EQ(b.port.refused(Reason::BadRecord), 1u);
  FW_CHECK_EQ(b.port.refused(Reason::UnknownType), 1u);

  // COUNTERS reports the same.
  request(b.uart, Type::Counters, 50, nullptr, 0);
  b.pollAll();
  const Reply r = b.reply();
  FW_CHECK_EQ(r.type, 0x84);
  FW_CHECK_EQ(r.payload[0], static_cast<uint8_t>(Reason::Count));
  FW_CHECK_EQ(r.payload[1 + 4 * static_cast<int>(Reason::Invalid)], 10);
}

FW_TEST("service port: a frame split into single bytes, with noise before it, is answered") {
  Bench b(citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  b.uart.chunk = 1;
  const uint8_t noise[] = {0x00, 0x55, 0xFF};
  b.uart.arrive(noise, sizeof noise);
  request(b.uart, Type::Show, 3, nullptr, 0);
  b.pollAll();
  FW_CHECK(isError(b.reply(), 0, Reason::Truncated));  // the noise, ended by the request's END
  const Reply r = b.reply();
  FW_CHECK_EQ(r.type, 0x81);
  FW_CHECK_EQ(r.seq, 3);
}

FW_TEST("service port: a flash that fails keeps the previous record and says so") {
  Bench b(citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  uint8_t payload[service::kMaxPayload];
  request(b.uart, Type::Provision, 1, payload, encoded(trafficRecord(), payload));
  b.pollAll();
  FW_CHECK_EQ(b.reply().type, 0x82);
  NodeProvisioning next = trafficRecord();
  next.traffic.unit_id = 99;
  b.flash.cutAtByte(100);  // the power goes during the erase
  request(b.uart, Type::Provision, 2, payload, encoded(next, payload));
  FW_CHECK(b.pollAll() == ServicePort::Action::None);
  FW_CHECK(isError(b.reply(), 2, Reason::FlashError));
  b.flash.powerOn();
  NodeProvisioning loaded;
  FW_CHECK(loadProvisioning(b.store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER, loaded));
  FW_CHECK_EQ(loaded.traffic.unit_id, 7u);
}

FW_TEST("provisioning: an OTAA air record, its rules, and its AppKey never read back") {
  NodeProvisioning p = airRecord();
  p.air.dev_addr = 0;
  p.air.nwk_s_key.size = 0;
  p.air.app_s_key.size = 0;
  p.air.join_eui.size = 8;
  p.air.app_key.size = 16;
  for (uint8_t i = 0; i < 16; ++i) p.air.app_key.bytes[i] = static_cast<uint8_t>(0xC0 + i);
  p.air.confirmed_every = 1;
  Text why;
  FW_CHECK(validate(p, citygate_v1_NodeKind_NODE_AIR_QUALITY, why) == Verdict::Ok);
  // The largest record still fits the service frame (node.options' bounds: 256 bytes).
  uint8_t out[service::kMaxPayload];
  FW_CHECK(encoded(p, out) > 0);
  NodeProvisioning q = p;
  q.air.app_key.size = 15;
  FW_CHECK(validate(q, citygate_v1_NodeKind_NODE_AIR_QUALITY, why) == Verdict::Invalid);
  FW_CHECK(strstr(why.chars, "air.app_key") != nullptr);
  q = p;
  q.air.join_eui.size = 0;
  FW_CHECK(validate(q, citygate_v1_NodeKind_NODE_AIR_QUALITY, why) == Verdict::Invalid);
  FW_CHECK(strstr(why.chars, "air.join_eui") != nullptr);
  q = p;
  q.air.dev_addr = 0x26011234;  // OTAA and ABP at once
  FW_CHECK(validate(q, citygate_v1_NodeKind_NODE_AIR_QUALITY, why) == Verdict::Invalid);
  FW_CHECK(strstr(why.chars, "OTAA") != nullptr);
  q = p;
  q.air.confirmed_every = 101;
  FW_CHECK(validate(q, citygate_v1_NodeKind_NODE_AIR_QUALITY, why) == Verdict::Invalid);
  FW_CHECK(strstr(why.chars, "confirmed_every") != nullptr);
  q = p;
  withoutKeys(q);
  FW_CHECK(q.keys_set);
  FW_CHECK_EQ(q.air.app_key.size, 0u);
  FW_CHECK_EQ(q.air.app_key.bytes[0], 0);
  FW_CHECK_EQ(q.air.join_eui.size, 8u);  // an EUI is not a key
}
