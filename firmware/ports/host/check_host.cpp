// The host's test runner for FW_TESTs (core/check.hpp): check::print on stdout, and main().
//
//   fw_test_NAME [FILTER]    runs the tests whose name contains FILTER (all without it); exit
//                            status = failed checks (at most 255), 1 when no test ran
#include <unistd.h>

#include <string.h>

#include "core/check.hpp"

namespace citygate::fw::check {

void print(const char* text) {
  size_t size = strlen(text);
  while (size > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, text, size);
    if (n <= 0) return;
    text += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace citygate::fw::check

int main(int argc, char** argv) {
  const int failures = citygate::fw::check::runAll(argc > 1 ? argv[1] : nullptr);
  return failures > 255 ? 255 : failures;  // an exit status is 8 bits: 256 must not read as 0
}
