// Frame-counter reconstruction (protocols.md 3.5) and the state file's golden files
// (tests/data/lora/fcnt-state: a good file, and every recovery path: truncated tail, no checksum,
// bad CRC, future version, bad line).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
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

TEST_CASE("state file: encode is byte-exact with the golden file (version 2), decode round-trips") {
  FcntState st;
  st.clean = true;
  st.records.push_back(FcntRecord{"parking-bay-0042", 0x26011F42, 0x1A2B3C4D, 65536, 65536});
  st.records.push_back(FcntRecord{"air-node-01", 0x26011A01, 0xDEADBEEF, 7, 23});
  CHECK(encodeFcntState(st) == golden("v2-clean.state"));
  std::string why;
  const auto v2 = decodeFcntState(golden("v2-clean.state"), &why);
  REQUIRE_MESSAGE(v2, why);
  REQUIRE(v2->records.size() == 2);
  CHECK(v2->records[1].lastFcnt == 7);
  CHECK(v2->records[1].floorFcnt == 23);  // last accepted and resume floor kept apart
  const auto v2u = decodeFcntState(golden("v2-unclean.state"), &why);
  REQUIRE_MESSAGE(v2u, why);
  CHECK_FALSE(v2u->clean);
  CHECK(v2u->records[0].floorFcnt == 65552);
  CHECK_FALSE(decodeFcntState(golden("v2-floor-below-last.state"), &why));
  CHECK(why.find("bad line") != std::string::npos);
}

TEST_CASE("state file: version 1 (no floor) still loads, with floor = last") {
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
  CHECK(back->records[0].floorFcnt == 65536);
  CHECK(back->records[1].floorFcnt == 7);
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
  CHECK(why.find("version 3 is not supported") != std::string::npos);
  CHECK_FALSE(decodeFcntState(golden("bad-line.state"), &why));
  CHECK(why.find("bad line") != std::string::npos);
  CHECK_FALSE(decodeFcntState("", &why));
  CHECK_FALSE(decodeFcntState("\n", &why));
  CHECK_FALSE(decodeFcntState("crc32 00000000\n", &why));
}

TEST_CASE("crc32 is the IEEE CRC-32") {
  CHECK(crc32("123456789") == 0xCBF43926U);
}

namespace {
const std::string kBoot = "6f1d7a52-0c3e-4b8e-9a51-3e2f0b7c9d11";
std::vector<FcntSlotView> twoSlots() {
  return {FcntSlotView{"parking-bay-0042", 0x26011F42, 0x1A2B3C4D, 65536, 65552}, FcntSlotView{},
          FcntSlotView{"air-node-01", 0x26011A01, 0xDEADBEEF, 7, 7}};
}
}  // namespace

TEST_CASE("RAM copy: round trip, slots written in place, empty slots skipped") {
  std::string image = encodeFcntRam(kBoot, twoSlots());
  CHECK(image.size() == kFcntRamHeader + 3 * kFcntRamSlot);
  std::string why;
  auto ram = decodeFcntRam(image, kBoot, &why);
  REQUIRE_MESSAGE(ram, why);
  REQUIRE(ram->records.size() == 2);
  CHECK(ram->records[0].id == "parking-bay-0042");
  CHECK(ram->records[0].lastFcnt == 65536);
  CHECK(ram->records[0].floorFcnt == 65552);
  CHECK(ram->records[1].id == "air-node-01");
  CHECK(ram->damagedSlots == 0);
  // One slot rewritten in place, as the source does with pwrite.
  RamSlot slot;
  encodeFcntRamSlot(FcntSlotView{"air-node-01", 0x26011A01, 0xDEADBEEF, 8, 8}, slot);
  image.replace(fcntRamSlotOffset(2), kFcntRamSlot, reinterpret_cast<const char*>(slot.data()), kFcntRamSlot);
  ram = decodeFcntRam(image, kBoot, &why);
  REQUIRE(ram);
  CHECK(ram->records[1].lastFcnt == 8);
}

TEST_CASE("RAM copy: another boot, a damaged header, a wrong size are refused, a damaged slot is skipped") {
  const std::string image = encodeFcntRam(kBoot, twoSlots());
  std::string why;
  CHECK_FALSE(decodeFcntRam(image, "0b3e1c2a-0000-4000-8000-000000000000", &why));
  CHECK(why == "written before the last reboot");
  CHECK_FALSE(decodeFcntRam(image, "", &why));
  CHECK_FALSE(decodeFcntRam(image.substr(0, 40), kBoot, &why));
  CHECK(why == "truncated header");
  CHECK_FALSE(decodeFcntRam(image.substr(0, image.size() - 1), kBoot, &why));
  CHECK(why == "size does not match the slot count");
  std::string bad = image;
  bad[13] ^= 1;  // slot count
  CHECK_FALSE(decodeFcntRam(bad, kBoot, &why));
  CHECK(why == "bad header CRC");
  bad = image;
  bad[fcntRamSlotOffset(0) + 12] ^= 1;  // a counter byte of the first slot
  const auto ram = decodeFcntRam(bad, kBoot, &why);
  REQUIRE(ram);
  CHECK(ram->damagedSlots == 1);
  REQUIRE(ram->records.size() == 1);
  CHECK(ram->records[0].id == "air-node-01");
  CHECK_FALSE(decodeFcntRam("citygate-lora-fcnt 2\n" + std::string(60, ' '), kBoot, &why));
}

// The RAM copy's cost per accepted frame (what LoraSource::onCounter does: encode one slot, one
// pwrite on tmpfs), for many devices. Skipped by default; run with
//   build/default/bin/unit_lora -tc='bench*' --no-skip
TEST_CASE("bench: RAM copy, cost per frame" * doctest::skip()) {
  for (const std::size_t devices : {10U, 1000U, 10000U}) {
    const std::string path = "/dev/shm/citygate-fcnt-bench-" + std::to_string(::getpid());
    std::vector<std::string> ids(devices);
    std::vector<FcntSlotView> slots(devices);
    for (std::size_t i = 0; i < devices; ++i) {
      ids[i] = "parking-bay-" + std::to_string(100000 + i);
      slots[i] = FcntSlotView{ids[i], static_cast<std::uint32_t>(0x26000000 + i), 0x1A2B3C4D, 0, 0};
    }
    auto t0 = std::chrono::steady_clock::now();
    const std::string image = encodeFcntRam(kBoot, slots);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, image.data(), image.size()) == static_cast<ssize_t>(image.size()));
    const double imageUs = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    std::mt19937 rng(1);
    constexpr int kFrames = 200000;
    RamSlot buf;
    t0 = std::chrono::steady_clock::now();
    for (int n = 0; n < kFrames; ++n) {
      const std::size_t i = rng() % devices;
      ++slots[i].lastFcnt;
      slots[i].floorFcnt = slots[i].lastFcnt;
      encodeFcntRamSlot(slots[i], buf);
      REQUIRE(::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(fcntRamSlotOffset(i))) ==
              static_cast<ssize_t>(buf.size()));
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kFrames;
    ::close(fd);
    ::unlink(path.c_str());
    std::printf("RAM copy, %zu devices: %zu bytes, whole image (start) %.0f us, per frame %.0f ns\n", devices,
                image.size(), imageUs, ns);
  }
}
