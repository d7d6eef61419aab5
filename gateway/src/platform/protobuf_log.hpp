// Protobuf's own log lines, into the daemon's log and rate-limited. Protobuf's parser writes a
// line to stderr for every string field that is not UTF-8 (a control client can send thousands a
// second, even in frames that do not parse: control/framing.cpp catches the well-formed ones
// first), and its serializer one for every such string it writes. While a ProtobufLogCapture
// lives, those lines go to `log` ("protobuf: ..."), at most one per `interval` with the number
// left unlogged since. Protobuf's hook is process-wide: one capture, made by main(), on any
// thread (protobuf may log from any).
#pragma once

#include <chrono>
#include <memory>

namespace spdlog {
class logger;
}

namespace citygate::platform {

class ProtobufLogCapture {
 public:
  ProtobufLogCapture(std::shared_ptr<spdlog::logger> log, std::chrono::milliseconds interval);
  ~ProtobufLogCapture();
  ProtobufLogCapture(const ProtobufLogCapture&) = delete;
  ProtobufLogCapture& operator=(const ProtobufLogCapture&) = delete;
};

}  // namespace citygate::platform
