// The downlink side of the packet forwarder: datagrams as the server receives them (PULL_DATA,
// TX_ACK with any JSON, with tokens that may match a transmission in flight) through the
// Downlinks scheduler, and the uplink's FOpts MAC commands. The first byte picks the TX_ACK's
// timing (when it arrives after the uplink); the rest is the datagram.
#include <chrono>
#include <cstdint>
#include <string>

#include "inputs/lora/downlink.hpp"
#include "inputs/lora/semtech_udp.hpp"

namespace cl = citygate::lora;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static cl::json::Document doc;
  static std::string cryptoWhy;
  static std::unique_ptr<cl::Crypto> crypto = cl::Crypto::create(&cryptoWhy);
  if (!crypto || size < 1) return 0;
  const auto mac = cl::parseUplinkMac({data, size});
  (void)mac;
  cl::DownlinkDevice dev;
  dev.id = "d";
  dev.devAddr = 0x26011F42;
  cl::Downlinks d({dev}, {}, *crypto);
  d.restore({});
  d.markPersisted(d.reservations());
  const citygate::SteadyTime t0 = citygate::SteadyTime{} + std::chrono::hours(1000);
  cl::UdpPacket pkt;
  if (cl::parseDatagram({data + 1, size - 1}, pkt)) return 0;
  const std::uint16_t token = static_cast<std::uint16_t>((pkt.token[0] << 8) | pkt.token[1]);
  if (pkt.type == cl::PacketType::PullData) {
    d.notePull(pkt.gatewayEui);
    if (!d.hasPull(pkt.gatewayEui)) __builtin_trap();
    return 0;
  }
  if (pkt.type != cl::PacketType::TxAck) return 0;
  d.notePull(pkt.gatewayEui);
  cl::AcceptedUplink up;
  up.gatewayEui = pkt.gatewayEui;
  up.hasTmst = true;
  up.tmst = token * 65537U;
  up.receivedAt = t0;
  up.frequency = 868.1;
  up.datr = "SF7BW125";
  up.confirmed = true;
  // Transmissions in flight whose tokens the datagram may name.
  for (int i = 0; i < 3; ++i) {
    if (!d.onUplink(up, t0 + std::chrono::milliseconds(100))) __builtin_trap();
  }
  const auto error = cl::parseTxAck(pkt.body, doc);
  if (!error) return 0;
  const auto at = t0 + std::chrono::milliseconds(data[0] * 10);
  std::string why;
  const auto tx = d.onTxAck(pkt.gatewayEui, token, *error, at, &why);
  std::uint64_t dropped = 0;
  for (auto n : d.counters().dropped) dropped += n;
  if (tx) {
    // A retry is only ever for RX2, and only for TOO_LATE / COLLISION_PACKET.
    if (*error != cl::TxAckError::TooLate && *error != cl::TxAckError::CollisionPacket) __builtin_trap();
    if (d.counters().retriedRx2 != 1) __builtin_trap();
  } else if (dropped > 0 && why.empty()) {
    __builtin_trap();  // never silently
  }
  return 0;
}
