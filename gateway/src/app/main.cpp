// citygated: the street-side sensor gateway daemon.
//
//   citygated --config FILE [--log-level LEVEL]   run in the foreground (as systemd runs it)
//   citygated --check-config FILE                 validate and exit
//
// Exit codes: 0 clean stop, 1 start-up failure, 2 usage, 78 (EX_CONFIG) configuration errors.
//
// SIGHUP re-reads the config file and applies it like `citygatectl config apply` (unchanged
// sources keep running; a file with errors, or one that does not start, leaves the running
// configuration in place). SIGTERM / SIGINT stop cleanly.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "app/gateway.hpp"
#include "app/validate.hpp"
#include "config/files.hpp"
#include "control/handlers.hpp"
#include "control/server.hpp"
#include "platform/logging.hpp"
#include "platform/protobuf_log.hpp"
#include "platform/systemd.hpp"

#ifndef CITYGATE_VERSION
#define CITYGATE_VERSION "0.0.0"
#endif

namespace {

constexpr int kExitConfig = 78;

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: citygated --config FILE [--log-level LEVEL]\n"
               "       citygated --check-config FILE\n"
               "       citygated --version\n\n"
               "Runs the citygate sensor gateway in the foreground: polls the Modbus buses and the LoRa\n"
               "packet forwarder of FILE, and forwards normalised readings to the MQTT broker.\n\n"
               "  --config FILE        the gateway configuration (protobuf text format)\n"
               "  --check-config FILE  validate FILE and its profiles, print every problem as\n"
               "                       FILE:LINE:COL: message, and exit (0 = valid)\n"
               "  --log-level LEVEL    trace, debug, info (default), warn, error\n"
               "  --version            print the version\n");
}

}  // namespace

