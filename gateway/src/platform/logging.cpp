#include "platform/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace citygate::platform {

Logging::Logging(bool journal) : sink_(std::make_shared<spdlog::sinks::stderr_sink_mt>()) {
  sink_->set_pattern(journal ? "%n: %l: %v" : "%Y-%m-%dT%H:%M:%S.%e %n %l: %v");
}

std::shared_ptr<spdlog::logger> Logging::get(const std::string& component) {
  auto it = loggers_.find(component);
  if (it != loggers_.end()) return it->second;
  auto log = std::make_shared<spdlog::logger>(component, sink_);
  log->set_level(level_);
  log->flush_on(spdlog::level::warn);
  loggers_.emplace(component, log);
  return log;
}

std::optional<spdlog::level::level_enum> Logging::parseLevel(const std::string& s) {
  if (s == "trace") return spdlog::level::trace;
  if (s == "debug") return spdlog::level::debug;
  if (s == "info") return spdlog::level::info;
  if (s == "warn" || s == "warning") return spdlog::level::warn;
  if (s == "error") return spdlog::level::err;
  if (s == "critical") return spdlog::level::critical;
  if (s == "off") return spdlog::level::off;
  return std::nullopt;
}

bool Logging::setLevel(const std::string& level, const std::string& logger) {
  const auto lvl = parseLevel(level);
  if (!lvl) return false;
  if (logger.empty()) {
    level_ = *lvl;
    for (auto& [_, l] : loggers_) l->set_level(*lvl);
    return true;
  }
  auto it = loggers_.find(logger);
  if (it == loggers_.end()) return false;
  it->second->set_level(*lvl);
  return true;
}

std::string Logging::level() const {
  const auto sv = spdlog::level::to_string_view(level_);
  return std::string(sv.data(), sv.size());
}

std::string Logging::level(const std::string& logger) const {
  const auto it = loggers_.find(logger);
  if (it == loggers_.end()) return level();
  const auto sv = spdlog::level::to_string_view(it->second->level());
  return std::string(sv.data(), sv.size());
}

}  // namespace citygate::platform
