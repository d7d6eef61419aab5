#include "core/clock_sync.hpp"

#include <sys/timex.h>

#include <cerrno>
#include <cstring>

namespace citygate::core {

const char* clockSyncName(ClockSyncState s) {
  switch (s) {
    case ClockSyncState::Synchronised:
      return "synchronised";
    case ClockSyncState::Unsynchronised:
      return "unsynchronised";
    case ClockSyncState::Unknown:
      break;
  }
  return "unknown";
}

ClockSyncStatus KernelClockSync::query() {
  ClockSyncStatus s;
  timex tx{};  // modes 0: read only
  const int rc = ::ntp_adjtime(&tx);
  if (rc < 0) {
    s.state = ClockSyncState::Unknown;
    s.error = std::string("adjtimex: ") + std::strerror(errno);
    return s;
  }
  s.state =
      rc == TIME_ERROR || (tx.status & STA_UNSYNC) != 0 ? ClockSyncState::Unsynchronised : ClockSyncState::Synchronised;
  s.maxErrorUs = tx.maxerror > 0 ? static_cast<std::uint64_t>(tx.maxerror) : 0;
  s.estErrorUs = tx.esterror > 0 ? static_cast<std::uint64_t>(tx.esterror) : 0;
  return s;
}

ClockSyncMonitor::ClockSyncMonitor(Clock& clock, ClockSyncSource& source, std::chrono::milliseconds every)
    : clock_(clock), source_(source), every_(every), timer_(clock_.makeTimer()) {}

void ClockSyncMonitor::start(ChangeCallback onChange) {
  onChange_ = std::move(onChange);
  started_ = false;
  check();
}

void ClockSyncMonitor::stop() {
  timer_->cancel();
  onChange_ = nullptr;
}

void ClockSyncMonitor::check() {
  ClockSyncStatus now = source_.query();
  const std::optional<ClockSyncState> before = started_ ? std::optional<ClockSyncState>(status_.state) : std::nullopt;
  const bool changed = !started_ || now.state != status_.state;
  started_ = true;
  status_ = std::move(now);
  if (changed) {
    since_ = clock_.steadyNow();
    if (onChange_) onChange_(status_, before);
  }
  arm();
}

void ClockSyncMonitor::arm() {
  if (!onChange_) return;  // stopped (or never started): no timer
  // The timer is ours and drops its handler uncalled when destroyed (core/clock.hpp).
  timer_->start(every_, [this] { check(); });
}

}  // namespace citygate::core
