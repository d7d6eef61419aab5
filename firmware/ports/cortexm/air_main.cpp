// The air-quality node on the Cortex-M (qemu mps2-an385 as the stand-in part). The whole node
// core is here: the provisioning record from the data area (sectors 0, 1), the frame counter in
// sectors 2..5, Mbed TLS, the duty cycle, the SPS30 / SHT3x drivers. The board's radio
// (an SX1276 on SPI) and its I2C controller are not in this port yet: their stand-ins fail
// cleanly (the radio refuses every frame, every I2C transfer is a NACK), so the node runs, counts
// its refused uplinks and sends its sensors' fields as faults. UART0 says what the node does.
#include <string.h>

#include "core/provisioning.hpp"
#include "core/record_store.hpp"
#include "nodes/air/air_node.hpp"
#include "nodes/air/air_settings.hpp"
#include "ports/cortexm/cortexm.hpp"

namespace air = citygate::fw::air;
namespace cm = citygate::fw::cortexm;
namespace fw = citygate::fw;
namespace hal = citygate::fw::hal;

namespace {

// Until the SX1276 driver: no frame leaves (AirNode counts radioRefused; the counter is not
// reused).
class NoRadio final : public hal::Radio {
 public:
  bool transmit(const uint8_t*, size_t, const hal::TxParams&) override { return false; }
  size_t receive(uint8_t*, size_t) override { return 0; }
};

// Until the I2C controller's driver: no device answers.
class NoI2c final : public hal::I2c {
 public:
  Result write(uint8_t, const uint8_t*, size_t) override { return Result::Nack; }
  Result read(uint8_t, uint8_t*, size_t) override { return Result::Nack; }
};

cm::SysTickClock gClock;
cm::CmsdkUart gConsole;
NoRadio gRadio;
NoI2c gI2c;

void say(const char* a, const char* b = "") {
  gConsole.write(reinterpret_cast<const uint8_t*>(a), strlen(a));
  gConsole.write(reinterpret_cast<const uint8_t*>(b), strlen(b));
  gConsole.write(reinterpret_cast<const uint8_t*>("\r\n"), 2);
}

}  // namespace

int main() {
  gClock.start();
  gConsole.open(0, 115200);
  static cm::CortexMBoard board(gClock);
  hal::Flash& flash = cm::dataArea();
  static air::AirNode node(gClock, gRadio, gI2c, flash);

  static fw::NodeProvisioning record;
  fw::RecordStore store(flash, 0);
  const char* why = "not provisioned (the service UART's PROVISION writes sectors 0 and 1)";
  air::AirConfig config;
  if (fw::loadProvisioning(store, citygate_v1_NodeKind_NODE_AIR_QUALITY, record) && record.has_air) {
    why = air::fromSettings(record.air, config);
    if (why == nullptr) why = node.start(config);
  }
  if (why != nullptr) {
    say("air node: ", why);
  } else {
    say("air node: running");
  }
  for (;;) {
    uint32_t wait = node.poll();
    if (wait > 1000) wait = 1000;
    board.idle(wait);
  }
}
