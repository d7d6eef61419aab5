// The air node's frame-counter log (firmware/nodes/air/fcnt_store.hpp) on a flash of any content:
// bytes 0..1 choose the margin and how many counters to take, the rest fills sectors 2..5 (small
// sectors, so the ring turns). Whatever the flash held, the store starts, gives strictly
// increasing counters from its next(), and a restart from the same flash is above the last one.
#include <cstdint>
#include <cstring>

#include "nodes/air/fcnt_store.hpp"
#include "nodes/air/tests/fakes.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace air = citygate::fw::air;
  if (size < 2) return 0;
  const std::uint32_t margin = 1 + data[0] % 20;
  const std::uint32_t takes = data[1] % 64;
  citygate::fw::test::FakeFlash flash(64, 8);
  const std::size_t area = 4 * 64;
  const std::size_t n = size - 2 < area ? size - 2 : area;
  std::memcpy(flash.bytes() + 2 * 64, data + 2, n);
  air::FcntStore store(flash, margin);
  if (!store.start()) __builtin_trap();
  const std::uint32_t first = store.next();
  bool any = false;
  std::uint32_t last = 0;
  for (std::uint32_t i = 0; i < takes; ++i) {
    std::uint32_t f = 0;
    if (!store.take(f)) break;  // only at the very end of the 32-bit counter
    if (f < first || (any && f <= last)) __builtin_trap();
    any = true;
    last = f;
  }
  air::FcntStore again(flash, margin);
  if (!again.start()) __builtin_trap();
  if (any && again.next() <= last) __builtin_trap();
  if (again.next() < first) __builtin_trap();
  return 0;
}
