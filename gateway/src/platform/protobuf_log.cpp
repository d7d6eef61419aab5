#include "platform/protobuf_log.hpp"

#include <google/protobuf/stubs/common.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#if GOOGLE_PROTOBUF_VERSION < 4022000
#include <google/protobuf/stubs/logging.h>
#define CITYGATE_PROTOBUF_LOG_HANDLER 1
#endif

namespace citygate::platform {

namespace {

struct State {
  std::mutex mutex;
  std::shared_ptr<spdlog::logger> log;
  std::chrono::milliseconds interval{10000};
  std::optional<std::chrono::steady_clock::time_point> last;
  std::uint64_t unlogged = 0;
#ifdef CITYGATE_PROTOBUF_LOG_HANDLER
  google::protobuf::LogHandler* previous = nullptr;
#endif
};

State& state() {
  static State s;  // protobuf's hook is a plain function: its state has to be reachable from it
  return s;
}

#ifdef CITYGATE_PROTOBUF_LOG_HANDLER
void onProtobufLog(google::protobuf::LogLevel level, const char* /*file*/, int /*line*/, const std::string& message) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (!s.log) return;
  const auto now = std::chrono::steady_clock::now();
  if (s.last && now - *s.last < s.interval) {
    ++s.unlogged;
    return;
  }
  s.last = now;
  const auto lvl = level >= google::protobuf::LOGLEVEL_ERROR ? spdlog::level::warn : spdlog::level::debug;
  if (s.unlogged > 0) {
    s.log->log(lvl, "protobuf: {} ({} more protobuf lines since the last one)", message, s.unlogged);
  } else {
    s.log->log(lvl, "protobuf: {}", message);
  }
  s.unlogged = 0;
}
#endif

}  // namespace

ProtobufLogCapture::ProtobufLogCapture(std::shared_ptr<spdlog::logger> log, std::chrono::milliseconds interval) {
  State& s = state();
  {
    std::lock_guard lock(s.mutex);
    s.log = std::move(log);
    s.interval = interval;
  }
#ifdef CITYGATE_PROTOBUF_LOG_HANDLER
  s.previous = google::protobuf::SetLogHandler(&onProtobufLog);
#endif
}

ProtobufLogCapture::~ProtobufLogCapture() {
  State& s = state();
#ifdef CITYGATE_PROTOBUF_LOG_HANDLER
  google::protobuf::SetLogHandler(s.previous);  // protobuf's own (stderr) again
#endif
  std::lock_guard lock(s.mutex);
  s.log.reset();
}

}  // namespace citygate::platform
