// traffic-node.elf: the traffic counter on the Cortex-M port (qemu mps2-an385). RS-485 on UART1
// (UART0 is the console and, with the provisioning record, the service UART); the lane detectors'
// capture interrupt pushes passages into a PassageQueue (none arrive under qemu, which has no
// detector: the node serves complete empty periods). The configuration is Config's defaults
// (unit 1, 19200 baud, 60 s, lanes 1..4) until the provisioning record is read at start-up
// (configFromSettings() maps its TrafficNodeSettings).
#include <stdint.h>

#include "core/hal.hpp"
#include "nodes/traffic/passage_queue.hpp"
#include "nodes/traffic/traffic_node.hpp"
#include "ports/cortexm/cortexm.hpp"

namespace {

using namespace citygate::fw;

constexpr uint8_t kRs485Uart = 1;

cortexm::SysTickClock gClock;
cortexm::CmsdkUart gRs485;
cortexm::CortexMBoard gBoard(gClock);
traffic::PassageQueue gDetectors;

}  // namespace

int main() {
  traffic::Config config;
  traffic::TrafficSettings settings{};  // not provisioned: every default
  if (traffic::configFromSettings(settings, config) != nullptr) config = traffic::Config{};
  gClock.start();
  gRs485.open(kRs485Uart, config.baud);
  static traffic::Node node(config, gClock, gRs485, gDetectors);
  node.start();
  for (;;) gBoard.idle(node.step());
}
