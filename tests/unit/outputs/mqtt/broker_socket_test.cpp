#include "outputs/mqtt/broker_socket.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using citygate::mqtt::disableNagleTowards;
using citygate::mqtt::hostPortOf;

// A listening loopback socket on a port the kernel picks.
struct Listening {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  std::uint16_t port = 0;
  Listening() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  ~Listening() { ::close(fd); }
  int connect() const {
    const int c = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return c;
  }
};

int noDelay(int fd) {
  int v = -1;
  socklen_t len = sizeof v;
  REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
  return v;
}

}  // namespace

TEST_CASE("broker socket: Nagle is turned off on the sockets to the broker's port only") {
  Listening broker;
  Listening other;
  const int toBroker = broker.connect();
  const int toOther = other.connect();
  REQUIRE(noDelay(toBroker) == 0);  // the kernel's default, as Paho leaves it
  const auto set = disableNagleTowards(broker.port);
  REQUIRE(set.has_value());
  CHECK(*set == 1);
  CHECK(noDelay(toBroker) == 1);
  CHECK(noDelay(toOther) == 0);
  CHECK(disableNagleTowards(0) == std::optional<std::size_t>(0));  // listening sockets have no peer
  ::close(toBroker);
  ::close(toOther);
}

TEST_CASE("broker socket: host and port of every URI form the loader accepts") {
  CHECK(hostPortOf("tcp://127.0.0.1:1884").host == "127.0.0.1");
  CHECK(hostPortOf("tcp://127.0.0.1:1884").port == "1884");
  CHECK(hostPortOf("mqtt://broker.city").port == "1883");
  CHECK(hostPortOf("ssl://broker.city").port == "8883");
  CHECK(hostPortOf("mqtts://broker.city:9883").port == "9883");
  CHECK(hostPortOf("ssl://[::1]:8884").host == "::1");
  CHECK(hostPortOf("ssl://[::1]:8884").port == "8884");
  CHECK(hostPortOf("tcp://[fe80::1]").port == "1883");
  CHECK(hostPortOf("tcp://h:1/").port == "1");
}
