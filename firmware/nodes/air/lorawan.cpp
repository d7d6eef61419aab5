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
  if (!session.ready() || up.fport == 0 || up.fport > 223 || size > 222) return 0;
  const size_t total = kFrameOverhead + size;
  if (total > capacity) return 0;
  out[0] = up.confirmed ? kMhdrConfirmedUp : kMhdrUnconfirmedUp;
  put32le(out + 1, up.devAddr);
  out[5] = 0x00;  // FCtrl: no ADR, no ACK, FOptsLen 0
  out[6] = static_cast<uint8_t>(up.fcnt);
  out[7] = static_cast<uint8_t>(up.fcnt >> 8);
  out[8] = up.fport;
  if (size > 0) memcpy(out + 9, payload, size);
  if (!session.cryptPayload(out + 9, size, up.devAddr, up.fcnt, false)) return 0;
  uint8_t m[4];
  if (!session.mic(out, total - 4, up.devAddr, up.fcnt, false, m)) return 0;
  memcpy(out + total - 4, m, 4);
  return total;
}

}  // namespace citygate::fw::air
