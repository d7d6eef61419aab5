// A fast Modbus TCP simulator for the load harness: any number of connections and unit ids on
// one port (libmodbus server, one poll() loop), every holding and input register pair holding the
// wall-clock time in milliseconds (UINT32, ABCD, mod 2^32) at the moment it is read, so every
// poll sees new values and the subscriber can compute the end-to-end latency of each point.
//
//   bench_modbus_sim --port PORT [--stats FILE] [--ready FILE]
//
// It counts requests (total and per unit id) and writes them as JSON to --stats every 200 ms and
// on SIGTERM.
#include <modbus.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::atomic<bool> gStop{false};
void onSignal(int) {
  gStop = true;
}

std::uint32_t nowMs() {
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void writeStats(const std::string& path, std::uint64_t total, const std::array<std::uint64_t, 256>& perUnit) {
  if (path.empty()) return;
  std::string s = "{\"requests\": " + std::to_string(total) + ", \"units\": {";
  bool first = true;
  for (std::size_t u = 0; u < perUnit.size(); ++u) {
    if (perUnit[u] == 0) continue;
    s += (first ? "\"" : ", \"") + std::to_string(u) + "\": " + std::to_string(perUnit[u]);
    first = false;
  }
  s += "}}\n";
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << s;
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int port = 1502;
  std::string stats;
  std::string ready;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--port")
      port = std::atoi(argv[i + 1]);
    else if (a == "--stats")
      stats = argv[i + 1];
    else if (a == "--ready")
      ready = argv[i + 1];
  }
  std::signal(SIGTERM, onSignal);
  std::signal(SIGINT, onSignal);
  std::signal(SIGPIPE, SIG_IGN);

  modbus_t* ctx = modbus_new_tcp("127.0.0.1", port);
  modbus_mapping_t* map = modbus_mapping_new(2000, 2000, 10000, 10000);
  const int server = modbus_tcp_listen(ctx, 1024);
  if (server < 0) {
    std::fprintf(stderr, "bench_modbus_sim: cannot listen on %d: %s\n", port, modbus_strerror(errno));
    return 1;
  }
  if (!ready.empty()) std::ofstream(ready) << getpid() << "\n";

  std::vector<pollfd> fds{{server, POLLIN, 0}};
  std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  std::array<std::uint64_t, 256> perUnit{};
  std::uint64_t total = 0;
  auto lastStats = std::chrono::steady_clock::now();
  while (!gStop) {
    const int n = ::poll(fds.data(), fds.size(), 200);
    if (n < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < fds.size() && n > 0; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (fds[i].fd == server) {
        const int c = ::accept(server, nullptr, nullptr);
        if (c >= 0) fds.push_back({c, POLLIN, 0});
        continue;
      }
      modbus_set_socket(ctx, fds[i].fd);
      const int rc = modbus_receive(ctx, query);
      if (rc > 0) {
        const int header = modbus_get_header_length(ctx);
        const std::uint8_t unit = query[header - 1];
        const std::uint8_t fc = query[header];
        const int addr = (query[header + 1] << 8) | query[header + 2];
        const int count = (query[header + 3] << 8) | query[header + 4];
        if ((fc == 0x03 || fc == 0x04) && addr + count <= 10000) {
          const std::uint32_t ms = nowMs();
          std::uint16_t* regs = fc == 0x03 ? map->tab_registers : map->tab_input_registers;
          for (int r = addr & ~1; r < addr + count + 1 && r + 1 < 10000; r += 2) {
            regs[r] = static_cast<std::uint16_t>(ms >> 16);
            regs[r + 1] = static_cast<std::uint16_t>(ms);
          }
        }
        ++total;
        ++perUnit[unit];
        modbus_reply(ctx, query, rc, map);
      } else if (rc == -1) {
        ::close(fds[i].fd);
        fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
        --i;
      }
    }
    if (std::chrono::steady_clock::now() - lastStats > std::chrono::milliseconds(200)) {
      writeStats(stats, total, perUnit);
      lastStats = std::chrono::steady_clock::now();
    }
  }
  writeStats(stats, total, perUnit);
  for (auto& p : fds) ::close(p.fd);
  modbus_mapping_free(map);
  modbus_free(ctx);
  return 0;
}
