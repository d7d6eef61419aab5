// Logging: one named spdlog logger per component (main, modbus, lora, spool, mqtt, control),
// all writing to stderr (journald adds timestamps under systemd), level changeable at run time.
// Loggers are created here and handed to the components; nobody looks them up by name.
#pragma once

#include <spdlog/common.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace citygate::platform {

class Logging {
 public:
  // `journal`: no timestamps in the pattern (journald has its own).
  explicit Logging(bool journal);

  std::shared_ptr<spdlog::logger> get(const std::string& component);
  // "info", "debug"...; empty logger = all. False for an unknown level or logger.
  bool setLevel(const std::string& level, const std::string& logger = {});
  std::string level() const;
  // One logger's level (it may differ from level() after setLevel(level, logger)).
  std::string level(const std::string& logger) const;

  static std::optional<spdlog::level::level_enum> parseLevel(const std::string& s);

 private:
  std::shared_ptr<spdlog::sinks::sink> sink_;
  std::map<std::string, std::shared_ptr<spdlog::logger>> loggers_;
  spdlog::level::level_enum level_ = spdlog::level::info;
};

}  // namespace citygate::platform
