#include "core/time.hpp"

#include <google/protobuf/timestamp.pb.h>

#include <cstdio>
#include <ctime>

namespace citygate {

void toTimestamp(WallTime t, google::protobuf::Timestamp* out) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::int64_t secs = ns / 1'000'000'000;
  std::int64_t rem = ns % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    --secs;
  }
  out->set_seconds(secs);
  out->set_nanos(static_cast<std::int32_t>(rem));
}

WallTime fromTimestamp(const google::protobuf::Timestamp& ts) {
  return WallTime{std::chrono::duration_cast<WallClock::duration>(std::chrono::seconds{ts.seconds()} +
                                                                  std::chrono::nanoseconds{ts.nanos()})};
}

std::int64_t toMillis(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string formatIso8601(WallTime t) {
  const std::int64_t ms = toMillis(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace citygate
