#include "ports/host/air_udp_radio.hpp"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace citygate::fw::host {

namespace {

constexpr uint8_t kVersion = 2;
constexpr uint8_t kPushData = 0x00;
constexpr uint8_t kPushAck = 0x01;
constexpr uint8_t kPullData = 0x02;
constexpr uint8_t kPullResp = 0x03;
constexpr uint8_t kPullAck = 0x04;

}  // namespace

size_t base64Encode(const uint8_t* data, size_t size, char* out, size_t capacity) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const size_t need = 4 * ((size + 2) / 3);
  if (need + 1 > capacity) return 0;
  size_t o = 0;
  for (size_t i = 0; i < size; i += 3) {
    const uint32_t a = data[i];
    const uint32_t b = i + 1 < size ? data[i + 1] : 0;
    const uint32_t c = i + 2 < size ? data[i + 2] : 0;
    const uint32_t v = a << 16 | b << 8 | c;
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = i + 1 < size ? kAlphabet[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < size ? kAlphabet[v & 63] : '=';
  }
  out[o] = '\0';
  return o;
}

UdpForwarderRadio::~UdpForwarderRadio() {
  if (fd_ >= 0) ::close(fd_);
}

bool UdpForwarderRadio::open(const char* hostPort, const uint8_t (&gatewayEui)[8], hal::Clock& clock, char* why,
                             size_t whySize) {
  clock_ = &clock;
  memcpy(eui_, gatewayEui, sizeof eui_);
  char host[256];
  const char* colon = strrchr(hostPort, ':');
  if (colon == nullptr || colon == hostPort || colon[1] == '\0' ||
      static_cast<size_t>(colon - hostPort) >= sizeof host) {
    snprintf(why, whySize, "--gateway '%s': expected HOST:PORT", hostPort);
    return false;
  }
  size_t hostLen = static_cast<size_t>(colon - hostPort);
  const char* h = hostPort;
  if (hostLen >= 2 && h[0] == '[' && h[hostLen - 1] == ']') {  // [v6]:port
    ++h;
    hostLen -= 2;
  }
  memcpy(host, h, hostLen);
  host[hostLen] = '\0';
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host, colon + 1, &hints, &res);
  if (rc != 0) {
    snprintf(why, whySize, "--gateway '%s': %s", hostPort, gai_strerror(rc));
    return false;
  }
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      fd_ = fd;
      break;
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  if (fd_ < 0) {
    snprintf(why, whySize, "--gateway '%s': cannot open a UDP socket to it: %s", hostPort, strerror(errno));
    return false;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  token_ = static_cast<uint16_t>(ts.tv_nsec ^ getpid());
  return true;
}

uint16_t UdpForwarderRadio::nextToken() {
  return ++token_;
}

bool UdpForwarderRadio::sendDatagram(const uint8_t* data, size_t size) {
  const ssize_t n = ::send(fd_, data, size, 0);
  if (n != static_cast<ssize_t>(size)) {
    ++stats_.sendErrors;
    return false;
  }
  return true;
}

bool UdpForwarderRadio::transmit(const uint8_t* frame, size_t size, const hal::TxParams& params) {
  if (fd_ < 0 || size == 0 || size > 255) return false;
  drain();
  char b64[4 * 86 + 1];
  base64Encode(frame, size, b64, sizeof b64);
  // tmst: the concentrator's free-running microsecond counter at the end of reception.
  const uint32_t tmst = clock_->nowMs() * 1000u;
  const uint32_t chan = params.frequencyHz >= 868100000u ? (params.frequencyHz - 868100000u) / 200000u : 0;
  const int snrWhole = snrTenths / 10;
  const int snrFrac = (snrTenths < 0 ? -snrTenths : snrTenths) % 10;
  uint8_t datagram[12 + 640];
  char* json = reinterpret_cast<char*>(datagram + 12);
  const int len =
      snprintf(json, sizeof datagram - 12,
               "{\"rxpk\":[{\"tmst\":%u,\"chan\":%u,\"rfch\":0,\"freq\":%u.%06u,\"stat\":1,"
               "\"modu\":\"LORA\",\"datr\":\"SF%uBW%u\",\"codr\":\"4/5\",\"rssi\":%d,"
               "\"lsnr\":%s%d.%d,\"size\":%u,\"data\":\"%s\"}]}",
               tmst, chan, params.frequencyHz / 1000000u, params.frequencyHz % 1000000u, params.spreadingFactor,
               params.bandwidthKhz, rssi, (snrTenths < 0 && snrWhole == 0) ? "-" : "", snrWhole, snrFrac,
               static_cast<unsigned>(size), b64);
  if (len <= 0 || static_cast<size_t>(len) >= sizeof datagram - 12) return false;
  pushToken_ = nextToken();
  datagram[0] = kVersion;
  datagram[1] = static_cast<uint8_t>(pushToken_ & 0xFF);
  datagram[2] = static_cast<uint8_t>(pushToken_ >> 8);
  datagram[3] = kPushData;
  memcpy(datagram + 4, eui_, 8);
  if (!sendDatagram(datagram, 12 + static_cast<size_t>(len))) return false;
  ++stats_.pushData;
  pushPending_ = true;
  return true;
}

void UdpForwarderRadio::keepAlive() {
  if (fd_ < 0) return;
  const uint32_t now = clock_->nowMs();
  if (pulled_ && hal::elapsed(lastPullMs_, now) < kKeepAliveMs) return;
  pulled_ = true;
  lastPullMs_ = now;
  pullToken_ = nextToken();
  uint8_t d[12] = {kVersion, static_cast<uint8_t>(pullToken_ & 0xFF), static_cast<uint8_t>(pullToken_ >> 8), kPullData};
  memcpy(d + 4, eui_, 8);
  if (sendDatagram(d, sizeof d)) {
    ++stats_.pullData;
    pullPending_ = true;
  }
}

void UdpForwarderRadio::drain() {
  if (fd_ < 0) return;
  uint8_t buf[2048];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return;  // EAGAIN, or ECONNREFUSED (no gateway yet): the next frame tries again
    if (n < 4 || (buf[0] != 1 && buf[0] != 2)) {
      ++stats_.unexpected;
      continue;
    }
    const uint16_t token = static_cast<uint16_t>(buf[1] | buf[2] << 8);
    if (buf[3] == kPushAck && pushPending_ && token == pushToken_) {
      ++stats_.pushAcks;
      pushPending_ = false;
    } else if (buf[3] == kPullAck && pullPending_ && token == pullToken_) {
      ++stats_.pullAcks;
      pullPending_ = false;
    } else if (buf[3] == kPullResp) {
      ++stats_.pullResp;
    } else {
      ++stats_.unexpected;
    }
  }
}

size_t UdpForwarderRadio::receive(uint8_t*, size_t) {
  drain();
  return 0;
}

}  // namespace citygate::fw::host
