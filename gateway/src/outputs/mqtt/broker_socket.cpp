#include "outputs/mqtt/broker_socket.hpp"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>

namespace citygate::mqtt {

HostPort hostPortOf(const std::string& uri) {
  const auto scheme = uri.find("://");
  const std::string name = scheme == std::string::npos ? std::string("tcp") : uri.substr(0, scheme);
  std::string rest = scheme == std::string::npos ? uri : uri.substr(scheme + 3);
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  HostPort hp{rest, name == "ssl" || name == "mqtts" ? "8883" : "1883"};
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    hp.host = rest.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < rest.size() && rest[close + 1] == ':')
      hp.port = rest.substr(close + 2);
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    hp.host = rest.substr(0, colon);
    hp.port = rest.substr(colon + 1);
  }
  return hp;
}

std::optional<std::size_t> disableNagleTowards(std::uint16_t port) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::size_t set = 0;
  const int self = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == self) continue;
    int protocol = 0;
    socklen_t len = sizeof protocol;
    if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 || protocol != IPPROTO_TCP)
      continue;  // not a socket (ENOTSOCK), or not TCP
    sockaddr_storage peer{};
    len = sizeof peer;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    std::uint16_t peerPort = 0;
    if (peer.ss_family == AF_INET) {
      peerPort = ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      peerPort = ntohs(reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port);
    }
    if (peerPort != port) continue;
    const int on = 1;
    if (::setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0) ++set;
  }
  ::closedir(dir);
  return set;
}

}  // namespace citygate::mqtt
