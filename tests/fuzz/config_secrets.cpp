// Fuzz target: `config apply` of a text whose secrets say "<redacted>" (what `config show`
// printed): the merge with the running text's secrets (control/config_text.hpp). The input is the
// applied text, a NUL byte, then the running text. Any pair must end in a merged text or in
// FILE:LINE:COL errors, never a crash; with nothing to keep, the text comes back as given.
#include <cstdint>
#include <string>
#include <string_view>

#include "control/config_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  const std::string_view running = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  const auto merged = citygate::control::keepRedactedSecrets("fuzz.textproto", text, running);
  for (const auto& e : merged.errors) {
    if (e.rfind("fuzz.textproto:", 0) != 0) __builtin_trap();  // FILE:LINE:COL first
  }
  if (merged.errors.empty() && merged.kept == 0 && merged.text != text) __builtin_trap();  // nothing to keep: as given
  return 0;
}
