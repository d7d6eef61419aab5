// traffic-node.elf: the traffic counter on the Cortex-M port (qemu mps2-an385).
//
// - UART0: the service UART (ServicePort::kBaud, core/service_port.hpp): `citygatectl node
//   show|provision` reads and writes the provisioning record; a PROVISION or RESET resets the node.
// - UART1: RS-485, the Modbus RTU slave, at the record's baud.
// - The lane detectors' capture interrupt pushes passages into a PassageQueue (none arrive under
//   qemu, which has no detector: the node serves complete empty periods).
//
// The settings are the provisioning record's (flash sectors 0 and 1 of the data area), mapped by
// settingsFrom() and configFromSettings(). Without a record the node is not provisioned: it runs
// its service UART only and serves no Modbus, as every node does until a technician provisions it.
#include <stdint.h>

#include "core/hal.hpp"
#include "core/provisioning.hpp"
#include "core/record_store.hpp"
#include "core/service_port.hpp"
#include "nodes/traffic/passage_queue.hpp"
#include "nodes/traffic/traffic_node.hpp"
#include "nodes/traffic/traffic_provisioning.hpp"
#include "ports/cortexm/cortexm.hpp"

namespace {

using namespace citygate::fw;

constexpr uint8_t kServiceUart = 0;
constexpr uint8_t kRs485Uart = 1;

cortexm::SysTickClock gClock;
cortexm::CmsdkUart gService;
cortexm::CmsdkUart gRs485;
cortexm::CortexMBoard gBoard(gClock);
traffic::PassageQueue gDetectors;
NodeProvisioning gRecord = citygate_v1_NodeProvisioning_init_zero;

void resetWhenSent() {
  const uint32_t start = gClock.nowMs();
  while (!gService.txIdle() && hal::elapsed(start, gClock.nowMs()) < 1000) gBoard.idle(1);
  gBoard.reset();
}

}  // namespace

int main() {
  gClock.start();
  static RecordStore store(cortexm::dataArea());
  traffic::Config config;
  const bool provisioned = loadProvisioning(store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER, gRecord) &&
                           traffic::configFromSettings(traffic::settingsFrom(gRecord), config) == nullptr;
  gService.open(kServiceUart, ServicePort::kBaud);
  static ServicePort service(gService, store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  if (!provisioned) {
    for (;;) {
      if (service.poll() == ServicePort::Action::Reset) resetWhenSent();
      gBoard.idle(1000);
    }
  }
  gRs485.open(kRs485Uart, config.baud);
  static traffic::Node node(config, gClock, gRs485, gDetectors);
  node.start();
  for (;;) {
    if (service.poll() == ServicePort::Action::Reset) resetWhenSent();
    gBoard.idle(node.step());
  }
}
