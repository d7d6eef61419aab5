// A freestanding unit-test harness for the node core: the same test sources run on the host and
// under qemu-system-arm, where there is no libstdc++ (so no doctest). A test is a function
// registered by FW_TEST; FW_CHECK records a failure with file and line and goes on. The runner
// (core/check.cpp, with ports/host/check_host.cpp or ports/cortexm/check_cortexm.cpp) prints
// through the port's console and exits with the failure count as status (semihosting
// SYS_EXIT_EXTENDED on Cortex-M).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace citygate::fw::check {

using TestFn = void (*)();

struct Test {
  const char* name;
  TestFn fn;
  Test* next;
};

// Registers a test at static-initialisation time (a linked list: no heap).
struct Registrar {
  Registrar(Test& test);
};

void fail(const char* file, int line, const char* expression);
// Console output of the port (semihosting on Cortex-M, stdout on the host).
void print(const char* text);
void printNumber(int64_t value);

int runAll(const char* filter);  // filter: nullptr or a substring of the test names

}  // namespace citygate::fw::check

#define FW_CHECK_CAT2(a, b) a##b
#define FW_CHECK_CAT(a, b) FW_CHECK_CAT2(a, b)
#define FW_TEST(name)                                                                                             \
  static void FW_CHECK_CAT(fwTest_, __LINE__)();                                                                  \
  static ::citygate::fw::check::Test FW_CHECK_CAT(fwTestRec_, __LINE__){name, &FW_CHECK_CAT(fwTest_, __LINE__),   \
                                                                        nullptr};                                 \
  static ::citygate::fw::check::Registrar FW_CHECK_CAT(fwTestReg_, __LINE__){FW_CHECK_CAT(fwTestRec_, __LINE__)}; \
  static void FW_CHECK_CAT(fwTest_, __LINE__)()
#define FW_CHECK(expr) ((expr) ? (void)0 : ::citygate::fw::check::fail(__FILE__, __LINE__, #expr))
#define FW_CHECK_EQ(a, b) (((a) == (b)) ? (void)0 : ::citygate::fw::check::fail(__FILE__, __LINE__, #a " == " #b))
