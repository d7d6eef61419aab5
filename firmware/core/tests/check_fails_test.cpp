// Deliberately failing tests: the runner must report three failed checks and exit with status 3
// (ctest "firmware: core_check_fails" expects exactly that), so a run where checks fail cannot
// pass on any port, qemu's semihosting exit included.
#include "core/check.hpp"

namespace {
volatile int gOne = 1;  // not a constant: the compiler cannot drop the checks
}

FW_TEST("check: a passing test") {
  FW_CHECK_EQ(gOne, 1);
}

FW_TEST("check: two failed checks, and the test goes on after the first") {
  FW_CHECK(gOne == 2);
  FW_CHECK_EQ(gOne, 3);
}

FW_TEST("check: one failed check") {
  FW_CHECK(gOne == 0);
}
