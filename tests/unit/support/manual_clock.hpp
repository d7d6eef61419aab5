// ManualClock: a core::Clock whose time moves only when a test says so. advance() fires the due
// timers in order of their due time, each at its own time, so that timer-driven code runs in unit
// tests without sleeping and the same way on a loaded machine, under sanitizers and under qemu.
//
// The time may be read from any thread (a bus worker's, for its due times), as Clock says; timers
// and advance() belong to the test's thread.
//
// The steady clock starts 60 s after its epoch (a machine booted a minute ago: no code may take
// the epoch for "long ago"); the wall clock starts at 2026-11-28T10:00:00Z.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/clock.hpp"

namespace citygate::testing {

class ManualClock final : public core::Clock {
 public:
  ManualClock() = default;
  ~ManualClock() { dropHandlers(); }
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  SteadyTime steadyNow() const override { return steady_.load(); }
  WallTime wallNow() const override { return wall_.load(); }
  std::unique_ptr<core::Timer> makeTimer() override { return std::make_unique<ManualTimer>(*this); }

  // Moves time forward by `d`, firing every timer that falls due on the way, in due order (ties in
  // the order they were started). `settle` runs after each handler (e.g. to poll an io_context, so
  // that work the handler posted runs before the next timer's time).
  void advance(SteadyClock::duration d, const std::function<void()>& settle = {}) {
    const SteadyTime until = steady_.load() + d;
    dropHandlers();
    while (true) {
      ManualTimer* next = nullptr;
      for (ManualTimer* t : timers_) {
        if (t->due && *t->due <= until &&
            (!next || *t->due < *next->due || (*t->due == *next->due && t->order < next->order))) {
          next = t;
        }
      }
      if (!next) break;
      moveTo(*next->due);
      next->due.reset();
      auto handler = std::move(next->handler);
      next->handler = nullptr;
      handler();
      if (settle) settle();
    }
    moveTo(until);
  }

  // Destroys the handlers of cancelled or replaced timers now (advance() and the destructor do it
  // too): before destroying what they may hold on to, e.g. an io_context their owners' sockets use.
  void dropHandlers() {
    while (!dropped_.empty()) {
      auto dropped = std::move(dropped_);
      dropped_.clear();
      dropped.clear();  // may destroy owners whose destructors cancel more timers
    }
  }

  // Timers armed now.
  std::size_t armedTimers() const {
    return static_cast<std::size_t>(
        std::count_if(timers_.begin(), timers_.end(), [](const ManualTimer* t) { return t->due.has_value(); }));
  }

  // When the next timer falls due; none when nothing is armed.
  std::optional<SteadyTime> nextDue() const {
    std::optional<SteadyTime> best;
    for (const ManualTimer* t : timers_) {
      if (t->due && (!best || *t->due < *best)) best = t->due;
    }
    return best;
  }

 private:
  struct ManualTimer final : core::Timer {
    explicit ManualTimer(ManualClock& c) : clock(c) { clock.timers_.push_back(this); }
    ~ManualTimer() override { std::erase(clock.timers_, this); }
    void start(SteadyClock::duration after, Handler h) override {
      drop();
      due = clock.steady_.load() + std::max(after, SteadyClock::duration::zero());
      order = ++clock.started_;
      handler = std::move(h);
    }
    void cancel() override {
      due.reset();
      drop();
    }
    // As on the executor, a cancelled or replaced handler is destroyed later, not inside the call
    // (it may hold the last reference to the timer's owner).
    void drop() {
      if (handler) clock.dropped_.push_back(std::move(handler));
      handler = nullptr;
    }
    bool armed() const override { return due.has_value(); }

    ManualClock& clock;
    std::optional<SteadyTime> due;
    std::uint64_t order = 0;
    Handler handler;
  };

  void moveTo(SteadyTime t) {
    const SteadyTime from = steady_.load();
    if (t <= from) return;
    wall_.store(wall_.load() + std::chrono::duration_cast<WallClock::duration>(t - from));
    steady_.store(t);
  }

  std::atomic<SteadyTime> steady_{SteadyTime{} + std::chrono::seconds(60)};
  std::atomic<WallTime> wall_{WallTime{} + std::chrono::seconds(1795860000)};  // 2026-11-28T10:00:00Z
  std::uint64_t started_ = 0;
  std::vector<ManualTimer*> timers_;
  std::vector<core::Timer::Handler> dropped_;
};

}  // namespace citygate::testing
