// runUntil: runs an io_context until `done` holds, for events another thread posts (a bus worker, a
// file writer). Not for timers: those run on testing::ManualClock. The deadline (real time) only
// bounds a test that would otherwise hang; false when it passed.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace citygate::testing {

inline bool runUntil(boost::asio::io_context& ioc, const std::function<bool()>& done,
                     std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    ioc.run_for(std::chrono::milliseconds(2));
    ioc.restart();
  }
  return true;
}

}  // namespace citygate::testing
