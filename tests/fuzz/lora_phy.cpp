// PHYPayloads through the frame processor: the input is a sequence of [length][frame] records, so
// one input can hold repeats, replays and counter sequences; time advances 80 ms per frame.
#include <cstdint>

#include "inputs/lora/phy_payload.hpp"
#include "lora_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t samples = 0;
  auto proc = lora_fuzz::makeProcessor(&samples);
  citygate::SteadyTime now = citygate::SteadyClock::now();
  std::size_t pos = 0;
  std::size_t frames = 0;
  while (pos < size && frames < 64) {
    const std::size_t len = data[pos++];
    const std::size_t n = std::min(len, size - pos);
    citygate::lora::RxPacket rx;
    rx.freq = 868.1;
    rx.stat = 1;
    rx.datr = "SF7BW125";
    rx.rssi = -60.0 - static_cast<double>(frames);
    rx.lsnr = 5.0;
    std::copy(data + pos, data + pos + n, rx.data.begin());
    rx.size = n;
    pos += n;
    // The parser alone must agree with itself on the frame's layout.
    citygate::lora::DataFrame f;
    if (citygate::lora::parseDataFrame(rx.phy(), f) == citygate::lora::PhyError::None) {
      if (f.micInput.size() + 4 != n || f.fopts.size() > 15) __builtin_trap();
    }
    (void)proc->onRxpk(rx, 0x0102030405060708ULL, now, citygate::WallClock::now());
    now += std::chrono::milliseconds(80);
    proc->flushDue(now);
    ++frames;
  }
  proc->flushAll();
  return 0;
}
