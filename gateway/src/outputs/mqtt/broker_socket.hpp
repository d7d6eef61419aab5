// broker_socket: what the MQTT client needs to know of its broker's TCP endpoint, and what it
// changes on the socket Paho opened to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace citygate::mqtt {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;  // the scheme's default when the URI has none
};

// tcp://host:port, ssl://[::1]:8883, mqtt://host, ... (the URIs the config loader accepted).
HostPort hostPortOf(const std::string& uri);

// Paho C 1.3.12 leaves Nagle's algorithm on and has no option to turn it off
// (eclipse-paho/paho.mqtt.c#530). A QoS 0 publish followed at once by a small QoS 1 one (the
// Sparkplug DDATA then its mark; a batch then a command result) then waits for the broker's
// delayed ACK: 40 ms on Linux, measured as the p50 latency of the Sparkplug mode before this.
// Sets TCP_NODELAY on every TCP socket of this process connected to `port` (the broker's; a
// Modbus socket that happens to share the port gets what libmodbus sets anyway). Returns how
// many sockets it set, or nullopt when /proc/self/fd cannot be read.
std::optional<std::size_t> disableNagleTowards(std::uint16_t port);

}  // namespace citygate::mqtt
