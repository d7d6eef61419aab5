// tls_probe: why did a TLS connection to the broker fail? Paho reports only "connection failed";
// a technician needs "certificate verify failed: self-signed certificate in certificate chain".
// One blocking handshake with the same trust settings, bounded by `timeout`; called from Paho's
// callback thread after a failed TLS connect, never on the executor.
#pragma once

#include <chrono>
#include <string>

namespace citygate::mqtt {

// Returns a one-line reason, or an empty string when the handshake succeeds (the failure was
// not TLS: e.g. the broker refused the client).
std::string probeTls(const std::string& host, const std::string& port, const std::string& caFile,
                     const std::string& certFile, const std::string& keyFile, std::chrono::milliseconds timeout);

}  // namespace citygate::mqtt
