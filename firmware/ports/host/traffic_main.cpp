// citygate-traffic-node: the traffic counter as a host process (the simulator the demo and the
// integration tests run). The node core is the one the Cortex-M runs; here its RS-485 line is a
// pseudo-terminal linked at --rtu PATH (a Modbus master opens PATH as a serial port), its clock
// is CLOCK_MONOTONIC from the start, and its lane detectors replay --scenario FILE
// (traffic_scenario.hpp) in real time.
//
//   citygate-traffic-node --rtu PATH [--scenario FILE] [--unit-id N] [--baud N] [--period-s N]
//                         [--lanes 1,2,3,4]
//
// Prints "ready: unit N on PATH -> /dev/pts/M" when it answers, one line per completed period,
// and its counters on SIGTERM or SIGINT (exit 0). Bad flags: a message and exit 2; a pty or
// scenario that cannot be opened: exit 1.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hal.hpp"
#include "nodes/traffic/registers.hpp"
#include "nodes/traffic/traffic_node.hpp"
#include "ports/host/posix.hpp"
#include "ports/host/traffic_scenario.hpp"

namespace {

using namespace citygate::fw;

void usage(FILE* to) {
  fputs(
      "usage: citygate-traffic-node --rtu PATH [--scenario FILE] [--unit-id N] [--baud N]\n"
      "                             [--period-s N] [--lanes 1,2,3,4]\n"
      "  --rtu PATH      link the node's RS-485 line (a pseudo-terminal) at PATH\n"
      "  --scenario FILE passages to replay (AT_MS LANE SPEED_KMH LENGTH_CM OCCUPIED_MS per line)\n"
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
  traffic::TrafficSettings settings{};
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    const bool known = strcmp(a, "--rtu") == 0 || strcmp(a, "--scenario") == 0 || strcmp(a, "--unit-id") == 0 ||
                       strcmp(a, "--baud") == 0 || strcmp(a, "--period-s") == 0 || strcmp(a, "--lanes") == 0;
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
  traffic::Config config;
  if (const char* e = traffic::configFromSettings(settings, config)) {
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
  static host::PosixBoard board;
  board.watch(line);
  board.handleStopSignals();

  static traffic::Node node(config, clock, line, detectors);
  node.start();
  printf("ready: unit %u on %s -> %s, period %u s, %zu passage(s)\n", config.unitId, rtu, line.slavePath(),
         config.periodS, detectors.size());
  fflush(stdout);

  uint32_t periods = 0;
  while (!board.stopRequested()) {
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
  printf("stopped: periods %u passages %u late %u bad_lane %u frames %u answered %u exceptions %u send_failures %u",
         n.periods, n.passages, n.passagesLate, n.passagesBadLane, c.frames, c.answered, c.exceptions, c.sendFailures);
  for (size_t r = 1; r < traffic::kRefusalCount; ++r) {
    printf(" %s %u", traffic::refusalName(static_cast<traffic::Refusal>(r)), c.refused[r]);
  }
  printf("\n");
  line.close();  // the link goes with the node
  return 0;
}
