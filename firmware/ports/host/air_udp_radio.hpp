// The host air node's radio: a Semtech UDP packet-forwarder shim (protocols.md 3.1). A frame the
// node transmits is what the concentrator would have received: it goes to the gateway's packet
// forwarder port as a PUSH_DATA (protocol v2) carrying one rxpk (base64 frame, freq, datr
// "SF7BW125", codr, tmst, rssi, lsnr, size), as the real forwarder on the gateway's concentrator
// sends it. PULL_DATA keep-alives every 10 s (the forwarder's default), PUSH_ACK / PULL_ACK
// matched by token and counted.
//
// Downlinks: a PULL_RESP's txpk (JSON, base64 `data`) is answered with a TX_ACK (its token, error
// NONE, or TOO_LATE when its tmst has passed, COLLISION_PACKET when the queue is full) and held
// until its `tmst` (or at once with `imme`), then receive() gives it to the node: the frame reaches
// the node at the time the gateway chose for it. The shim's tmst is the node's clock in
// microseconds (32 bits, wrapping as the concentrator's counter does); an rxpk's tmst is the end
// of the uplink (transmit time + the frame's time on air, TxParams::airtimeUs), so a downlink at
// rxpk.tmst + 1 s (5 s for a join-accept) arrives when the node's RX1 opens. POSIX, no heap.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/hal.hpp"
#include "ports/host/posix.hpp"

namespace citygate::fw::host {

class UdpForwarderRadio final : public hal::Radio, public Pollable {
 public:
  static constexpr uint32_t kKeepAliveMs = 10000;

  struct Stats {
    uint32_t pushData = 0;
    uint32_t pushAcks = 0;
    uint32_t pullData = 0;
    uint32_t pullAcks = 0;
    uint32_t pullResp = 0;    // downlinks offered
    uint32_t txAcks = 0;      // TX_ACKs sent (every PULL_RESP that parsed)
    uint32_t tooLate = 0;     // a PULL_RESP whose tmst had passed (TX_ACK TOO_LATE)
    uint32_t queueFull = 0;   // no room for it (TX_ACK COLLISION_PACKET)
    uint32_t badTxpk = 0;     // a PULL_RESP whose JSON is not a txpk the shim can read (no TX_ACK)
    uint32_t delivered = 0;   // downlinks given to the node at their time
    uint32_t tooLong = 0;     // downlinks longer than the node's buffer (dropped)
    uint32_t unexpected = 0;  // datagrams that are none of the above, or a wrong token
    uint32_t sendErrors = 0;
  };

  UdpForwarderRadio() = default;
  ~UdpForwarderRadio();
  UdpForwarderRadio(const UdpForwarderRadio&) = delete;
  UdpForwarderRadio& operator=(const UdpForwarderRadio&) = delete;

  // hostPort: "HOST:PORT" ([v6]:PORT for IPv6). False with a message in `why` (static text or
  // the buffer's).
  bool open(const char* hostPort, const uint8_t (&gatewayEui)[8], hal::Clock& clock, char* why, size_t whySize);

  bool transmit(const uint8_t* frame, size_t size, const hal::TxParams& params) override;
  size_t receive(uint8_t* out, size_t capacity) override;  // a downlink whose time has come

  // A PULL_DATA when the last one is kKeepAliveMs old (and at the first call).
  void keepAlive();

  int pollFd() const override { return fd_; }
  bool wantsWrite() const override { return false; }
  void service() override { drain(); }

  const Stats& stats() const { return stats_; }
  bool pushAckPending() const { return pushPending_; }

  int16_t rssi = -60;  // dBm, as the concentrator would report
  int16_t snrTenths = 75;

 private:
  static constexpr size_t kQueue = 4;
  struct Pending {
    bool used = false;
    bool immediate = false;
    uint32_t tmst = 0;
    uint8_t data[256] = {};
    size_t size = 0;
  };

  void drain();
  void onPullResp(const uint8_t* datagram, size_t size);
  bool sendDatagram(const uint8_t* data, size_t size);
  uint16_t nextToken();
  uint32_t nowUs() const;

  int fd_ = -1;
  uint8_t eui_[8] = {};
  hal::Clock* clock_ = nullptr;
  uint16_t token_ = 0;
  uint16_t pushToken_ = 0;
  uint16_t pullToken_ = 0;
  bool pushPending_ = false;
  bool pullPending_ = false;
  bool pulled_ = false;
  uint32_t lastPullMs_ = 0;
  Pending queue_[kQueue];
  Stats stats_;
};

// A PULL_RESP's txpk (JSON): `imme`, `tmst`, the base64 `data` decoded (and `size`, when given,
// equal to it). False for anything else: no "txpk" object, a missing or bad field, data over 255.
struct Txpk {
  bool immediate = false;
  bool hasTmst = false;
  uint32_t tmst = 0;
  uint8_t data[256] = {};
  size_t size = 0;
};
bool parseTxpk(const char* json, size_t size, Txpk& out);

// Base64 (RFC 4648, padding optional) of text into out; false on a bad character or overflow.
bool base64Decode(const char* text, size_t size, uint8_t* out, size_t capacity, size_t& written);

// Base64 (RFC 4648, padded) of data into out; returns the length written (without the NUL), 0
// when out is too small.
size_t base64Encode(const uint8_t* data, size_t size, char* out, size_t capacity);

}  // namespace citygate::fw::host
