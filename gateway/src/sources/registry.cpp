#include <algorithm>
#include <map>

#include "sources/kind.hpp"

namespace citygate::sources {

void SourceRegistry::add(std::unique_ptr<SourceKind> kind) {
  kinds_.push_back(std::move(kind));
}

const SourceKind* SourceRegistry::find(std::string_view kind) const {
  for (const auto& k : kinds_) {
    if (k->name() == kind) return k.get();
  }
  return nullptr;
}

const SourceSpec* findSpec(const SpecList& specs, const std::string& name) {
  for (const auto& s : specs) {
    if (s->name == name) return s.get();
  }
  return nullptr;
}

SpecList SourceRegistry::validate(const config::LoadedConfig& cfg, config::Diagnostics& diags) const {
  SpecList out;
  for (const auto& k : kinds_) k->validate(cfg, diags, out);
  // The plan of a configuration change names sources by name alone: two kinds must not share
  // one (a kind reports its own duplicates, with their place in the file).
  std::map<std::string, std::string> kindOf;
  for (const auto& s : out) {
    auto [it, added] = kindOf.emplace(s->name, s->kind);
    if (!added && it->second != s->kind) {
      diags.add(cfg.path, 0, 0,
                "a " + it->second + " source and a " + s->kind + " source are both named '" + s->name + "'");
    }
  }
  return out;
}

void SourceRegistry::namedFiles(const config::LoadedConfig& cfg, std::vector<std::string>& out) const {
  for (const auto& k : kinds_) k->namedFiles(cfg, out);
}

void SourceRegistry::plan(const SpecList& running, const SpecList& next, config::ConfigPlan& plan) const {
  for (const auto& s : next) {
    const SourceSpec* before = findSpec(running, s->name);
    const SourceKind* kind = find(s->kind);
    if (!before) {
      plan.added.push_back(s->name);
    } else if (before->kind != s->kind || !kind || !kind->unchanged(*before, *s)) {
      plan.changed.push_back(s->name);
    } else {
      plan.unchanged.push_back(s->name);
    }
  }
  for (const auto& s : running) {
    if (!findSpec(next, s->name)) plan.removed.push_back(s->name);
  }
}

std::shared_ptr<Source> SourceRegistry::make(std::shared_ptr<const SourceSpec> spec,
                                             const SourceContext& context) const {
  const SourceKind* kind = find(spec->kind);
  return kind ? kind->make(std::move(spec), context) : nullptr;
}

}  // namespace citygate::sources
