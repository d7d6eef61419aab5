// The strict JSON parser: any bytes; a parsed document is walked completely.
#include <cstdint>
#include <string_view>

#include "inputs/lora/json.hpp"

namespace {

using citygate::lora::json::Type;
using citygate::lora::json::Value;

std::size_t walk(Value v, int depth) {
  if (depth > 64) __builtin_trap();  // the parser's depth limit must hold
  std::size_t n = 1;
  switch (v.type()) {
    case Type::Array:
      for (Value e : v) n += walk(e, depth + 1);
      break;
    case Type::Object:
      for (auto it = v.begin(); it != v.end(); ++it) {
        n += it.key().size() > 0 ? 1 : 0;
        if (!v.get(it.key()).valid()) __builtin_trap();  // every key can be looked up
        n += walk(*it, depth + 1);
      }
      break;
    case Type::String:
      n += v.string().size();
      break;
    default:
      break;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static citygate::lora::json::Document doc;  // reused, as in the source
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (doc.parse(text) == citygate::lora::json::Error::None) {
    volatile std::size_t n = walk(doc.root(), 0);
    (void)n;
  } else if (doc.root().valid()) {
    __builtin_trap();  // a failed parse leaves no document
  }
  return 0;
}
