// core/suggest.hpp: the edit distance and the "did you mean" rule.
#include "core/suggest.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using citygate::core::closest;
using citygate::core::didYouMean;
using citygate::core::editDistance;

TEST_CASE("edit distance counts insertions, deletions, substitutions and swaps of neighbours") {
  CHECK(editDistance("status", "status") == 0);
  CHECK(editDistance("stauts", "status") == 1);  // a swap
  CHECK(editDistance("valdate", "validate") == 1);
  CHECK(editDistance("statuss", "status") == 1);
  CHECK(editDistance("", "abc") == 3);
  CHECK(editDistance("kitten", "sitting") == 3);
}

TEST_CASE("the closest name, only when it is close enough") {
  const std::vector<std::string> commands{"status", "devices", "device", "tail", "config", "modbus", "lora", "spool"};
  CHECK(closest("stauts", commands) == "status");
  CHECK(closest("devics", commands) == "devices");
  CHECK(closest("spol", commands) == "spool");
  CHECK(closest("modbsu", commands) == "modbus");
  CHECK_FALSE(closest("frobnicate", commands));
  CHECK_FALSE(closest("", commands));
  CHECK(closest("air-pilatusplatz-2", std::vector<std::string>{"air-pilatusplatz-1", "traffic-3"}) ==
        "air-pilatusplatz-1");
  // A unique prefix counts, however short.
  CHECK(closest("tra", std::vector<std::string>{"air-1", "traffic-kasernenstrasse"}) == "traffic-kasernenstrasse");
  CHECK_FALSE(closest("a", std::vector<std::string>{"air-1", "air-2"}));
  CHECK(didYouMean("ari", std::vector<std::string>{"air"}) == "; did you mean 'air'?");
  CHECK(didYouMean("zzz", std::vector<std::string>{"air"}).empty());
}
