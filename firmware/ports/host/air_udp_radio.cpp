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
constexpr uint8_t kTxAck = 0x05;

int b64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// The value after "key": inside [p, end), skipping blanks; nullptr when the key is not there.
const char* valueOf(const char* p, const char* end, const char* key) {
  const size_t k = strlen(key);
  for (const char* q = p; q + k + 2 <= end; ++q) {
    if (*q != '"' || memcmp(q + 1, key, k) != 0 || q[k + 1] != '"') continue;
    const char* v = q + k + 2;
    while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) ++v;
    if (v >= end || *v != ':') continue;
    ++v;
    while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) ++v;
    return v;
  }
  return nullptr;
}

bool parseU32(const char* v, const char* end, uint32_t& out) {
  uint64_t n = 0;
  const char* p = v;
  for (; p < end && *p >= '0' && *p <= '9'; ++p) {
    n = n * 10 + static_cast<uint64_t>(*p - '0');
    if (n > 0xFFFFFFFFull) return false;
  }
  if (p == v || (p < end && (*p == '.' || *p == 'e' || *p == 'E'))) return false;
  out = static_cast<uint32_t>(n);
  return true;
}

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

bool base64Decode(const char* text, size_t size, uint8_t* out, size_t capacity, size_t& written) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  size_t pad = 0;
  for (size_t i = 0; i < size; ++i) {
    if (text[i] == '=') {
      ++pad;
      continue;
    }
    const int v = b64Value(text[i]);
    if (v < 0 || pad > 0) return false;  // a bad character, or data after the padding
    acc = (acc << 6 | static_cast<uint32_t>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= capacity) return false;
      out[o++] = static_cast<uint8_t>(acc >> bits);
    }
  }
  if (pad > 2 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0) return false;  // a lone sextet, stray bits
  written = o;
  return true;
}

bool parseTxpk(const char* json, size_t size, Txpk& out) {
  const char* end = json + size;
  const char* obj = valueOf(json, end, "txpk");
  if (obj == nullptr || *obj != '{') return false;
  Txpk t;
  if (const char* v = valueOf(obj, end, "imme")) {
    if (end - v >= 4 && memcmp(v, "true", 4) == 0) {
      t.immediate = true;
    } else if (!(end - v >= 5 && memcmp(v, "false", 5) == 0)) {
      return false;
    }
  }
  if (const char* v = valueOf(obj, end, "tmst")) {
    if (!parseU32(v, end, t.tmst)) return false;
    t.hasTmst = true;
  }
  if (!t.immediate && !t.hasTmst) return false;  // GPS time (tmms) is not served
  const char* d = valueOf(obj, end, "data");
  if (d == nullptr || *d != '"') return false;
  ++d;
  const char* q = d;
  while (q < end && *q != '"') ++q;
  if (q >= end) return false;
  if (!base64Decode(d, static_cast<size_t>(q - d), t.data, 255, t.size) || t.size == 0) return false;
  if (const char* v = valueOf(obj, end, "size")) {
    uint32_t n = 0;
    if (!parseU32(v, end, n) || n != t.size) return false;
  }
  out = t;
  return true;
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
  // Here: when the node's frame ends on air.
  const uint32_t tmst = nowUs() + params.airtimeUs;
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
      onPullResp(buf, static_cast<size_t>(n));
    } else {
      ++stats_.unexpected;
    }
  }
}

uint32_t UdpForwarderRadio::nowUs() const {
  return clock_->nowMs() * 1000u;  // wraps with the 32-bit counter, as the concentrator's does
}

void UdpForwarderRadio::onPullResp(const uint8_t* datagram, size_t size) {
  ++stats_.pullResp;
  Txpk t;
  if (!parseTxpk(reinterpret_cast<const char*>(datagram + 4), size - 4, t)) {
    ++stats_.badTxpk;
    return;
  }
  const char* error = "NONE";
  Pending* slot = nullptr;
  for (Pending& p : queue_) {
    if (!p.used) {
      slot = &p;
      break;
    }
  }
  if (!t.immediate && static_cast<int32_t>(nowUs() - t.tmst) > 0) {
    error = "TOO_LATE";
    ++stats_.tooLate;
  } else if (slot == nullptr) {
    error = "COLLISION_PACKET";
    ++stats_.queueFull;
  } else {
    slot->used = true;
    slot->immediate = t.immediate;
    slot->tmst = t.tmst;
    memcpy(slot->data, t.data, t.size);
    slot->size = t.size;
  }
  // TX_ACK: version, the PULL_RESP's token, 0x05, the gateway EUI, {"txpk_ack":{"error":...}}.
  uint8_t ack[12 + 64] = {kVersion, datagram[1], datagram[2], kTxAck};
  memcpy(ack + 4, eui_, 8);
  const int len =
      snprintf(reinterpret_cast<char*>(ack + 12), sizeof ack - 12, "{\"txpk_ack\":{\"error\":\"%s\"}}", error);
  if (len > 0 && sendDatagram(ack, 12 + static_cast<size_t>(len))) ++stats_.txAcks;
}

size_t UdpForwarderRadio::receive(uint8_t* out, size_t capacity) {
  drain();
  const uint32_t now = nowUs();
  for (Pending& p : queue_) {
    if (!p.used || (!p.immediate && static_cast<int32_t>(now - p.tmst) < 0)) continue;
    p.used = false;
    if (out == nullptr || p.size > capacity) {
      ++stats_.tooLong;
      continue;
    }
    memcpy(out, p.data, p.size);
    ++stats_.delivered;
    return p.size;
  }
  return 0;
}

}  // namespace citygate::fw::host
