// A host runner for core/check.hpp until the ports provide theirs: prints to stdout, exits with
// the number of failed checks (capped at 255).
#include <stdio.h>
#include <string.h>

#include "core/check.hpp"

namespace citygate::fw::check {
namespace {
Test* gHead = nullptr;
Test* gTail = nullptr;
int gFailures = 0;
}  // namespace

Registrar::Registrar(Test& test) {
  if (gTail == nullptr) {
    gHead = &test;
  } else {
    gTail->next = &test;
  }
  gTail = &test;
}

void fail(const char* file, int line, const char* expression) {
  ++gFailures;
  printf("%s:%d: FAILED: %s\n", file, line, expression);
}

void print(const char* text) {
  fputs(text, stdout);
}

void printNumber(int64_t value) {
  printf("%lld", static_cast<long long>(value));
}

int runAll(const char* filter) {
  int tests = 0;
  for (Test* t = gHead; t != nullptr; t = t->next) {
    if (filter != nullptr && strstr(t->name, filter) == nullptr) continue;
    const int before = gFailures;
    t->fn();
    ++tests;
    printf("%s %s\n", gFailures == before ? "ok  " : "FAIL", t->name);
  }
  printf("%d test(s), %d failed check(s)\n", tests, gFailures);
  return gFailures > 255 ? 255 : gFailures;
}

}  // namespace citygate::fw::check

int main(int argc, char** argv) {
  return citygate::fw::check::runAll(argc > 1 ? argv[1] : nullptr);
}
