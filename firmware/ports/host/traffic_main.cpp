// citygate-traffic-node: the traffic counter as a host process (the simulator the demo and the
// integration tests run). The node core is the one the Cortex-M runs; here its RS-485 line is a
// pseudo-terminal linked at --rtu PATH (a Modbus master opens PATH as a serial port), its clock
// is CLOCK_MONOTONIC from the start, and its lane detectors replay --scenario FILE
// (traffic_scenario.hpp) in real time.
//
//   citygate-traffic-node --rtu PATH [--scenario FILE] [--state FILE [--service PATH]]
//                         [--unit-id N] [--baud N] [--period-s N] [--lanes 1,2,3,4]
//
// Settings: the provisioning record in the flash file --state (core/provisioning.hpp), if there
// is one, then the flags over it, then the defaults. --service links the node's service UART (a
// second pty; `citygatectl node show|provision --port PATH`): a PROVISION or RESET there resets
// the node (the process executes itself again and reads the new record; its ptys and their links
// stay, with what the peer has not read yet: PosixBoard::reset()).
//
// Prints "ready: unit N on PATH -> /dev/pts/M" when it answers, one line per completed period,
// and its counters on SIGTERM or SIGINT (exit 0). Bad flags: a message and exit 2; a pty, flash
// file or scenario that cannot be opened: exit 1.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hal.hpp"
#include "core/provisioning.hpp"
#include "core/record_store.hpp"
#include "core/service_port.hpp"
#include "nodes/traffic/registers.hpp"
#include "nodes/traffic/traffic_node.hpp"
#include "nodes/traffic/traffic_provisioning.hpp"
#include "ports/host/posix.hpp"
#include "ports/host/traffic_scenario.hpp"

