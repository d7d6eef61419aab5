// Frame-counter reconstruction (protocols.md 3.5) and the state file's golden files
// (tests/data/lora/fcnt-state: a good file, and every recovery path: truncated tail, no checksum,
// bad CRC, future version, bad line).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "inputs/lora/fcnt.hpp"

using namespace citygate::lora;

namespace {
std::string golden(const std::string& name) {
  std::ifstream in(std::string(CITYGATE_SOURCE_DIR) + "/tests/data/lora/fcnt-state/" + name, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("fullFcnt: ChirpStack's reconstruction, including the 16-bit rollover") {
  CHECK(fullFcnt(0, 0) == 0);
  CHECK(fullFcnt(1, 1) == 1);
  CHECK(fullFcnt(1, 5) == 5);
  CHECK(fullFcnt(11, 10) == 10);  // the retransmission of the last frame
  CHECK(fullFcnt(65535, 65535) == 65535);
  CHECK(fullFcnt(65536, 0) == 65536);      // 65535 -> 65536 crosses into the next epoch
  CHECK(fullFcnt(65535, 0) == 65536);      // one lost frame across the boundary
  CHECK(fullFcnt(65536, 65535) == 65535);  // retransmission just below the boundary
  CHECK(fullFcnt(65530, 10) == 65546);
  CHECK(fullFcnt(0x0001FFF0, 0x0005) == 0x00020005);
  CHECK(fullFcnt(100, 50) == 100 + (50 - 100 + 65536));  // an older frame looks like a huge jump
  CHECK(fullFcnt(0xFFFFFFFFU, 0xFFFF) == 0xFFFFFFFFU);
  CHECK(fullFcnt(0xFFFFFFFFU, 0x0000) == 0);  // mod 2^32
}

TEST_CASE("state file: encode is byte-exact with the golden file, decode round-trips") {
  FcntState st;
  st.clean = true;
  st.records.push_back(FcntRecord{"parking-bay-0042", 0x26011F42, 0x1A2B3C4D, 65536});
  st.records.push_back(FcntRecord{"air-node-01", 0x26011A01, 0xDEADBEEF, 7});
  CHECK(encodeFcntState(st) == golden("v1-clean.state"));
  std::string why;
  const auto back = decodeFcntState(golden("v1-clean.state"), &why);
  REQUIRE_MESSAGE(back, why);
  CHECK(back->clean);
  REQUIRE(back->records.size() == 2);
  CHECK(back->records[0].id == "parking-bay-0042");
  CHECK(back->records[0].devAddr == 0x26011F42U);
  CHECK(back->records[0].keyCheck == 0x1A2B3C4DU);
  CHECK(back->records[0].lastFcnt == 65536);
  CHECK(back->records[1].lastFcnt == 7);
  const auto unclean = decodeFcntState(golden("v1-unclean.state"), &why);
  REQUIRE_MESSAGE(unclean, why);
  CHECK_FALSE(unclean->clean);
}

TEST_CASE("state file: every damaged file is refused with its reason") {
  std::string why;
  CHECK_FALSE(decodeFcntState(golden("truncated-tail.state"), &why));
  CHECK(why.find("truncated") != std::string::npos);
  CHECK_FALSE(decodeFcntState(golden("no-crc-line.state"), &why));
  CHECK(why.find("truncated") != std::string::npos);
  CHECK_FALSE(decodeFcntState(golden("bad-crc.state"), &why));
  CHECK(why == "bad CRC");
  CHECK_FALSE(decodeFcntState(golden("future-version.state"), &why));
  CHECK(why.find("version 2 is not supported") != std::string::npos);
  CHECK_FALSE(decodeFcntState(golden("bad-line.state"), &why));
  CHECK(why.find("bad line") != std::string::npos);
  CHECK_FALSE(decodeFcntState("", &why));
  CHECK_FALSE(decodeFcntState("\n", &why));
  CHECK_FALSE(decodeFcntState("crc32 00000000\n", &why));
}

TEST_CASE("crc32 is the IEEE CRC-32") {
  CHECK(crc32("123456789") == 0xCBF43926U);
}
