// Clock: the time and the timers a component uses, injected so that tests run timer-driven code on
// a manual clock without sleeping (tests/unit/support/manual_clock.hpp). The daemon passes one
// SystemClock (steady_clock + system_clock, timers on the executor) to every component.
//
// Timer semantics (both implementations): start() arms the timer, replacing a pending wait, whose
// handler is then destroyed uncalled; cancel() and the destructor do the same. A handler runs on the
// executor (SystemClock) or inside ManualClock::advance(), never inside start().
//
// Threading: a Timer is used on the executor only; Clock's now() functions may be called anywhere.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>

#include "core/time.hpp"

namespace citygate::core {

class Timer {
 public:
  using Handler = std::function<void()>;
  virtual ~Timer() = default;
  virtual void start(SteadyClock::duration after, Handler handler) = 0;
  virtual void cancel() = 0;
  // A wait is pending (started, neither fired nor cancelled).
  virtual bool armed() const = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steadyNow() const = 0;
  virtual WallTime wallNow() const = 0;
  virtual std::unique_ptr<Timer> makeTimer() = 0;
};

// The real clocks; timers are boost::asio::steady_timer on `executor`.
class SystemClock final : public Clock {
 public:
  explicit SystemClock(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  SteadyTime steadyNow() const override { return SteadyClock::now(); }
  WallTime wallNow() const override { return WallClock::now(); }
  std::unique_ptr<Timer> makeTimer() override;

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace citygate::core
