#include "sources/port_check.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace citygate::sources {

std::string checkSerialPort(const std::string& device) {
  const int fd = ::open(device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "cannot open " + device + ": " + std::strerror(errno);
  const bool tty = ::isatty(fd) == 1;
  ::close(fd);
  if (!tty) return device + " is not a serial port";
  return {};
}

std::string checkUdpPort(const std::string& host, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) return {};
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  std::string why;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
    why = host + ":" + std::to_string(port) + " (udp) is not available: " + std::strerror(errno);
  }
  ::close(fd);
  return why;
}

}  // namespace citygate::sources
