// The host air node's radio: a Semtech UDP packet-forwarder shim (protocols.md 3.1). A frame the
// node transmits is what the concentrator would have received: it goes to the gateway's packet
// forwarder port as a PUSH_DATA (protocol v2) carrying one rxpk (base64 frame, freq, datr
// "SF7BW125", codr, tmst, rssi, lsnr, size), as the real forwarder on the gateway's concentrator
// sends it. PULL_DATA keep-alives every 10 s (the forwarder's default), PUSH_ACK / PULL_ACK
// matched by token and counted; a PULL_RESP (downlink) is counted and not transmitted (the
// gateway sends none). POSIX, no heap.
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
    uint32_t pullResp = 0;    // downlinks offered (not transmitted)
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
  size_t receive(uint8_t* out, size_t capacity) override;  // drains ACKs; never a frame

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
  void drain();
  bool sendDatagram(const uint8_t* data, size_t size);
  uint16_t nextToken();

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
  Stats stats_;
};

// Base64 (RFC 4648, padded) of data into out; returns the length written (without the NUL), 0
// when out is too small.
size_t base64Encode(const uint8_t* data, size_t size, char* out, size_t capacity);

}  // namespace citygate::fw::host
