// The frame-counter state file reader: any bytes; a file that decodes re-encodes to itself.
#include <cstdint>
#include <string>

#include "inputs/lora/fcnt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string why;
  if (auto st = citygate::lora::decodeFcntState(text, &why)) {
    // Ids are written as parsed, so a decodable file is canonical unless it has odd ids
    // (spaces cannot occur: they split words); the round trip must at least decode again.
    const std::string again = citygate::lora::encodeFcntState(*st);
    if (!citygate::lora::decodeFcntState(again, &why)) __builtin_trap();
  } else if (why.empty()) {
    __builtin_trap();  // every refusal says why
  }
  return 0;
}
