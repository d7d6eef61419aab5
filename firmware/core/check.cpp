// The freestanding test runner (check.hpp): a list of tests built by static constructors, a failure
// counter, and a report through the port's check::print (ports/host/check_host.cpp: stdout;
// ports/cortexm/semihosting.cpp: semihosting SYS_WRITE0). No heap, no libstdc++.
#include "core/check.hpp"

#include <string.h>

namespace citygate::fw::check {
namespace {

Test* gFirst = nullptr;
Test* gLast = nullptr;
int gFailures = 0;  // failed checks in the running test

}  // namespace

Registrar::Registrar(Test& test) {
  // Appended, so the tests run in the order of their files and lines.
  test.next = nullptr;
  if (gLast == nullptr) {
    gFirst = &test;
  } else {
    gLast->next = &test;
  }
  gLast = &test;
}

void fail(const char* file, int line, const char* expression) {
  ++gFailures;
  print(file);
  print(":");
  printNumber(line);
  print(": check failed: ");
  print(expression);
  print("\n");
}

void printNumber(int64_t value) {
  char text[24];
  char* p = text + sizeof text;
  *--p = '\0';
  // Negated as unsigned: INT64_MIN has no positive int64_t.
  uint64_t magnitude = value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  do {
    *--p = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0) *--p = '-';
  print(p);
}

int runAll(const char* filter) {
  int failures = 0;
  int tests = 0;
  int failedTests = 0;
  for (Test* t = gFirst; t != nullptr; t = t->next) {
    if (filter != nullptr && strstr(t->name, filter) == nullptr) continue;
    ++tests;
    gFailures = 0;
    t->fn();
    if (gFailures != 0) {
      ++failedTests;
      failures += gFailures;
      print("FAIL ");
    } else {
      print("ok   ");
    }
    print(t->name);
    print("\n");
  }
  if (tests == 0) {
    // A runner that ran nothing must not pass: a filter that matches no test, or static
    // constructors that never ran (a start-up without .init_array), would otherwise look green.
    print("fw-check: no test ran");
    if (filter != nullptr) {
      print(" (filter \"");
      print(filter);
      print("\")");
    }
    print("\n");
    return 1;
  }
  print("fw-check: ");
  printNumber(tests);
  print(" tests, ");
  printNumber(failedTests);
  print(" failed, ");
  printNumber(failures);
  print(" failed checks\n");
  return failures;
}

}  // namespace citygate::fw::check
