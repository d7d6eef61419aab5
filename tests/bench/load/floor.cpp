// The floor under the load harness's CPU figures: what the same workload costs this machine with
// nothing but the system calls it cannot avoid, so citygated's figure can be read against it.
//
//   bench_floor --port PORT --devices N --points M --interval-ms T [--per-bus 25]
//               [--bytes-per-reading B] [--durability-ms D] [--spool-dir DIR]
//               [--warmup S] [--duration S]
//
// - Modbus: one thread and one libmodbus TCP connection per bus of --per-bus devices (as
//   citygated's bench config has), each device read every T ms as M UINT32s in requests of at
//   most 124 registers, the devices of a bus staggered over the interval as citygated does; the
//   values are not even looked at.
// - Durability: one write() of B bytes per device poll into a file in --spool-dir, and one
//   fdatasync() per D ms while there is something unsynced (citygated's group commit, STRICT);
//   with D = 0 no fdatasync at all (ACK_DRIVEN's steady state: the run points --spool-dir at tmpfs).
//
// It prints one JSON line: points read in the window, CPU seconds (user + sys, whole process),
// and CPU µs per point, split into the Modbus threads and the durability thread.
#include <fcntl.h>
#include <modbus.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double processCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

struct Options {
  int port = 0;
  int devices = 0;
  int points = 0;
  int intervalMs = 1000;
  int perBus = 25;
  std::size_t bytesPerReading = 0;
  int durabilityMs = 50;
  std::string spoolDir = "/tmp";
  double warmup = 8;
  double duration = 30;
};

// Unsynced bytes and the group commit, shared by the bus threads and the durability thread.
class Durability {
 public:
  Durability(const Options& o) : durability_(o.durabilityMs) {
    path_ = o.spoolDir + "/floor.spool";
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      std::perror("bench_floor: spool file");
      std::exit(1);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~Durability() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  void append(const std::string& record) {
    std::lock_guard lock(mutex_);
    if (::write(fd_, record.data(), record.size()) != static_cast<ssize_t>(record.size())) std::perror("write");
    if (durability_.count() > 0 && !dirty_) {
      dirty_ = true;
      cv_.notify_one();
    }
  }
  std::atomic<double> cpu{0};  // the durability thread's CPU, s

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      cv_.wait(lock, [this] { return stop_ || dirty_; });
      if (stop_) break;
      cv_.wait_for(lock, durability_, [this] { return stop_; });  // the group commit's window
      dirty_ = false;
      lock.unlock();
      ::fdatasync(fd_);
      cpu = threadCpuSeconds();
      lock.lock();
    }
  }

  std::chrono::milliseconds durability_;
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool dirty_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--port")
      o.port = std::atoi(v);
    else if (k == "--devices")
      o.devices = std::atoi(v);
    else if (k == "--points")
      o.points = std::atoi(v);
    else if (k == "--interval-ms")
      o.intervalMs = std::atoi(v);
    else if (k == "--per-bus")
      o.perBus = std::atoi(v);
    else if (k == "--bytes-per-reading")
      o.bytesPerReading = static_cast<std::size_t>(std::atol(v));
    else if (k == "--durability-ms")
      o.durabilityMs = std::atoi(v);
    else if (k == "--spool-dir")
      o.spoolDir = v;
    else if (k == "--warmup")
      o.warmup = std::atof(v);
    else if (k == "--duration")
      o.duration = std::atof(v);
    else {
      std::fprintf(stderr, "bench_floor: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.port <= 0 || o.devices <= 0 || o.points <= 0 || o.perBus <= 0) {
    std::fprintf(stderr, "usage: bench_floor --port PORT --devices N --points M --interval-ms T ...\n");
    return 2;
  }

  Durability durability(o);
  const auto start = Clock::now();
  const auto windowOpen = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  const auto windowClose =
      windowOpen + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  std::atomic<long long> windowPoints{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> buses;
  for (int first = 1; first <= o.devices; first += o.perBus) {
    buses.emplace_back([&, first] {
      modbus_t* ctx = modbus_new_tcp("127.0.0.1", o.port);
      if (ctx == nullptr || modbus_connect(ctx) != 0) {
        std::fprintf(stderr, "bench_floor: connect: %s\n", modbus_strerror(errno));
        ++failures;
        return;
      }
      const int regs = 2 * o.points;
      std::vector<std::uint16_t> data(static_cast<std::size_t>(regs));
      const std::string record(o.bytesPerReading, 'r');
      const int n = std::min(o.perBus, o.devices - first + 1);
      for (auto cycle = start; cycle < windowClose; cycle += std::chrono::milliseconds(o.intervalMs)) {
        for (int i = 0; i < n; ++i) {
          // Staggered as citygated polls: device i of n at i/n of the interval.
          std::this_thread::sleep_until(cycle + std::chrono::milliseconds(o.intervalMs) * i / n);
          const int u = first + i;
          modbus_set_slave(ctx, u);
          for (int at = 0; at < regs; at += 124) {
            const int count = std::min(124, regs - at);
            if (modbus_read_registers(ctx, at, count, data.data() + at) != count) ++failures;
          }
          if (o.bytesPerReading > 0) durability.append(record);
          const auto now = Clock::now();
          if (now >= windowOpen && now < windowClose) windowPoints += o.points;
        }
      }
      modbus_close(ctx);
      modbus_free(ctx);
    });
  }
  std::this_thread::sleep_until(windowOpen);
  const double cpu0 = processCpuSeconds();
  const double durability0 = durability.cpu.load();
  std::this_thread::sleep_until(windowClose);
  const double cpu = processCpuSeconds() - cpu0;
  const double durabilityCpu = durability.cpu.load() - durability0;
  for (auto& t : buses) t.join();
  const double modbusCpu = cpu - durabilityCpu;  // the bus threads, and the main thread's two waits
  const auto points = static_cast<double>(windowPoints.load());
  std::printf(
      "{\"points\": %.0f, \"cpu_s\": %.4f, \"cpu_us_per_point\": %.3f, \"modbus_us_per_point\": %.3f, "
      "\"durability_us_per_point\": %.3f, \"failures\": %d}\n",
      points, cpu, points > 0 ? 1e6 * cpu / points : 0.0, points > 0 ? 1e6 * modbusCpu / points : 0.0,
      points > 0 ? 1e6 * durabilityCpu / points : 0.0, failures.load());
  return failures.load() == 0 ? 0 : 1;
}
