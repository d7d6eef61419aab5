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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/hal.hpp"
#include "nodes/traffic/registers.hpp"
#include "nodes/traffic/traffic_node.hpp"
#include "ports/host/traffic_scenario.hpp"

namespace {

using namespace citygate::fw;

volatile sig_atomic_t gStop = 0;
void onSignal(int) {
  gStop = 1;
}

class MonotonicClock final : public hal::Clock {
 public:
  MonotonicClock() : start_(raw()) {}
  uint32_t nowMs() override { return static_cast<uint32_t>(raw() - start_); }

 private:
  static uint64_t raw() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
  }
  uint64_t start_;
};

// The RS-485 line as a pty: the master is the node's end, the slave is linked at `link`. The node
// keeps the slave open too, so a master that closes and reopens it is no hang-up here.
class PtyLine final : public hal::Uart {
 public:
  ~PtyLine() {
    if (link_[0] != '\0') unlink(link_);
  }
  bool open(const char* link, uint32_t baud) {
    baud_ = baud;
    master_ = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) return false;
    const char* name = ptsname(master_);
    if (name == nullptr) return false;
    snprintf(slavePath_, sizeof slavePath_, "%s", name);
    slave_ = ::open(slavePath_, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave_ < 0) return false;
    termios t{};
    if (tcgetattr(slave_, &t) == 0) {
      cfmakeraw(&t);
      tcsetattr(slave_, TCSANOW, &t);
    }
    if (unlink(link) != 0 && errno != ENOENT) return false;
    if (symlink(slavePath_, link) != 0) return false;
    snprintf(link_, sizeof link_, "%s", link);
    return true;
  }
  int fd() const { return master_; }
  const char* slavePath() const { return slavePath_; }

  size_t read(uint8_t* out, size_t capacity) override {
    const ssize_t n = ::read(master_, out, capacity);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  bool write(const uint8_t* data, size_t size) override {
    size_t done = 0;
    for (int tries = 0; done < size && tries < 100; ++tries) {
      const ssize_t n = ::write(master_, data + done, size - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      } else {
        pollfd p{master_, POLLOUT, 0};
        poll(&p, 1, 10);
      }
    }
    return done == size;
  }
  uint32_t baud() const override { return baud_; }

 private:
  int master_ = -1;
  int slave_ = -1;
  uint32_t baud_ = 19200;
  char slavePath_[64] = {};
  char link_[512] = {};
};

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

  static MonotonicClock clock;
  static host::ScenarioDetectors detectors(clock);
  char error[512];
  if (scenario != nullptr && !detectors.load(scenario, error, sizeof error)) {
    fprintf(stderr, "citygate-traffic-node: %s\n", error);
    return 1;
  }
  static PtyLine line;
  if (!line.open(rtu, config.baud)) {
    fprintf(stderr, "citygate-traffic-node: cannot make the pty at %s: %s\n", rtu, strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  static traffic::Node node(config, clock, line, detectors);
  node.start();
  printf("ready: unit %u on %s -> %s, period %u s, %zu passage(s)\n", config.unitId, rtu, line.slavePath(),
         config.periodS, detectors.size());
  fflush(stdout);

  uint32_t periods = 0;
  while (gStop == 0) {
    uint32_t wait = node.step();
    if (node.counters().periods != periods) {
      periods = node.counters().periods;
      printPeriod(node);
    }
    const uint32_t due = detectors.msUntilNext(clock.nowMs());
    if (due < wait) wait = due;
    if (wait > 1000) wait = 1000;
    pollfd p{line.fd(), POLLIN, 0};
    if (wait > 0) poll(&p, 1, static_cast<int>(wait));
  }

  const traffic::SlaveCounters& c = node.slaveCounters();
  const traffic::NodeCounters n = node.counters();
  printf("stopped: periods %u passages %u late %u bad_lane %u frames %u answered %u exceptions %u send_failures %u",
         n.periods, n.passages, n.passagesLate, n.passagesBadLane, c.frames, c.answered, c.exceptions,
         c.sendFailures);
  for (size_t r = 1; r < traffic::kRefusalCount; ++r) {
    printf(" %s %u", traffic::refusalName(static_cast<traffic::Refusal>(r)), c.refused[r]);
  }
  printf("\n");
  return 0;
}
