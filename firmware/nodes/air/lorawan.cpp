#include "nodes/air/lorawan.hpp"

#include <string.h>

#include "mbedtls/cmac.h"
#include "mbedtls/memory_buffer_alloc.h"

namespace citygate::fw::air {

namespace {

// Mbed TLS's heap: its cipher layer allocates the AES context of the CMAC (about 300 bytes with
// the allocator's header) and the CMAC state (about 80) once per Session. Room for four sessions
// (the node has one; a unit test a few at once).
alignas(8) unsigned char gMbedtlsPool[2048];
bool gPoolReady = false;

void ensurePool() {
  if (!gPoolReady) {
    mbedtls_memory_buffer_alloc_init(gMbedtlsPool, sizeof gMbedtlsPool);
    gPoolReady = true;
  }
}

void put32le(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

// B0 (first byte 0x49) and A_i (first byte 0x01): 0x?? | 4 x 0 | Dir | DevAddr | FCnt | 0 | last.
void block(uint8_t (&b)[16], uint8_t first, bool downlink, uint32_t devAddr, uint32_t fcnt, uint8_t last) {
  memset(b, 0, sizeof b);
  b[0] = first;
  b[5] = downlink ? 1 : 0;
  put32le(b + 6, devAddr);
  put32le(b + 10, fcnt);
  b[15] = last;
}

}  // namespace

Session::Session() {
  mbedtls_cipher_init(&cmac_);
  mbedtls_aes_init(&app_);
}

Session::~Session() {
  mbedtls_cipher_free(&cmac_);  // returns its two allocations to the pool
  mbedtls_aes_free(&app_);
}

bool Session::init(const uint8_t (&nwkSKey)[kKeyBytes], const uint8_t (&appSKey)[kKeyBytes]) {
  ensurePool();
  ready_ = false;
  mbedtls_cipher_free(&cmac_);
  mbedtls_cipher_init(&cmac_);
  const mbedtls_cipher_info_t* info = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB);
  if (info == nullptr || mbedtls_cipher_setup(&cmac_, info) != 0) return false;
  if (mbedtls_cipher_cmac_starts(&cmac_, nwkSKey, 8 * kKeyBytes) != 0) return false;
  if (mbedtls_aes_setkey_enc(&app_, appSKey, 8 * kKeyBytes) != 0) return false;
  ready_ = true;
  return true;
}

bool Session::mic(const uint8_t* msg, size_t size, uint32_t devAddr, uint32_t fcnt, bool downlink, uint8_t (&out)[4]) {
  if (!ready_ || size > 255) return false;
  uint8_t b0[16];
  block(b0, 0x49, downlink, devAddr, fcnt, static_cast<uint8_t>(size));
  uint8_t full[16];
  if (mbedtls_cipher_cmac_reset(&cmac_) != 0 || mbedtls_cipher_cmac_update(&cmac_, b0, sizeof b0) != 0 ||
      mbedtls_cipher_cmac_update(&cmac_, msg, size) != 0 || mbedtls_cipher_cmac_finish(&cmac_, full) != 0) {
    return false;
  }
  memcpy(out, full, 4);
  return true;
}

bool Session::cryptPayload(uint8_t* data, size_t size, uint32_t devAddr, uint32_t fcnt, bool downlink) {
  if (!ready_) return false;
  for (size_t done = 0, i = 1; done < size; done += 16, ++i) {
    uint8_t a[16];
    uint8_t s[16];
    block(a, 0x01, downlink, devAddr, fcnt, static_cast<uint8_t>(i));
    if (mbedtls_aes_crypt_ecb(&app_, MBEDTLS_AES_ENCRYPT, a, s) != 0) return false;
    for (size_t k = 0; k < 16 && done + k < size; ++k) data[done + k] ^= s[k];
  }
  return true;
}

size_t buildUplink(Session& session, const Uplink& up, const uint8_t* payload, size_t size, uint8_t* out,
                   size_t capacity) {
  if (!session.ready() || up.fport == 0 || up.fport > 223 || size > 222 || up.foptsLen > 15) return 0;
  if (up.foptsLen > 0 && up.fopts == nullptr) return 0;
  const size_t total = kFrameOverhead + up.foptsLen + size;
  if (total > capacity) return 0;
  out[0] = up.confirmed ? kMhdrConfirmedUp : kMhdrUnconfirmedUp;
  put32le(out + 1, up.devAddr);
  out[5] = static_cast<uint8_t>((up.ack ? 0x20 : 0x00) | up.foptsLen);  // FCtrl: no ADR
  out[6] = static_cast<uint8_t>(up.fcnt);
  out[7] = static_cast<uint8_t>(up.fcnt >> 8);
  if (up.foptsLen > 0) memcpy(out + 8, up.fopts, up.foptsLen);
  const size_t port = 8 + up.foptsLen;
  out[port] = up.fport;
  if (size > 0) memcpy(out + port + 1, payload, size);
  if (!session.cryptPayload(out + port + 1, size, up.devAddr, up.fcnt, false)) return 0;
  uint8_t m[4];
  if (!session.mic(out, total - 4, up.devAddr, up.fcnt, false, m)) return 0;
  memcpy(out + total - 4, m, 4);
  return total;
}

// ---- OTAA and downlinks ------------------------------------------------------------------------

namespace {

uint32_t get32le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

uint32_t get24le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16;
}

// Constant time: a MIC compare leaks nothing of where it differs.
bool sameMic(const uint8_t* a, const uint8_t* b) {
  uint8_t d = 0;
  for (int i = 0; i < 4; ++i) d = static_cast<uint8_t>(d | (a[i] ^ b[i]));
  return d == 0;
}

}  // namespace

