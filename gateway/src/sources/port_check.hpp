// The I/O checks a configuration change makes off the executor before it touches a running
// source: can the new source open what it needs? Each opens and closes at once; nothing waits.
#pragma once

#include <cstdint>
#include <string>

namespace citygate::sources {

// A serial port, opened without touching its settings (a running bus may share it) and without
// waiting for a carrier. Empty, or why it cannot be used.
std::string checkSerialPort(const std::string& device);

// A UDP port a new source will bind: bound and released at once. Empty, or why not. IPv6
// addresses and names are not checked here (the bind itself decides).
std::string checkUdpPort(const std::string& host, std::uint16_t port);

}  // namespace citygate::sources
