// LoRaWAN 1.0.x class A uplinks for the air node (protocols.md 3.2-3.4): the frame
// (MHDR | FHDR | FPort | FRMPayload | MIC), FRMPayload encrypted with the AppSKey (AES-128
// keystream over the A_i blocks), the MIC the first 4 bytes of AES-CMAC(NwkSKey, B0 | msg).
// The AES and CMAC are Mbed TLS's (mbedtls/ beside this file); nothing of the cipher is ours.
//
// No heap: Mbed TLS's cipher layer allocates its contexts from a static buffer (crypto.cpp),
// once per Session at init(); a frame allocates nothing.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mbedtls/aes.h"
#include "mbedtls/cipher.h"

namespace citygate::fw::air {

inline constexpr size_t kKeyBytes = 16;
inline constexpr size_t kFrameOverhead = 1 + 7 + 1 + 4;  // MHDR, FHDR without FOpts, FPort, MIC
inline constexpr size_t kMaxFrame = 64;                  // the node's frames: 13 + 33 bytes at most
inline constexpr uint8_t kMhdrUnconfirmedUp = 0x40;      // MType 010, Major 00
inline constexpr uint8_t kMhdrConfirmedUp = 0x80;        // MType 100

// The two session keys of an ABP device, with their AES and CMAC contexts.
class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sets the keys; false when Mbed TLS refuses (out of its static buffer: not expected).
  bool init(const uint8_t (&nwkSKey)[kKeyBytes], const uint8_t (&appSKey)[kKeyBytes]);
  bool ready() const { return ready_; }

  // The MIC of msg (the PHYPayload without its MIC), with the full 32-bit counter in B0.
  bool mic(const uint8_t* msg, size_t size, uint32_t devAddr, uint32_t fcnt, bool downlink, uint8_t (&out)[4]);
  // Encrypts (or decrypts: the same) an FRMPayload of FPort 1..255 in place with the AppSKey.
  bool cryptPayload(uint8_t* data, size_t size, uint32_t devAddr, uint32_t fcnt, bool downlink);

 private:
  mbedtls_cipher_context_t cmac_;
  mbedtls_aes_context app_;
  bool ready_ = false;
};

struct Uplink {
  uint32_t devAddr = 0;
  uint32_t fcnt = 0;  // the full counter; its 16 low bits go over the air
  uint8_t fport = 1;  // 1..223
  bool confirmed = false;
};

// Builds the PHYPayload of an uplink into out; returns its size, 0 when the session is not
// ready, fport is 0 or above 223, the payload is longer than 222 bytes, or out is too small.
size_t buildUplink(Session& session, const Uplink& up, const uint8_t* payload, size_t size, uint8_t* out,
                   size_t capacity);

}  // namespace citygate::fw::air