namespace {

using namespace citygate::fw;

void usage(FILE* to) {
  fputs(
      "usage: citygate-traffic-node --rtu PATH [--scenario FILE] [--state FILE [--service PATH]]\n"
      "                             [--unit-id N] [--baud N] [--period-s N] [--lanes 1,2,3,4]\n"
      "  --rtu PATH      link the node's RS-485 line (a pseudo-terminal) at PATH\n"
      "  --scenario FILE passages to replay (AT_MS LANE SPEED_KMH LENGTH_CM OCCUPIED_MS per line)\n"
      "  --state FILE    the node's flash (made if missing): its provisioning record\n"
      "  --service PATH  link the node's service UART at PATH (needs --state)\n"
      "  the flags below override the provisioning record:\n"
      "  --unit-id N     Modbus unit id, 1..247 (default 1)\n"
      "  --baud N        the line's baud rate for the 3.5-character silence (default 19200)\n"
      "  --period-s N    aggregation period, 1..3600 s (default 60)\n"
      "  --lanes LIST    lanes with a detector (default: every lane of the register map)\n",
      to);
}

bool parseUnsigned(const char* text, uint32_t& out) {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > 0xFFFFFFFFul) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

void printPeriod(const traffic::Node& node) {
  const traffic::PeriodTotals* p = node.aggregator().completed();
  if (p == nullptr) return;
  printf("period %u:", node.counters().periods);
  for (uint8_t lane = 1; lane <= traffic::kMaxLanes; ++lane) {
    if ((node.aggregator().laneMask() & (1u << (lane - 1))) == 0) continue;
    const traffic::LaneTotals& t = p->lane[lane - 1];
    printf(" lane %u count %u occupied_ms %u", lane, t.count, t.occupiedMs);
    printf(";");
  }
  printf("\n");
  fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const char* rtu = nullptr;
  const char* scenario = nullptr;
  const char* statePath = nullptr;
  const char* servicePath = nullptr;
  traffic::TrafficSettings settings{};
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    const bool known = strcmp(a, "--rtu") == 0 || strcmp(a, "--scenario") == 0 || strcmp(a, "--unit-id") == 0 ||
                       strcmp(a, "--baud") == 0 || strcmp(a, "--period-s") == 0 || strcmp(a, "--lanes") == 0 ||
                       strcmp(a, "--state") == 0 || strcmp(a, "--service") == 0;
    if (!known) {
      fprintf(stderr, "citygate-traffic-node: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "citygate-traffic-node: %s needs a value\n", a);
      return 2;
    }
    const char* v = argv[++i];
    uint32_t n = 0;
    if (strcmp(a, "--rtu") == 0) {
      rtu = v;
    } else if (strcmp(a, "--scenario") == 0) {
      scenario = v;
    } else if (strcmp(a, "--state") == 0) {
      statePath = v;
    } else if (strcmp(a, "--service") == 0) {
      servicePath = v;
    } else if (strcmp(a, "--lanes") == 0) {
      settings.laneCount = 0;
      const char* p = v;
      while (*p != '\0') {
        if (*p < '1' || *p > '8' || (p[1] != ',' && p[1] != '\0') || settings.laneCount >= traffic::kMaxLanes) {
          fprintf(stderr, "citygate-traffic-node: --lanes '%s': a comma-separated list of lanes 1..8\n", v);
          return 2;
        }
        settings.laneIds[settings.laneCount++] = static_cast<uint32_t>(*p - '0');
        p += p[1] == ',' ? 2 : 1;
      }
      if (settings.laneCount == 0) {
        fprintf(stderr, "citygate-traffic-node: --lanes is empty\n");
        return 2;
      }
    } else if (!parseUnsigned(v, n) || n == 0) {
      fprintf(stderr, "citygate-traffic-node: %s '%s': not a positive number\n", a, v);
      return 2;
    } else if (strcmp(a, "--unit-id") == 0) {
      settings.unitId = n;
    } else if (strcmp(a, "--baud") == 0) {
      settings.baud = n;
    } else {
      settings.periodS = n;
    }
  }
  if (rtu == nullptr) {
    fprintf(stderr, "citygate-traffic-node: --rtu PATH is required\n");
    usage(stderr);
    return 2;
  }
  if (servicePath != nullptr && statePath == nullptr) {
    fprintf(stderr, "citygate-traffic-node: --service needs --state (the flash the record is kept in)\n");
    return 2;
  }

  // The provisioning record, then the flags over it.
  static host::FileFlash flash;
  static RecordStore store(flash);
  static NodeProvisioning record = citygate_v1_NodeProvisioning_init_zero;
  bool provisioned = false;
  if (statePath != nullptr) {
    if (!flash.open(statePath, 8)) {
      fprintf(stderr, "citygate-traffic-node: %s: %s\n", statePath, strerror(errno));
      return 1;
    }
    provisioned = loadProvisioning(store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER, record);
  }
  traffic::TrafficSettings merged = provisioned ? traffic::settingsFrom(record) : traffic::TrafficSettings{};
  if (settings.unitId != 0) merged.unitId = settings.unitId;
  if (settings.baud != 0) merged.baud = settings.baud;
  if (settings.periodS != 0) merged.periodS = settings.periodS;
  if (settings.laneCount != 0) {
    merged.laneCount = settings.laneCount;
    for (uint8_t k = 0; k < settings.laneCount; ++k) merged.laneIds[k] = settings.laneIds[k];
  }
  traffic::Config config;
  if (const char* e = traffic::configFromSettings(merged, config)) {
    fprintf(stderr, "citygate-traffic-node: %s\n", e);
    return 2;
  }

  static host::MonotonicClock clock;
  static host::ScenarioDetectors detectors(clock);
  char error[512];
  if (scenario != nullptr && !detectors.load(scenario, error, sizeof error)) {
    fprintf(stderr, "citygate-traffic-node: %s\n", error);
    return 1;
  }
  static host::PtyUart line;
  if (!line.open(rtu, config.baud)) {
    fprintf(stderr, "citygate-traffic-node: cannot make the pty at %s: %s\n", rtu, strerror(errno));
    return 1;
  }
  static host::PtyUart serviceLine;
  if (servicePath != nullptr && !serviceLine.open(servicePath, ServicePort::kBaud)) {
    fprintf(stderr, "citygate-traffic-node: cannot make the pty at %s: %s\n", servicePath, strerror(errno));
    return 1;
  }
  static host::PosixBoard board;
  board.watch(line);
  if (servicePath != nullptr) board.watch(serviceLine);
  board.handleStopSignals();
  board.enableReexec(argv);
  static ServicePort service(serviceLine, store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);

  static traffic::Node node(config, clock, line, detectors);
  node.start();
  printf("ready: unit %u on %s -> %s, period %u s, %zu passage(s), ", config.unitId, rtu, line.slavePath(),
         config.periodS, detectors.size());
  if (provisioned) {
    printf("record %u (%s)\n", static_cast<unsigned>(store.generation()), record.node_id);
  } else {
    printf("not provisioned\n");
  }
  fflush(stdout);

  uint32_t periods = 0;
  while (!board.stopRequested()) {
    if (servicePath != nullptr && service.poll() == ServicePort::Action::Reset) {
      printf("reset\n");
      board.reset();  // the ptys stay: the reply goes on to the peer after the reset
    }
    uint32_t wait = node.step();
    if (node.counters().periods != periods) {
      periods = node.counters().periods;
      printPeriod(node);
    }
    const uint32_t due = detectors.msUntilNext(clock.nowMs());
    if (due < wait) wait = due;
    if (wait > 1000) wait = 1000;
    board.idle(wait);
  }

  const traffic::SlaveCounters& c = node.slaveCounters();
  const traffic::NodeCounters n = node.counters();
  printf(
      "stopped: periods %u passages %u late %u bad_lane %u frames %u answered %u exceptions %u send_failures %u "
      "tail_requests %u",
      n.periods, n.passages, n.passagesLate, n.passagesBadLane, c.frames, c.answered, c.exceptions, c.sendFailures,
      c.tailRequests);
  for (size_t r = 1; r < traffic::kRefusalCount; ++r) {
    printf(" %s %u", traffic::refusalName(static_cast<traffic::Refusal>(r)), c.refused[r]);
  }
  printf("\n");
  line.close();  // the links go with the node
  if (servicePath != nullptr) serviceLine.close();
  return 0;
}
