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
inline constexpr size_t kMaxFrame = 64;                  // the node's frames: 13 + 15 FOpts + 33 bytes at most
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
  bool ack = false;                // FCtrl.ACK: the last downlink was confirmed
  const uint8_t* fopts = nullptr;  // MAC commands (answers) in FOpts, plaintext in 1.0.x
  uint8_t foptsLen = 0;            // 0..15
};

// Builds the PHYPayload of an uplink into out; returns its size, 0 when the session is not
// ready, fport is 0 or above 223, FOpts are over 15 bytes, the payload is longer than 222 bytes,
// or out is too small.
size_t buildUplink(Session& session, const Uplink& up, const uint8_t* payload, size_t size, uint8_t* out,
                   size_t capacity);

// ---- OTAA (LoRaWAN 1.0.x, protocols.md 3.3) -------------------------------------------------------
// EUIs are given as displayed (most significant byte first, as the provisioning record and the
// gateway's config write them) and go over the air little-endian.

inline constexpr uint8_t kMhdrJoinRequest = 0x00;
inline constexpr uint8_t kMhdrJoinAccept = 0x20;
inline constexpr uint8_t kMhdrUnconfirmedDown = 0x60;
inline constexpr uint8_t kMhdrConfirmedDown = 0xA0;
inline constexpr size_t kJoinRequestBytes = 23;
inline constexpr size_t kMaxDownlink = 64;  // the node's receive buffer: longer frames are refused

// AES-128-ECB encryption of `blocks` 16-byte blocks (in and out may be the same) and the full
// AES-CMAC of data, with a key of their own (Mbed TLS contexts on the stack / from the pool).
bool aesEncrypt(const uint8_t (&key)[kKeyBytes], const uint8_t* in, uint8_t* out, size_t blocks);
bool cmac(const uint8_t (&key)[kKeyBytes], const uint8_t* data, size_t size, uint8_t (&out)[16]);

// MHDR 0x00 | JoinEUI (LE) | DevEUI (LE) | DevNonce (LE) | MIC = CMAC(AppKey, ...)[0..4].
bool buildJoinRequest(const uint8_t (&appKey)[kKeyBytes], const uint8_t (&joinEui)[8], const uint8_t (&devEui)[8],
                      uint16_t devNonce, uint8_t (&out)[kJoinRequestBytes]);

// Why a received frame was refused (counted per reason by the node; the fuzz target's verdicts).
enum class RxError : uint8_t {
  None = 0,
  TooShort,      // under the smallest frame of its type
  TooLong,       // over kMaxDownlink, or a join-accept that is neither 17 nor 33 bytes
  NotForUs,      // an uplink, a proprietary or RFU frame, a join-request, bad Major
  Unexpected,    // a join-accept while not joining, a data downlink while joining
  BadMic,        // the MIC does not verify (wrong key, damaged frame)
  OtherDevAddr,  // a data downlink for another DevAddr
  Replay,        // a FCntDown at or below the last accepted one
  BadFopts,      // FOptsLen past the frame, or FOpts with FPort 0
  BadMac,        // a MAC command the node does not know (the rest of FOpts cannot be read)
  Crypto,        // Mbed TLS failed (not expected)
  Count
};
const char* rxErrorName(RxError e);

struct JoinAccept {
  uint32_t joinNonce = 0;  // 24 bits
  uint32_t netId = 0;      // 24 bits
  uint32_t devAddr = 0;
  uint8_t dlSettings = 0;  // RX1DROffset (6:4), RX2DataRate (3:0)
  uint8_t rxDelay = 1;     // s; 0 in the frame means 1
  bool hasCfList = false;
  uint8_t cfList[16] = {};
  uint8_t nwkSKey[kKeyBytes] = {};
  uint8_t appSKey[kKeyBytes] = {};
};

// Decrypts (AES-ECB encrypt with the AppKey) and verifies a join-accept, then derives the session
// keys: AES(AppKey, 0x01 | JoinNonce | NetID | DevNonce | pad16) and the same with 0x02.
RxError parseJoinAccept(const uint8_t (&appKey)[kKeyBytes], uint16_t devNonce, const uint8_t* frame, size_t size,
                        JoinAccept& out);

// What an OTAA session is bound to: the first 4 bytes (LE) of AES-CMAC(AppKey, DevEUI | JoinEUI).
bool identityOf(const uint8_t (&appKey)[kKeyBytes], const uint8_t (&devEui)[8], const uint8_t (&joinEui)[8],
                uint32_t& out);

// The session keys of a join (exposed for the vectors).
bool deriveSessionKeys(const uint8_t (&appKey)[kKeyBytes], uint32_t joinNonce, uint32_t netId, uint16_t devNonce,
                       uint8_t (&nwkSKey)[kKeyBytes], uint8_t (&appSKey)[kKeyBytes]);

struct Downlink {
  uint32_t fcnt = 0;  // the full 32-bit FCntDown
  bool confirmed = false;
  bool ack = false;
  bool fpending = false;
  uint8_t fopts[15] = {};
  uint8_t foptsLen = 0;
  bool hasPort = false;
  uint8_t fport = 0;
  uint8_t payload[kMaxDownlink] = {};  // decrypted (FPort 1..255; FPort 0 is left as received)
  size_t payloadSize = 0;
};

// A data downlink for devAddr: MHDR 0x60 / 0xA0, the FCntDown reconstructed above `lastFcnt` (any
// value when `haveLast` is false: the first after a join or a start), the MIC checked with the
// NwkSKey (B0, Dir 1), the FRMPayload decrypted with the AppSKey.
RxError parseDownlink(Session& session, uint32_t devAddr, bool haveLast, uint32_t lastFcnt, const uint8_t* frame,
                      size_t size, Downlink& out);

// MAC commands of a downlink's FOpts (1.0.x). What the node does with them.
struct MacResult {
  bool linkCheck = false;  // LinkCheckAns (0x02)
  uint8_t margin = 0;      // dB above the demodulation floor
  uint8_t gatewayCount = 0;
  bool devStatus = false;  // DevStatusReq (0x06): answer with DevStatusAns in the next uplink
  uint8_t ignored = 0;     // known commands the node does not act on (their payload skipped)
};
RxError parseMacCommands(const uint8_t* fopts, size_t size, MacResult& out);

}  // namespace citygate::fw::air
