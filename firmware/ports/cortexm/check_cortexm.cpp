// The Cortex-M test runner for FW_TESTs (core/check.hpp), under qemu-system-arm with semihosting:
// check::print through SYS_WRITE0, the filter from qemu's -append, and main()'s status (the
// failed checks, at most 255; 1 when no test ran) as qemu's exit status (startup.c).
#include "core/check.hpp"
#include "ports/cortexm/semihosting.hpp"

namespace citygate::fw::check {

void print(const char* text) {
  cortexm::semihosting::write0(text);
}

}  // namespace citygate::fw::check

int main() {
  static char commandLine[128];
  const char* filter = citygate::fw::cortexm::semihosting::arguments(commandLine, sizeof commandLine);
  const int failures = citygate::fw::check::runAll(filter);
  return failures > 255 ? 255 : failures;
}
