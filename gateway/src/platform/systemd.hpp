// systemd integration without a hard dependency: sd_notify READY/STOPPING/WATCHDOG/STATUS when
// NOTIFY_SOCKET is set (Type=notify), nothing otherwise.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace citygate::platform {

void notifyReady(const std::string& status);
void notifyStopping();
void notifyStatus(const std::string& status);
void notifyWatchdog();
// Half the WATCHDOG_USEC interval when the service manager asked for pings.
std::optional<std::chrono::microseconds> watchdogInterval();

}  // namespace citygate::platform
