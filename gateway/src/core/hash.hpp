// FNV-1a (64 bit): a stable, dependency-free name for a path (directories derived from another
// directory's name). Not for anything an attacker chooses to collide.
#pragma once

#include <cstdint>
#include <string_view>

namespace citygate::core {

inline std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char ch : bytes) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace citygate::core
