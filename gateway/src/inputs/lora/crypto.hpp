// The LoRaWAN 1.0.x cryptography, through OpenSSL (EVP AES-128-ECB and EVP_MAC CMAC): frame MIC,
// FRMPayload encryption (the same operation both ways), join-request and join-accept MICs, AES-ECB
// blocks both ways (join-accept encryption, session-key derivation), and a key check value.
// Nothing here is home-made crypto: it only builds the B0 / A_i blocks of the specification.
//
// A Crypto object keeps its OpenSSL contexts and re-keys them per call: one per thread (the
// LoRa source has one on the executor). Failures inside OpenSSL come back as nullopt / false,
// never as exceptions. Keys are wiped from memory when a Key is destroyed, and Key has no
// formatter or stream operator, so it cannot end up in a log line by accident.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace citygate::lora {

class Key {
 public:
  Key() = default;
  explicit Key(const std::array<std::uint8_t, 16>& bytes) : bytes_(bytes) {}
  Key(const Key&) = default;
  Key& operator=(const Key&) = default;
  ~Key();

  // 32 hex digits (either case); nullopt otherwise. The text is never echoed in errors.
  static std::optional<Key> fromHex(std::string_view hex);

  const std::uint8_t* data() const { return bytes_.data(); }
  bool operator==(const Key& o) const { return bytes_ == o.bytes_; }

 private:
  std::array<std::uint8_t, 16> bytes_{};
};

enum class Dir : std::uint8_t { Up = 0, Down = 1 };

class Crypto {
 public:
  // nullptr (and `why`) when this OpenSSL has no AES-128 or CMAC.
  static std::unique_ptr<Crypto> create(std::string* why);
  ~Crypto();
  Crypto(const Crypto&) = delete;
  Crypto& operator=(const Crypto&) = delete;

  // MIC of a data frame: CMAC(NwkSKey, B0 | msg)[0..3], returned with the first byte most
  // significant (as the MIC is printed). `msg` is the PHYPayload without its MIC.
  std::optional<std::uint32_t> dataMic(const Key& nwkSKey, Dir dir, std::uint32_t devAddr, std::uint32_t fcnt,
                                       std::span<const std::uint8_t> msg);

  // FRMPayload encryption/decryption (XOR with AES(K, A_i)); `out` must be as long as `in`.
  bool cryptPayload(const Key& key, Dir dir, std::uint32_t devAddr, std::uint32_t fcnt,
                    std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

  // Join-request MIC: CMAC(AppKey, MHDR | AppEUI | DevEUI | DevNonce)[0..3].
  std::optional<std::uint32_t> joinRequestMic(const Key& appKey, std::span<const std::uint8_t> msg);

  // Join-accept MIC (1.0.x): CMAC(AppKey, MHDR | AppNonce | NetID | DevAddr | DLSettings | RxDelay
  // | CFList)[0..3], first byte most significant.
  std::optional<std::uint32_t> joinAcceptMic(const Key& appKey, std::span<const std::uint8_t> msg);

  // AES-128-ECB over whole blocks (`in` a multiple of 16 bytes, `out` as long): encryption derives
  // the session keys, decryption "encrypts" a join-accept (the device recovers it by encrypting).
  bool aesEncrypt(const Key& key, std::span<const std::uint8_t> in, std::span<std::uint8_t> out);
  bool aesDecrypt(const Key& key, std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

  // Key check value: the first 4 bytes of AES(K, 0^16). Identifies a key without revealing it
  // (the frame-counter state file uses it to notice re-keyed devices).
  std::optional<std::uint32_t> keyCheckValue(const Key& key);

 private:
  Crypto() = default;
  std::optional<std::uint32_t> cmac4(const Key& key, std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
  bool aesBlocks(const Key& key, const std::uint8_t* in, std::uint8_t* out, int len, bool decrypt = false);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace citygate::lora
