// Fuzz target: the gateway's configuration, the one file a technician writes by hand. Any text
// must end in a config or in FILE:LINE:COL diagnostics: never a crash, never an exception.
#include <cstdint>
#include <string>

#include "app/validate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  citygate::config::Diagnostics diags;
  auto cfg = citygate::app::validateText("fuzz.textproto", text, diags);
  if (!cfg && diags.empty()) __builtin_trap();  // refused without saying why
  for (const auto& d : diags.items()) {
    if (d.file.empty() || d.message.empty()) __builtin_trap();
  }
  return 0;
}
