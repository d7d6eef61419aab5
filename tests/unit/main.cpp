// The unit tests' main: doctest's, after one check of the test cases' names. CTest runs each case
// by its name (doctest_discover_tests), and CMake splits a name at ';': the halves name no test
// case, so such a case would never run while CTest reported it passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  int bad = 0;
  for (const auto& tc : doctest::detail::getRegisteredTests()) {
    if (std::strchr(tc.m_name, ';') == nullptr) continue;
    std::fprintf(stderr, "%s:%d: a test case name with ';' never runs under CTest: \"%s\"\n", tc.m_file.c_str(),
                 tc.m_line, tc.m_name);
    ++bad;
  }
  if (bad != 0) return 1;
  doctest::Context context(argc, argv);
  return context.run();
}
