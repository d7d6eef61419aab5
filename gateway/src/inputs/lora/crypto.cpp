#include "inputs/lora/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

namespace citygate::lora {

Key::~Key() {
  OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

std::optional<Key> Key::fromHex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  std::array<std::uint8_t, 16> b{};
  for (std::size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0) {
      OPENSSL_cleanse(b.data(), b.size());
      return std::nullopt;
    }
    b[i / 2] = static_cast<std::uint8_t>((b[i / 2] << 4) | v);
  }
  Key k(b);
  OPENSSL_cleanse(b.data(), b.size());
  return k;
}

struct Crypto::Impl {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* macCtx = nullptr;
  EVP_CIPHER* aes = nullptr;
  EVP_CIPHER_CTX* cipherCtx = nullptr;

  ~Impl() {
    EVP_CIPHER_CTX_free(cipherCtx);
    EVP_CIPHER_free(aes);
    EVP_MAC_CTX_free(macCtx);
    EVP_MAC_free(mac);
  }
};

std::unique_ptr<Crypto> Crypto::create(std::string* why) {
  std::unique_ptr<Crypto> c(new Crypto());
  c->impl_ = std::make_unique<Impl>();
  Impl& i = *c->impl_;
  i.mac = EVP_MAC_fetch(nullptr, "CMAC", nullptr);
  i.aes = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
  if (i.mac == nullptr || i.aes == nullptr) {
    if (why) *why = "OpenSSL provides no CMAC or AES-128-ECB";
    return nullptr;
  }
  i.macCtx = EVP_MAC_CTX_new(i.mac);
  i.cipherCtx = EVP_CIPHER_CTX_new();
  if (i.macCtx == nullptr || i.cipherCtx == nullptr) {
    if (why) *why = "OpenSSL could not allocate a context";
    return nullptr;
  }
  char cipherName[] = "AES-128-CBC";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipherName, 0),
                               OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(i.macCtx, params) != 1) {
    if (why) *why = "OpenSSL CMAC does not accept AES-128-CBC";
    return nullptr;
  }
  return c;
}

Crypto::~Crypto() = default;

std::optional<std::uint32_t> Crypto::cmac4(const Key& key, std::span<const std::uint8_t> a,
                                           std::span<const std::uint8_t> b) {
  EVP_MAC_CTX* ctx = impl_->macCtx;
  if (EVP_MAC_init(ctx, key.data(), 16, nullptr) != 1) return std::nullopt;
  if (!a.empty() && EVP_MAC_update(ctx, a.data(), a.size()) != 1) return std::nullopt;
  if (!b.empty() && EVP_MAC_update(ctx, b.data(), b.size()) != 1) return std::nullopt;
  std::uint8_t out[16];
  std::size_t len = 0;
  if (EVP_MAC_final(ctx, out, &len, sizeof out) != 1 || len < 4) return std::nullopt;
  return (std::uint32_t{out[0]} << 24) | (std::uint32_t{out[1]} << 16) | (std::uint32_t{out[2]} << 8) | out[3];
}

bool Crypto::aesBlocks(const Key& key, const std::uint8_t* in, std::uint8_t* out, int len, bool decrypt) {
  EVP_CIPHER_CTX* ctx = impl_->cipherCtx;
  if (EVP_CipherInit_ex2(ctx, impl_->aes, key.data(), nullptr, decrypt ? 0 : 1, nullptr) != 1) return false;
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  int outLen = 0;
  if (EVP_CipherUpdate(ctx, out, &outLen, in, len) != 1 || outLen != len) return false;
  return true;
}

namespace {

void putLe32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}

// B0 (MIC) and A_i (encryption) share one layout: tag | 0 0 0 0 | Dir | DevAddr | FCnt | 0 | last.
void block(std::uint8_t* b, std::uint8_t tag, Dir dir, std::uint32_t devAddr, std::uint32_t fcnt, std::uint8_t last) {
  b[0] = tag;
  b[1] = b[2] = b[3] = b[4] = 0;
  b[5] = static_cast<std::uint8_t>(dir);
  putLe32(b + 6, devAddr);
  putLe32(b + 10, fcnt);
  b[14] = 0;
  b[15] = last;
}

}  // namespace

std::optional<std::uint32_t> Crypto::dataMic(const Key& nwkSKey, Dir dir, std::uint32_t devAddr, std::uint32_t fcnt,
                                             std::span<const std::uint8_t> msg) {
  if (msg.size() > 255) return std::nullopt;
  std::uint8_t b0[16];
  block(b0, 0x49, dir, devAddr, fcnt, static_cast<std::uint8_t>(msg.size()));
  return cmac4(nwkSKey, b0, msg);
}

bool Crypto::cryptPayload(const Key& key, Dir dir, std::uint32_t devAddr, std::uint32_t fcnt,
                          std::span<const std::uint8_t> in, std::span<std::uint8_t> out) {
  if (out.size() < in.size() || in.size() > 255) return false;
  const std::size_t blocks = (in.size() + 15) / 16;
  std::uint8_t a[16 * 16];
  std::uint8_t s[16 * 16];
  for (std::size_t i = 0; i < blocks; ++i)
    block(a + 16 * i, 0x01, dir, devAddr, fcnt, static_cast<std::uint8_t>(i + 1));
  if (blocks > 0 && !aesBlocks(key, a, s, static_cast<int>(16 * blocks))) return false;
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = in[i] ^ s[i];
  OPENSSL_cleanse(s, sizeof s);
  return true;
}

std::optional<std::uint32_t> Crypto::joinRequestMic(const Key& appKey, std::span<const std::uint8_t> msg) {
  return cmac4(appKey, msg, {});
}

std::optional<std::uint32_t> Crypto::joinAcceptMic(const Key& appKey, std::span<const std::uint8_t> msg) {
  return cmac4(appKey, msg, {});
}

bool Crypto::aesEncrypt(const Key& key, std::span<const std::uint8_t> in, std::span<std::uint8_t> out) {
  if (in.size() % 16 != 0 || out.size() < in.size() || in.size() > 256) return false;
  if (in.empty()) return true;
  return aesBlocks(key, in.data(), out.data(), static_cast<int>(in.size()));
}

bool Crypto::aesDecrypt(const Key& key, std::span<const std::uint8_t> in, std::span<std::uint8_t> out) {
  if (in.size() % 16 != 0 || out.size() < in.size() || in.size() > 256) return false;
  if (in.empty()) return true;
  return aesBlocks(key, in.data(), out.data(), static_cast<int>(in.size()), true);
}

std::optional<std::uint32_t> Crypto::keyCheckValue(const Key& key) {
  const std::uint8_t zero[16] = {};
  std::uint8_t out[16];
  if (!aesBlocks(key, zero, out, 16)) return std::nullopt;
  return (std::uint32_t{out[0]} << 24) | (std::uint32_t{out[1]} << 16) | (std::uint32_t{out[2]} << 8) | out[3];
}

}  // namespace citygate::lora
