// Wall-clock helpers shared by every component. Readings carry wall-clock timestamps; timers
// and backoff use the steady clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace google::protobuf {
class Timestamp;
}

namespace citygate {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;
using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

void toTimestamp(WallTime t, google::protobuf::Timestamp* out);
WallTime fromTimestamp(const google::protobuf::Timestamp& ts);
std::int64_t toMillis(WallTime t);

// "2026-11-28T10:15:00.123Z"
std::string formatIso8601(WallTime t);

}  // namespace citygate
