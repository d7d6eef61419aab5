// Strict base64 (RFC 4648 standard alphabet) for rxpk.data: padding optional, but when present it
// must be exact; no whitespace, no URL-safe characters, no non-zero bits after the last byte.
// Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace citygate::lora {

// Decodes `text` into `out`. Returns the number of bytes written, or nullopt when `text` is not
// strict base64 or does not fit in `out`.
std::optional<std::size_t> decodeBase64(std::string_view text, std::span<std::uint8_t> out);

// Bytes that `text` decodes to, if its length is possible at all (for an early size check).
std::optional<std::size_t> base64DecodedSize(std::string_view text);

std::string encodeBase64(std::span<const std::uint8_t> data);

}  // namespace citygate::lora
