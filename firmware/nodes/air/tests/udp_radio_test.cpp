// The host node's radio, the Semtech UDP packet-forwarder shim (ports/host/air_udp_radio.hpp),
// against a socket playing the gateway: PULL_DATA, PUSH_DATA with its rxpk, the ACKs by token.
// Host only (POSIX sockets).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/check.hpp"
#include "nodes/air/tests/fakes.hpp"
#include "ports/host/air_udp_radio.hpp"

namespace air = citygate::fw::air;
namespace hal = citygate::fw::hal;
namespace host = citygate::fw::host;

namespace {

struct Gateway {
  int fd = -1;
  uint16_t port = 0;
  sockaddr_in peer{};
  socklen_t peerLen = sizeof peer;

  Gateway() {
    fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Gateway() { ::close(fd); }

  // One datagram (waits at most 2 s); its size, 0 when none came.
  size_t receive(uint8_t* out, size_t capacity) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return 0;
    peerLen = sizeof peer;
    const ssize_t n = ::recvfrom(fd, out, capacity, 0, reinterpret_cast<sockaddr*>(&peer), &peerLen);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  void reply(const uint8_t* data, size_t size) {
    ::sendto(fd, data, size, 0, reinterpret_cast<sockaddr*>(&peer), peerLen);
  }
};

const uint8_t kEui[8] = {0xAA, 0x55, 0x5A, 0x00, 0x00, 0x00, 0x00, 0x07};

bool contains(const uint8_t* data, size_t size, const char* text) {
  const size_t n = strlen(text);
  for (size_t i = 0; i + n <= size; ++i) {
    if (memcmp(data + i, text, n) == 0) return true;
  }
  return false;
}

// Waits (at most 2 s) until the radio has seen what the gateway sent.
void settle(host::UdpForwarderRadio& radio, uint32_t(host::UdpForwarderRadio::Stats::*field), uint32_t want) {
  for (int i = 0; i < 200 && radio.stats().*field < want; ++i) {
    radio.receive(nullptr, 0);
    usleep(10000);
  }
}

}  // namespace

FW_TEST("udp radio: base64 as RFC 4648") {
  char out[16];
  const uint8_t foo[] = {'f', 'o', 'o', 'b'};
  FW_CHECK_EQ(host::base64Encode(foo, 0, out, sizeof out), 0u);
  FW_CHECK_EQ(out[0], '\0');
  FW_CHECK_EQ(host::base64Encode(foo, 1, out, sizeof out), 4u);
  FW_CHECK(strcmp(out, "Zg==") == 0);
  FW_CHECK_EQ(host::base64Encode(foo, 2, out, sizeof out), 4u);
  FW_CHECK(strcmp(out, "Zm8=") == 0);
  FW_CHECK_EQ(host::base64Encode(foo, 4, out, sizeof out), 8u);
  FW_CHECK(strcmp(out, "Zm9vYg==") == 0);
  FW_CHECK_EQ(host::base64Encode(foo, 4, out, 8), 0u);  // no room for the NUL
}

FW_TEST("udp radio: PULL_DATA, PUSH_DATA with the rxpk, ACKs matched by token") {
  Gateway gw;
  citygate::fw::test::ManualClock clock(1234);
  host::UdpForwarderRadio radio;
  char where[32];
  char why[256];
  snprintf(where, sizeof where, "127.0.0.1:%u", gw.port);
  FW_CHECK(radio.open(where, kEui, clock, why, sizeof why));

  uint8_t d[1024];
  radio.keepAlive();
  size_t n = gw.receive(d, sizeof d);
  FW_CHECK_EQ(n, 12u);
  FW_CHECK_EQ(d[0], 2);
  FW_CHECK_EQ(d[3], 0x02);  // PULL_DATA
  FW_CHECK(memcmp(d + 4, kEui, 8) == 0);
  const uint8_t pullAck[4] = {2, d[1], d[2], 0x04};
  gw.reply(pullAck, 4);
  settle(radio, &host::UdpForwarderRadio::Stats::pullAcks, 1);
  FW_CHECK_EQ(radio.stats().pullAcks, 1u);
  radio.keepAlive();  // not yet 10 s: nothing
  clock.advance(10000);
  radio.keepAlive();
  FW_CHECK_EQ(radio.stats().pullData, 2u);
  FW_CHECK_EQ(gw.receive(d, sizeof d), 12u);

  // protocols.md 3.1: the PUSH_DATA that carries vector L1.
  uint8_t frame[17];
  air::test::fromHex("40F17DBE4900020001954378762B11FF0D", frame, sizeof frame);
  const hal::TxParams params{868300000, 9, 125, 14};
  FW_CHECK(radio.transmit(frame, sizeof frame, params));
  n = gw.receive(d, sizeof d);
  FW_CHECK(n > 12);
  FW_CHECK_EQ(d[0], 2);
  FW_CHECK_EQ(d[3], 0x00);  // PUSH_DATA
  FW_CHECK(memcmp(d + 4, kEui, 8) == 0);
  FW_CHECK(contains(d, n, "{\"rxpk\":[{\"tmst\":"));
  FW_CHECK(contains(d, n, "\"chan\":1,"));
  FW_CHECK(contains(d, n, "\"freq\":868.300000,"));
  FW_CHECK(contains(d, n, "\"stat\":1,"));
  FW_CHECK(contains(d, n, "\"modu\":\"LORA\","));
  FW_CHECK(contains(d, n, "\"datr\":\"SF9BW125\","));
  FW_CHECK(contains(d, n, "\"codr\":\"4/5\","));
  FW_CHECK(contains(d, n, "\"rssi\":-60,"));
  FW_CHECK(contains(d, n, "\"lsnr\":7.5,"));
  FW_CHECK(contains(d, n, "\"size\":17,"));
  FW_CHECK(contains(d, n, "\"data\":\"QPF9vkkAAgABlUN4disR/w0=\"}]}"));
  FW_CHECK(radio.pushAckPending());
  const uint8_t wrongToken[4] = {2, static_cast<uint8_t>(d[1] ^ 0xFF), d[2], 0x01};
  gw.reply(wrongToken, 4);
  const uint8_t pushAck[4] = {2, d[1], d[2], 0x01};
  gw.reply(pushAck, 4);
  settle(radio, &host::UdpForwarderRadio::Stats::pushAcks, 1);
  FW_CHECK_EQ(radio.stats().pushAcks, 1u);
  FW_CHECK_EQ(radio.stats().unexpected, 1u);
  FW_CHECK(!radio.pushAckPending());

  // A negative SNR above -1 keeps its sign.
  radio.snrTenths = -5;
  FW_CHECK(radio.transmit(frame, sizeof frame, params));
  n = gw.receive(d, sizeof d);
  FW_CHECK(contains(d, n, "\"lsnr\":-0.5,"));
}

FW_TEST("udp radio: a gateway address that is not HOST:PORT, or does not resolve, is refused") {
  citygate::fw::test::ManualClock clock;
  host::UdpForwarderRadio radio;
  char why[256] = {};
  FW_CHECK(!radio.open("localhost", kEui, clock, why, sizeof why));
  FW_CHECK(strstr(why, "expected HOST:PORT") != nullptr);
  FW_CHECK(!radio.open("no-such-host.invalid:1700", kEui, clock, why, sizeof why));
  FW_CHECK(strstr(why, "no-such-host.invalid") != nullptr);
  uint8_t frame[4] = {};
  FW_CHECK(!radio.transmit(frame, 4, hal::TxParams{868100000, 7, 125, 14}));  // not open
}

FW_TEST("udp radio: txpk JSON as the gateway writes it, and what is refused") {
  host::Txpk t;
  const char gw[] =
      "{\"txpk\":{\"imme\":false,\"tmst\":6000000,\"freq\":868.300000,\"rfch\":0,\"powe\":14,\"modu\":\"LORA\","
      "\"datr\":\"SF9BW125\",\"codr\":\"4/5\",\"ipol\":true,\"size\":17,\"data\":\"ILC2oL2F4XINvzqXfAZfiGA=\"}}";
  FW_CHECK(host::parseTxpk(gw, sizeof gw - 1, t));
  FW_CHECK(!t.immediate);
  FW_CHECK(t.hasTmst);
  FW_CHECK_EQ(t.tmst, 6000000u);
  uint8_t want[17];
  air::test::fromHex("20b0b6a0bd85e1720dbf3a977c065f8860", want, sizeof want);
  FW_CHECK_EQ(t.size, 17u);
  FW_CHECK(memcmp(t.data, want, 17) == 0);
  const char imme[] = "{\"txpk\":{\"imme\":true,\"data\":\"YPF9vkkgAgAB+dZdJw\"}}";  // unpadded
  FW_CHECK(host::parseTxpk(imme, sizeof imme - 1, t));
  FW_CHECK(t.immediate);
  FW_CHECK_EQ(t.size, 13u);
  const char* bad[] = {
      "{\"rxpk\":{\"tmst\":1,\"data\":\"AAE=\"}}",             // not a txpk
      "{\"txpk\":{\"data\":\"AAE=\"}}",                        // neither tmst nor imme
      "{\"txpk\":{\"tmst\":1,\"size\":3,\"data\":\"AAE=\"}}",  // size is not the data's
      "{\"txpk\":{\"tmst\":1,\"data\":\"A*E=\"}}",             // not base64
      "{\"txpk\":{\"tmst\":4294967296,\"data\":\"AAE=\"}}",    // over 32 bits
      "{\"txpk\":{\"tmst\":1.5,\"data\":\"AAE=\"}}",           // not an integer
      "{\"txpk\":{\"tmst\":1,\"data\":\"\"}}",                 // empty
      "{\"txpk\":{\"tmst\":1,\"data\":\"AAE=",                 // cut
  };
  for (const char* b : bad) FW_CHECK(!host::parseTxpk(b, strlen(b), t));
}

FW_TEST("udp radio: a PULL_RESP is TX_ACKed and reaches the node at its tmst, a late one TOO_LATE") {
  Gateway gw;
  citygate::fw::test::ManualClock clock(1000);
  host::UdpForwarderRadio radio;
  char where[32];
  char why[256];
  snprintf(where, sizeof where, "127.0.0.1:%u", gw.port);
  FW_CHECK(radio.open(where, kEui, clock, why, sizeof why));
  uint8_t d[1024];
  radio.keepAlive();
  FW_CHECK_EQ(gw.receive(d, sizeof d), 12u);
  // The uplink's rxpk tmst is the end of the frame: transmit time + its airtime.
  uint8_t frame[17];
  air::test::fromHex("40F17DBE4900020001954378762B11FF0D", frame, sizeof frame);
  hal::TxParams params{868100000, 7, 125, 14};
  params.airtimeUs = 51456;
  FW_CHECK(radio.transmit(frame, sizeof frame, params));
  size_t n = gw.receive(d, sizeof d);
  FW_CHECK(contains(d, n, "\"tmst\":1051456,"));
  // RX1, a second later: the L4 ACK.
  char resp[256];
  resp[0] = 2;
  resp[1] = 0x12;
  resp[2] = 0x34;
  resp[3] = 0x03;
  const int len =
      snprintf(resp + 4, sizeof resp - 4,
               "{\"txpk\":{\"imme\":false,\"tmst\":2051456,\"size\":13,\"data\":\"YPF9vkkgAgAB+dZdJw==\"}}");
  auto offer = [&](const uint8_t* data, size_t size, uint32_t want) {  // until the shim has read it
    gw.reply(data, size);
    for (int i = 0; i < 200 && radio.stats().pullResp < want; ++i) {
      radio.service();
      usleep(10000);
    }
  };
  offer(reinterpret_cast<uint8_t*>(resp), 4 + static_cast<size_t>(len), 1);
  n = gw.receive(d, sizeof d);  // the TX_ACK
  FW_CHECK(n > 12);
  FW_CHECK_EQ(d[0], 2);
  FW_CHECK_EQ(d[1], 0x12);
  FW_CHECK_EQ(d[2], 0x34);
  FW_CHECK_EQ(d[3], 0x05);
  FW_CHECK(memcmp(d + 4, kEui, 8) == 0);
  FW_CHECK(contains(d, n, "{\"txpk_ack\":{\"error\":\"NONE\"}}"));
  uint8_t rx[64];
  FW_CHECK_EQ(radio.receive(rx, sizeof rx), 0u);  // not before its time
  clock.now = 2051;
  FW_CHECK_EQ(radio.receive(rx, sizeof rx), 0u);  // 2051000 us < 2051456
  clock.now = 2052;
  FW_CHECK_EQ(radio.receive(rx, sizeof rx), 13u);
  uint8_t l4[13];
  air::test::fromHex("60f17dbe4920020001f9d65d27", l4, sizeof l4);
  FW_CHECK(memcmp(rx, l4, 13) == 0);
  FW_CHECK_EQ(radio.stats().delivered, 1u);
  FW_CHECK_EQ(radio.receive(rx, sizeof rx), 0u);  // once
  // A PULL_RESP whose time has passed: TOO_LATE, never delivered.
  offer(reinterpret_cast<uint8_t*>(resp), 4 + static_cast<size_t>(len), 2);
  n = gw.receive(d, sizeof d);
  FW_CHECK(contains(d, n, "\"error\":\"TOO_LATE\""));
  FW_CHECK_EQ(radio.stats().tooLate, 1u);
  // Garbage: counted, no TX_ACK.
  const char junk[] = "\x02\x00\x01\x03{\"txpk\":{}}";
  offer(reinterpret_cast<const uint8_t*>(junk), sizeof junk - 1, 3);
  FW_CHECK_EQ(radio.stats().badTxpk, 1u);
  FW_CHECK_EQ(radio.stats().txAcks, 2u);
}
