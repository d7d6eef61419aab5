// Whether the gateway's clock is synchronised to a time source, as the kernel says (adjtimex(2)
// asking for no change: TIME_ERROR or STA_UNSYNC means not synchronised), whichever daemon keeps
// it (systemd-timesyncd, chrony, ntpd): no dependency on any of them. A gateway without a
// battery-backed clock boots at the wrong time; the readings it makes until the clock is
// synchronised carry `clock_unsynchronised` (Pipeline::setClockUnsynchronised).
//
// ClockSyncSource is the seam (tests inject one that says "unsynchronised"); ClockSyncMonitor asks
// it at start() and then every `every` on the injected Clock's timer, keeps the answer (the hot
// path reads a cached flag, never the kernel) and calls back when it changes. On the executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"

namespace citygate::core {

enum class ClockSyncState : std::uint8_t {
  Synchronised,
  Unsynchronised,
  Unknown,  // the kernel could not be asked (error says why): not known to be synchronised
};

const char* clockSyncName(ClockSyncState s);

struct ClockSyncStatus {
  ClockSyncState state = ClockSyncState::Unknown;
  std::uint64_t maxErrorUs = 0;  // timex.maxerror
  std::uint64_t estErrorUs = 0;  // timex.esterror
  std::string error;             // why Unknown
};

class ClockSyncSource {
 public:
  virtual ~ClockSyncSource() = default;
  virtual ClockSyncStatus query() = 0;
};

// The kernel's answer: ntp_adjtime() with modes 0 (needs no privilege; a seccomp filter such as
// systemd's ProtectClock=yes refuses it with EPERM, which gives Unknown).
class KernelClockSync final : public ClockSyncSource {
 public:
  ClockSyncStatus query() override;
};

class ClockSyncMonitor {
 public:
  using ChangeCallback = std::function<void(const ClockSyncStatus& now, std::optional<ClockSyncState> before)>;
  static constexpr std::chrono::seconds kDefaultEvery{5};

  // `clock` and `source` outlive the monitor.
  ClockSyncMonitor(Clock& clock, ClockSyncSource& source, std::chrono::milliseconds every = kDefaultEvery);
  ~ClockSyncMonitor() = default;
  ClockSyncMonitor(const ClockSyncMonitor&) = delete;
  ClockSyncMonitor& operator=(const ClockSyncMonitor&) = delete;

  // Asks at once (onChange is called with before = nullopt), then every `every`.
  void start(ChangeCallback onChange);
  void stop();
  // Asks now (also what the timer does).
  void check();

  const ClockSyncStatus& status() const { return status_; }
  // Not known to be synchronised: what readings carry.
  bool unsynchronised() const { return status_.state != ClockSyncState::Synchronised; }
  // When the state last changed (or start()), on the steady clock: a step of the wall clock at
  // synchronisation does not move it.
  std::optional<SteadyTime> since() const { return since_; }

 private:
  void arm();

  Clock& clock_;
  ClockSyncSource& source_;
  std::chrono::milliseconds every_;
  std::unique_ptr<Timer> timer_;
  ChangeCallback onChange_;
  ClockSyncStatus status_;
  std::optional<SteadyTime> since_;
  bool started_ = false;
};

}  // namespace citygate::core
