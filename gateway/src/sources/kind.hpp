// SourceKind: what the gateway needs to know about one kind of source (Modbus, LoRa, ...), and the
// SourceRegistry, the list of kinds a program knows. Validation, the plan of a configuration
// change, the I/O checks before it and the making of sources go through here, so adding a kind
// takes its own folder and one registration line (app/sources.cpp).
//
// Threading: validate(), unchanged(), namedFiles() and checkPorts() are pure or read files only
// and may run on any thread (a configuration change checks off the executor); make() runs on the
// executor.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/files.hpp"
#include "config/loader.hpp"
#include "config/plan.hpp"
#include "sources/source.hpp"

namespace citygate::sources {

using SpecList = std::vector<std::shared_ptr<const SourceSpec>>;

class SourceKind {
 public:
  virtual ~SourceKind() = default;

  virtual std::string_view name() const = 0;
  // Compiles this kind's part of `cfg` into one spec per source (appended to `out`, in
  // configuration order); every problem goes to `diags` as FILE:LINE:COL. Reads only the files
  // the configuration names (profiles, key files). With errors, what compiled may be appended;
  // the caller decides from `diags`.
  virtual void validate(const config::LoadedConfig& cfg, config::Diagnostics& diags, SpecList& out) const = 0;
  // Whether a running source of `running` can stay as it is when the configuration becomes
  // `next` (same name and kind): same settings, devices, profiles, keys.
  virtual bool unchanged(const SourceSpec& running, const SourceSpec& next) const = 0;
  // The files this kind's part of `cfg` names (serial ports, key files): a configuration sent
  // through the control socket may name them again (app::applyReadPolicy).
  virtual void namedFiles(const config::LoadedConfig& cfg, std::vector<std::string>& out) const = 0;
  // Off the executor, before a change that (re)starts `next`: whether what it opens can be
  // opened (a serial port, a UDP port); `running` is the running source's spec of that name, if
  // any. Empty, or the whole message ("bus 'a': cannot open /dev/ttyS9: ...").
  virtual std::string checkPorts(const SourceSpec& next, const SourceSpec* running,
                                 const config::ReadPolicy& policy) const = 0;
  // A source for `spec` (a spec this kind validated), not started.
  virtual std::shared_ptr<Source> make(std::shared_ptr<const SourceSpec> spec, const SourceContext& context) const = 0;
};

class SourceRegistry {
 public:
  void add(std::unique_ptr<SourceKind> kind);
  const SourceKind* find(std::string_view kind) const;
  const std::vector<std::unique_ptr<SourceKind>>& kinds() const { return kinds_; }

  // Every kind's validate(), in registration order; two sources with one name are an error.
  SpecList validate(const config::LoadedConfig& cfg, config::Diagnostics& diags) const;
  void namedFiles(const config::LoadedConfig& cfg, std::vector<std::string>& out) const;
  // Fills plan.added/removed/changed/unchanged by source name (a name whose kind changed is
  // changed). Pure.
  void plan(const SpecList& running, const SpecList& next, config::ConfigPlan& plan) const;
  // nullptr when no registered kind made `spec`.
  std::shared_ptr<Source> make(std::shared_ptr<const SourceSpec> spec, const SourceContext& context) const;

 private:
  std::vector<std::unique_ptr<SourceKind>> kinds_;
};

// The spec named `name` in `specs`, or nullptr.
const SourceSpec* findSpec(const SpecList& specs, const std::string& name);

}  // namespace citygate::sources