const char* rxErrorName(RxError e) {
  switch (e) {
    case RxError::None:
      return "none";
    case RxError::TooShort:
      return "too_short";
    case RxError::TooLong:
      return "too_long";
    case RxError::NotForUs:
      return "not_for_us";
    case RxError::Unexpected:
      return "unexpected";
    case RxError::BadMic:
      return "bad_mic";
    case RxError::OtherDevAddr:
      return "other_dev_addr";
    case RxError::Replay:
      return "replay";
    case RxError::BadFopts:
      return "bad_fopts";
    case RxError::BadMac:
      return "bad_mac";
    case RxError::Crypto:
      return "crypto";
    case RxError::Count:
      break;
  }
  return "?";
}

bool aesEncrypt(const uint8_t (&key)[kKeyBytes], const uint8_t* in, uint8_t* out, size_t blocks) {
  mbedtls_aes_context aes;
  mbedtls_aes_init(&aes);
  bool ok = mbedtls_aes_setkey_enc(&aes, key, 8 * kKeyBytes) == 0;
  for (size_t i = 0; ok && i < blocks; ++i) {
    ok = mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, in + 16 * i, out + 16 * i) == 0;
  }
  mbedtls_aes_free(&aes);
  return ok;
}

bool cmac(const uint8_t (&key)[kKeyBytes], const uint8_t* data, size_t size, uint8_t (&out)[16]) {
  ensurePool();
  const mbedtls_cipher_info_t* info = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB);
  return info != nullptr && mbedtls_cipher_cmac(info, key, 8 * kKeyBytes, data, size, out) == 0;
}

bool buildJoinRequest(const uint8_t (&appKey)[kKeyBytes], const uint8_t (&joinEui)[8], const uint8_t (&devEui)[8],
                      uint16_t devNonce, uint8_t (&out)[kJoinRequestBytes]) {
  out[0] = kMhdrJoinRequest;
  for (int i = 0; i < 8; ++i) {
    out[1 + i] = joinEui[7 - i];
    out[9 + i] = devEui[7 - i];
  }
  out[17] = static_cast<uint8_t>(devNonce);
  out[18] = static_cast<uint8_t>(devNonce >> 8);
  uint8_t full[16];
  if (!cmac(appKey, out, 19, full)) return false;
  memcpy(out + 19, full, 4);
  return true;
}

bool identityOf(const uint8_t (&appKey)[kKeyBytes], const uint8_t (&devEui)[8], const uint8_t (&joinEui)[8],
                uint32_t& out) {
  uint8_t in[16];
  memcpy(in, devEui, 8);
  memcpy(in + 8, joinEui, 8);
  uint8_t full[16];
  if (!cmac(appKey, in, sizeof in, full)) return false;
  out = get32le(full);
  return true;
}

bool deriveSessionKeys(const uint8_t (&appKey)[kKeyBytes], uint32_t joinNonce, uint32_t netId, uint16_t devNonce,
                       uint8_t (&nwkSKey)[kKeyBytes], uint8_t (&appSKey)[kKeyBytes]) {
  uint8_t b[16] = {};
  b[1] = static_cast<uint8_t>(joinNonce);
  b[2] = static_cast<uint8_t>(joinNonce >> 8);
  b[3] = static_cast<uint8_t>(joinNonce >> 16);
  b[4] = static_cast<uint8_t>(netId);
  b[5] = static_cast<uint8_t>(netId >> 8);
  b[6] = static_cast<uint8_t>(netId >> 16);
  b[7] = static_cast<uint8_t>(devNonce);
  b[8] = static_cast<uint8_t>(devNonce >> 8);
  b[0] = 0x01;
  if (!aesEncrypt(appKey, b, nwkSKey, 1)) return false;
  b[0] = 0x02;
  return aesEncrypt(appKey, b, appSKey, 1);
}

