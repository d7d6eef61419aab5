// ControlTarget: what the control socket's handlers need from the running daemon. app::Gateway
// implements it; the handlers hold this interface and the sources' (sources/source.hpp), never
// app::Gateway, so control/ sits below app/
// in the folder graph (toolchains/check-includes.py) and can be tested against a fake daemon.
//
// Threading: every call on the executor; `done` and the reading tap are called on it too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "citygate/v1/control.pb.h"
#include "citygate/v1/reading.pb.h"
#include "citygate/v1/status.pb.h"
#include "config/loader.hpp"
#include "config/plan.hpp"
#include "core/time.hpp"
#include "sources/source.hpp"

namespace citygate::platform {
class Logging;
}
namespace citygate::commands {
class Service;
}

namespace citygate::control {

// The result of a configuration change (`config apply`) or of its plan alone (`config diff`).
struct ApplyOutcome {
  enum class Kind : std::uint8_t { Applied, Planned, Invalid, Refused, Failed, Busy, Unavailable };
  Kind kind = Kind::Failed;
  std::string message;
  std::vector<std::string> diagnostics;  // FILE:LINE:COL: message (errors, or warnings)
  config::ConfigPlan plan;
  std::string text;              // the proposed configuration's text
  std::uint64_t generation = 0;  // of the configuration running afterwards
  std::uint64_t nextSeq = 0;
  // applyAndSave(): where the applied text went (config/config_file.hpp).
  bool saved = false;     // the config file holds the running text (written, or it already did)
  std::string backup;     // the previous file, kept; empty when nothing was written
  std::string saveError;  // Applied, but the file could not be put in place afterwards
};

class ControlTarget {
 public:
  using ApplyDone = std::function<void(ApplyOutcome)>;
  using ReadingTap = std::function<void(const citygate::v1::Reading&, std::string_view bytes)>;

  virtual ~ControlTarget() = default;

  virtual citygate::v1::GatewayHealth health() const = 0;
  // The running configuration as loaded (text, path, defaults applied, profiles).
  virtual const config::LoadedConfig& loadedConfig() const = 0;
  virtual std::uint64_t configGeneration() const = 0;
  virtual WallTime configLoadedAt() const = 0;
  virtual const std::string& bootId() const = 0;
  virtual const std::string& version() const = 0;
  virtual WallTime startedAt() const = 0;
  virtual bool stopping() const = 0;
  virtual platform::Logging& logging() = 0;

  // Replaces the running configuration by `text` (or, without text, the file at `path`), or only
  // plans it (`dryRun`). `done` is called on the executor.
  virtual void applyConfig(std::string path, std::optional<std::string> text, bool dryRun, ApplyDone done) = 0;
  // The daemon's own configuration file (its --config, absolute): what SIGHUP and a restart load.
  virtual const std::string& configFile() const { return loadedConfig().path; }
  // applyConfig(), and the applied text written to configFile(): prepared (written and synced
  // beside it) on the helper thread before anything changes, so a file that cannot be written
  // fails the apply with nothing changed (Failed); put in place (renames) once the new
  // configuration runs. The previous file is kept as configFile() + ".bak". Default: refused.
  virtual void applyAndSave(std::string path, std::string text,  // NOLINT(performance-unnecessary-value-param)
                            ApplyDone done) {
    (void)path;
    (void)text;
    ApplyOutcome o;
    o.kind = ApplyOutcome::Kind::Failed;
    o.message = "this daemon cannot save its configuration; nothing was changed";
    auto answer = std::move(done);
    answer(std::move(o));
  }
  // Every reading as the pipeline numbers it (one tap: the control socket's).
  virtual void setReadingTap(ReadingTap tap) = 0;

  // `mqtt reconnect`: connect to the broker now (mqtt::Session::reconnectNow); nullopt when the
  // daemon has no MQTT session (a test's fake).
  virtual std::optional<citygate::v1::MqttReconnectResponse> reconnectMqtt() { return std::nullopt; }

  // Writes and their audit (`modbus write`): the daemon's command service; nullptr when the
  // daemon has none (a test's fake).
  virtual commands::Service* commands() { return nullptr; }

  // The running sources, every kind (devices, health; a kind's own handler casts them).
  virtual const std::vector<std::shared_ptr<sources::Source>>& sources() const = 0;

  // The running source of `kind` named `name`, or nullptr.
  std::shared_ptr<sources::Source> findSource(std::string_view kind, std::string_view name) const {
    for (const auto& s : sources()) {
      if (s->kind() == kind && s->name() == name) return s;
    }
    return nullptr;
  }
};

}  // namespace citygate::control