int main(int argc, char** argv) {
  // Large buffers (replay batches of up to max_batch_bytes, big arena blocks) are mapped and
  // unmapped rather than kept in the heap. Setting the threshold also stops glibc from raising it
  // after the first large free, which would leave the first outage's replay as a high-water mark
  // in the heap for good.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  std::string configPath;
  std::string checkPath;
  std::string logLevel;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "citygated: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      out = argv[++i];
    };
    if (a == "--config" || a == "-c") {
      value(configPath);
    } else if (a.rfind("--config=", 0) == 0) {
      configPath = a.substr(9);
    } else if (a == "--check-config") {
      value(checkPath);
    } else if (a == "--log-level") {
      value(logLevel);
    } else if (a == "--version") {
      std::printf("citygated %s\n", CITYGATE_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "citygated: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }

  if (!checkPath.empty()) {
    citygate::config::Diagnostics diags;
    auto cfg = citygate::app::validateFile(checkPath, diags);
    std::fputs(diags.str().c_str(), stderr);
    if (!cfg) {
      std::fprintf(stderr, "%s: %zu error(s)\n", checkPath.c_str(), diags.size());
      return kExitConfig;
    }
    std::printf("%s: OK (%d bus(es), %zu profile(s))\n", checkPath.c_str(), cfg->loaded.config.modbus_bus_size(),
                cfg->loaded.profiles.names().size());
    return 0;
  }
  if (configPath.empty()) {
    usage(stderr);
    return 2;
  }
  // Absolute, once: SIGHUP re-reads it, `config apply --save` writes it, `status` shows it.
  configPath = citygate::config::absolutePath(configPath);
  if (!logLevel.empty() && !citygate::platform::Logging::parseLevel(logLevel)) {
    std::fprintf(stderr, "citygated: unknown log level '%s'\n", logLevel.c_str());
    return 2;
  }

  citygate::config::Diagnostics diags;
  auto cfg = citygate::app::validateFile(configPath, diags);
  if (!cfg) {
    std::fputs(diags.str().c_str(), stderr);
    std::fprintf(stderr, "citygated: %s has %zu error(s); not starting\n", configPath.c_str(), diags.size());
    return kExitConfig;
  }
  std::fputs(diags.str().c_str(), stderr);  // warnings

  citygate::platform::Logging logging(std::getenv("JOURNAL_STREAM") != nullptr);
  if (!logLevel.empty()) {
    logging.setLevel(logLevel);
  } else if (!cfg->loaded.config.log_level().empty()) {
    logging.setLevel(cfg->loaded.config.log_level());
  }
  auto log = logging.get("main");
  // Protobuf's own lines (one per string that is not UTF-8, whoever sent it) into our log, rate-limited.
  citygate::platform::ProtobufLogCapture protobufLog(log, std::chrono::seconds(10));

  boost::asio::io_context ioc(1);
  auto gateway = std::make_shared<citygate::app::Gateway>(ioc, logging, std::move(cfg), CITYGATE_VERSION);
  if (auto st = gateway->start(); !st) {
    log->critical("cannot start: {}", st.error());
    return 1;
  }

  // ---- control socket (citygatectl) ----
  citygate::control::ServerOptions controlOptions;
  controlOptions.path = gateway->config().loaded.config.control().socket();
  auto handlers = std::make_shared<citygate::control::Handlers>(ioc.get_executor(), gateway, logging.get("control"));
  handlers->install();
  auto control = std::make_shared<citygate::control::ControlServer>(ioc.get_executor(), gateway->clock(),
                                                                    controlOptions, handlers, logging.get("control"));
  if (auto st = control->start(); !st) {
    // The data path matters more than the technician's tool: keep running, say so loudly.
    log->error("{}; citygatectl cannot reach this daemon", st.error());
  } else {
    gateway->setHealthExtension([weak = std::weak_ptr(control)](citygate::v1::GatewayHealth& h) {
      if (auto c = weak.lock()) c->fillCounters(*h.mutable_counters());
    });
  }

  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM, SIGHUP);
  boost::asio::steady_timer stopDeadline(ioc);
  bool stopping = false;
  std::function<void(const boost::system::error_code&, int)> onSignal;
  onSignal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      log->info("SIGHUP: applying {}", configPath);
      citygate::platform::notifyStatus("applying " + configPath);
      gateway->applyConfig(configPath, std::nullopt, false, [log, gateway](citygate::app::Gateway::ApplyOutcome o) {
        using Kind = citygate::app::Gateway::ApplyOutcome::Kind;
        if (o.kind == Kind::Applied) {
          log->info("SIGHUP: {}", o.message);
        } else {
          for (const auto& d : o.diagnostics) log->error("{}", d);
          log->error("SIGHUP: not applied: {}", o.message);
        }
        citygate::platform::notifyStatus(o.kind == Kind::Applied ? gateway->statusText()
                                                                 : gateway->statusText() + " (last reload failed)");
      });
      signals.async_wait(onSignal);
      return;
    }
    if (stopping) return;
    stopping = true;
    log->info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    citygate::platform::notifyStopping();
    control->stop();
    gateway->stop([&] {
      signals.cancel();
      ioc.stop();
    });
    // A broker that stopped answering must not hold the shutdown: the spool is already closed
    // or will be recovered at the next start.
    stopDeadline.expires_after(std::chrono::seconds(5));
    stopDeadline.async_wait([&](const boost::system::error_code& timerEc) {
      if (timerEc) return;
      log->warn("shutdown did not complete in 5 s; stopping anyway");
      ioc.stop();
    });
  };
  signals.async_wait(onSignal);

  boost::asio::steady_timer watchdog(ioc);
  std::function<void(const boost::system::error_code&)> onWatchdog;
  const auto wd = citygate::platform::watchdogInterval();
  if (wd) {
    onWatchdog = [&](const boost::system::error_code& ec) {
      if (ec) return;
      citygate::platform::notifyWatchdog();
      watchdog.expires_after(*wd);
      watchdog.async_wait(onWatchdog);
    };
    watchdog.expires_after(*wd);
    watchdog.async_wait(onWatchdog);
  }
  citygate::platform::notifyReady(gateway->statusText());  // "running", or what ails the spool
  log->info("citygated {} ready", CITYGATE_VERSION);

  ioc.run();
  watchdog.cancel();
  gateway->release();  // before the io_context goes: nothing may post into it any more
  return 0;
}