RxError parseJoinAccept(const uint8_t (&appKey)[kKeyBytes], uint16_t devNonce, const uint8_t* frame, size_t size,
                        JoinAccept& out) {
  if (size < 1) return RxError::TooShort;
  if (frame[0] != kMhdrJoinAccept) {
    return (frame[0] & 0xE0) == kMhdrUnconfirmedDown || (frame[0] & 0xE0) == kMhdrConfirmedDown ? RxError::Unexpected
                                                                                                : RxError::NotForUs;
  }
  if (size < 17) return RxError::TooShort;
  if (size != 17 && size != 33) return RxError::TooLong;
  // MHDR | the decrypted body (JoinNonce .. CFList, MIC).
  uint8_t plain[33];
  plain[0] = frame[0];
  if (!aesEncrypt(appKey, frame + 1, plain + 1, (size - 1) / 16)) return RxError::Crypto;
  uint8_t full[16];
  if (!cmac(appKey, plain, size - 4, full)) return RxError::Crypto;
  if (!sameMic(full, plain + size - 4)) return RxError::BadMic;
  JoinAccept a;
  a.joinNonce = get24le(plain + 1);
  a.netId = get24le(plain + 4);
  a.devAddr = get32le(plain + 7);
  a.dlSettings = plain[11];
  a.rxDelay = static_cast<uint8_t>(plain[12] & 0x0F);
  if (a.rxDelay == 0) a.rxDelay = 1;
  a.hasCfList = size == 33;
  if (a.hasCfList) memcpy(a.cfList, plain + 13, 16);
  if (!deriveSessionKeys(appKey, a.joinNonce, a.netId, devNonce, a.nwkSKey, a.appSKey)) return RxError::Crypto;
  out = a;
  return RxError::None;
}

RxError parseDownlink(Session& session, uint32_t devAddr, bool haveLast, uint32_t lastFcnt, const uint8_t* frame,
                      size_t size, Downlink& out) {
  if (size < 1) return RxError::TooShort;
  const uint8_t mtype = frame[0] & 0xE0;
  if ((frame[0] & 0x03) != 0) return RxError::NotForUs;  // Major other than LoRaWAN R1
  if (mtype == kMhdrJoinAccept) return RxError::Unexpected;
  if (mtype != kMhdrUnconfirmedDown && mtype != kMhdrConfirmedDown) return RxError::NotForUs;
  if (size < 12) return RxError::TooShort;
  if (size > kMaxDownlink) return RxError::TooLong;
  if (get32le(frame + 1) != devAddr) return RxError::OtherDevAddr;
  const uint8_t fctrl = frame[5];
  const size_t foptsLen = fctrl & 0x0F;
  const size_t macEnd = 8 + foptsLen;  // FPort, or the MIC when there is none
  if (macEnd + 4 > size) return RxError::BadFopts;
  const uint16_t fcnt16 = static_cast<uint16_t>(frame[6] | frame[7] << 8);
  // The full counter: the smallest above the last one with these 16 low bits.
  uint32_t full = fcnt16;
  if (haveLast) {
    full = (lastFcnt & 0xFFFF0000u) | fcnt16;
    if (full <= lastFcnt) full += 0x10000u;
  }
  uint8_t mic[4];
  if (!session.mic(frame, size - 4, devAddr, full, true, mic)) return RxError::Crypto;
  if (!sameMic(mic, frame + size - 4)) {
    // An old frame again: its MIC verifies with the counter it had.
    const uint32_t old = (lastFcnt & 0xFFFF0000u) | fcnt16;
    if (haveLast && old <= lastFcnt && session.mic(frame, size - 4, devAddr, old, true, mic) &&
        sameMic(mic, frame + size - 4)) {
      return RxError::Replay;
    }
    return RxError::BadMic;
  }
  Downlink d;
  d.fcnt = full;
  d.confirmed = mtype == kMhdrConfirmedDown;
  d.ack = (fctrl & 0x20) != 0;
  d.fpending = (fctrl & 0x10) != 0;
  d.foptsLen = static_cast<uint8_t>(foptsLen);
  memcpy(d.fopts, frame + 8, foptsLen);
  if (macEnd + 4 < size) {
    d.hasPort = true;
    d.fport = frame[macEnd];
    if (d.fport == 0 && foptsLen > 0) return RxError::BadFopts;
    d.payloadSize = size - 4 - macEnd - 1;
    memcpy(d.payload, frame + macEnd + 1, d.payloadSize);
    // FPort 0 is encrypted with the NwkSKey: left as received (the node reads FOpts only).
    if (d.fport != 0 && !session.cryptPayload(d.payload, d.payloadSize, devAddr, full, true)) return RxError::Crypto;
  }
  out = d;
  return RxError::None;
}

RxError parseMacCommands(const uint8_t* fopts, size_t size, MacResult& out) {
  // The payload length of each 1.0.x downlink command (network -> device), by CID.
  static constexpr int8_t kLength[] = {-1, -1, 2, 4, 1, 4, 0, 5, 1, 1, 4};
  MacResult r;
  size_t i = 0;
  while (i < size) {
    const uint8_t cid = fopts[i];
    const int8_t len = cid < sizeof kLength ? kLength[cid] : -1;
    if (len < 0 || i + 1 + static_cast<size_t>(len) > size) {
      out = r;
      return RxError::BadMac;
    }
    if (cid == 0x02) {
      r.linkCheck = true;
      r.margin = fopts[i + 1];
      r.gatewayCount = fopts[i + 2];
    } else if (cid == 0x06) {
      r.devStatus = true;
    } else {
      ++r.ignored;
    }
    i += 1 + static_cast<size_t>(len);
  }
  out = r;
  return RxError::None;
}

}  // namespace citygate::fw::air
