// The Semtech UDP packet-forwarder protocol, versions 1 and 2 (pure parsing, no sockets).
//
//   PUSH_DATA  gw->srv  ver | token(2) | 0x00 | EUI(8) | JSON {"rxpk":[...],"stat":{...}}
//   PUSH_ACK   srv->gw  ver | token | 0x01
//   PULL_DATA  gw->srv  ver | token | 0x02 | EUI(8)
//   PULL_ACK   srv->gw  ver | token | 0x04
//   TX_ACK     gw->srv  ver | token | 0x05 | EUI(8) [| JSON]
//
// The token is opaque and echoed as received. rxpk objects are checked strictly: required
// fields with the right types and ranges, stat == 1 (CRC OK) only, strict base64 whose length
// matches "size", at most 255 bytes. Every rejection has a Reason. Any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "inputs/lora/json.hpp"
#include "inputs/lora/phy_payload.hpp"
#include "inputs/lora/reasons.hpp"

namespace citygate::lora {

enum class PacketType : std::uint8_t { PushData = 0, PushAck = 1, PullData = 2, PullResp = 3, PullAck = 4, TxAck = 5 };

struct UdpPacket {
  std::uint8_t version = 2;
  std::array<std::uint8_t, 2> token{};
  PacketType type = PacketType::PushData;
  std::uint64_t gatewayEui = 0;
  std::string_view body;  // the JSON after the header (PUSH_DATA, TX_ACK)
};

inline constexpr std::size_t kMaxRxpkPerDatagram = 64;

// Parses the header of a datagram sent to the server. Only PUSH_DATA, PULL_DATA and TX_ACK are
// valid here; the server-bound types are UnexpectedPacketType.
std::optional<Reason> parseDatagram(std::span<const std::uint8_t> datagram, UdpPacket& out);

// PUSH_ACK for a PUSH_DATA, PULL_ACK for a PULL_DATA: version | token | type.
std::array<std::uint8_t, 4> makeAck(const UdpPacket& request);

// One received packet of a PUSH_DATA. String views point into the JSON document.
struct RxPacket {
  double freq = 0.0;  // MHz
  int stat = 0;
  bool lora = true;       // modu LORA (else FSK)
  std::string_view datr;  // "SF7BW125" (LORA)
  std::uint32_t fskRate = 0;
  double rssi = 0.0;
  double lsnr = 0.0;
  bool hasTmst = false;
  std::uint32_t tmst = 0;
  std::uint32_t chan = 0;
  std::uint32_t rfch = 0;
  std::array<std::uint8_t, kMaxPhyPayload> data{};
  std::size_t size = 0;

  std::span<const std::uint8_t> phy() const { return std::span<const std::uint8_t>(data.data(), size); }
};

struct StatReport {
  bool present = false;
  std::string_view time;
  std::uint64_t rxnb = 0, rxok = 0, rxfw = 0, dwnb = 0, txnb = 0;
  double ackr = 0.0;
  bool hasPosition = false;
  double lati = 0.0, lon = 0.0, alti = 0.0;
  bool hasTemp = false;
  double temp = 0.0;
};

// Receives the rxpk of a PUSH_DATA one by one (no container of packets is built).
class PushVisitor {
 public:
  virtual ~PushVisitor() = default;
  virtual void onRxpk(const RxPacket& rx) = 0;
  virtual void onRxpkRejected(Reason why) = 0;
};

// Parses the JSON of a PUSH_DATA with `doc`; valid rxpk go to `visitor.onRxpk`, bad ones to
// `onRxpkRejected`, a stat object into `stat`. Returns the reason when the body as a whole is
// unusable (bad JSON, wrong structure); a bad stat object alone gives BadStat after the rxpk.
std::optional<Reason> parsePushData(std::string_view body, json::Document& doc, PushVisitor& visitor, StatReport& stat);

// Parses one rxpk object (exposed for tests and the fuzz target).
std::optional<Reason> parseRxpk(json::Value obj, RxPacket& out);

std::string formatEui(std::uint64_t eui);  // 16 upper-case hex digits

}  // namespace citygate::lora
