// citygate-node-service: a bench tool for the service UART. A node with nothing but its service
// port (a pty, linked at --port) and its flash (a file): what `citygatectl node show|provision`
// talks to when no node hardware is at hand, and what the integration test runs
// (tests/integration/test_firmware_node_cli.py). The record store and the service port are the
// node core's (core/record_store.hpp, core/service_port.hpp), as in every node's main.
//
//   citygate-node-service --kind traffic|air --port LINK --flash FILE
//
// On every start it prints one line, "ready: KIND on LINK (PTY), NOT PROVISIONED" or
// "... record N (NODE_ID)", and flushes it. A PROVISION (or a RESET request) resets the node as
// every host node resets (PosixBoard::reset()): the process executes itself again, reads the
// record anew from its flash and prints its ready line again, on the same pty, whose peer reads
// the reply after the reset. SIGINT/SIGTERM end it.
#include <stdio.h>
#include <string.h>

#include "core/provisioning.hpp"
#include "core/record_store.hpp"
#include "core/service_port.hpp"
#include "ports/host/posix.hpp"

namespace {

using namespace citygate::fw;

host::PtyUart gUart;
host::FileFlash gFlash;
host::PosixBoard gBoard;

int usage() {
  fprintf(stderr, "usage: citygate-node-service --kind traffic|air --port LINK --flash FILE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* kindArg = nullptr;
  const char* port = nullptr;
  const char* flashPath = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--kind") == 0) {
      kindArg = argv[i + 1];
    } else if (strcmp(argv[i], "--port") == 0) {
      port = argv[i + 1];
    } else if (strcmp(argv[i], "--flash") == 0) {
      flashPath = argv[i + 1];
    } else {
      return usage();
    }
  }
  if (kindArg == nullptr || port == nullptr || flashPath == nullptr || argc % 2 == 0) return usage();
  NodeKind kind = citygate_v1_NodeKind_NODE_KIND_UNSPECIFIED;
  if (strcmp(kindArg, "traffic") == 0) kind = citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER;
  if (strcmp(kindArg, "air") == 0) kind = citygate_v1_NodeKind_NODE_AIR_QUALITY;
  if (kind == citygate_v1_NodeKind_NODE_KIND_UNSPECIFIED) return usage();

  // Sectors 0 and 1: the provisioning record; the rest as a node has it (the air node's FCnt log).
  if (!gFlash.open(flashPath, 8)) {
    perror(flashPath);
    return 1;
  }
  if (!gUart.open(port, ServicePort::kBaud)) {
    perror(port);
    return 1;
  }
  gBoard.watch(gUart);
  gBoard.handleStopSignals();
  gBoard.enableReexec(argv);

  // One start of the node: the record as flash has it, the service port's counters from zero.
  RecordStore store(gFlash);
  NodeProvisioning record;
  if (loadProvisioning(store, kind, record)) {
    printf("ready: %s on %s (%s), record %u (%s)\n", kindName(kind), port, gUart.slavePath(),
           static_cast<unsigned>(store.generation()), record.node_id);
  } else {
    printf("ready: %s on %s (%s), NOT PROVISIONED\n", kindName(kind), port, gUart.slavePath());
  }
  fflush(stdout);
  ServicePort service(gUart, store, kind);
  while (!gBoard.stopRequested()) {
    if (service.poll() == ServicePort::Action::Reset) {
      printf("reset\n");
      gBoard.reset();
    }
    gBoard.idle(1000);
  }
  gUart.close();
  return 0;
}
