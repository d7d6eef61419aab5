// Configuration changes at run time (`config apply`, `config diff`, SIGHUP): the check off the
// executor (validation, plan, port checks), then the swap of the sources on it. Gateway's
// contract for these is in gateway.hpp (applyConfig).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <system_error>
#include <utility>

#include "app/gateway.hpp"
#include "commands/service.hpp"
#include "config/config_file.hpp"
#include "platform/logging.hpp"

namespace citygate::app {

namespace {

std::string joined(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

bool listed(const std::vector<std::string>& v, const std::string& name) {
  return std::find(v.begin(), v.end(), name) != v.end();
}

// Off the executor: validation (reads the file, profiles, key files), the plan against the running
// configuration (read-only; no other change can run meanwhile) and the I/O checks.
void checkChange(const sources::SourceRegistry& registry, const ValidatedConfig& running, const std::string& path,
                 const std::optional<std::string>& text, std::unique_ptr<ValidatedConfig>& next,
                 Gateway::ApplyOutcome& out) {
  using Kind = Gateway::ApplyOutcome::Kind;
  config::Diagnostics diags;
  // A text from the control socket may name files only where the running configuration lives;
  // the daemon's own file (SIGHUP) may name any.
  const config::ReadPolicy policy = text ? applyReadPolicy(running, registry) : config::ReadPolicy::any();
  next = text ? validateText(path, *text, diags, policy, registry) : validateFile(path, diags, registry);
  for (const auto& d : diags.items()) out.diagnostics.push_back(d.str());
  if (!next) {
    out.kind = Kind::Invalid;
    out.message = path + ": " + std::to_string(diags.size()) + " error(s); the running configuration is kept";
    return;
  }
  out.text = next->loaded.text;
  out.plan = planChange(running, *next, registry);
  if (!out.plan.refused.empty()) {
    out.kind = Kind::Refused;
    out.message = joined(out.plan.refused, "; ");
    return;
  }
  // The same check (and the same FILE:LINE:COL diagnostic) as offline `config validate`.
  config::Diagnostics portDiags;
  if (!checkPorts(&running, *next, &out.plan, policy, portDiags, registry)) {
    for (const auto& d : portDiags.items()) out.diagnostics.push_back(d.str());
    out.kind = Kind::Failed;
    out.message = portDiags.items().front().message + "; nothing was changed";
    return;
  }
  out.kind = Kind::Planned;
}

}  // namespace

// What the helper thread hands back to the executor.
struct Gateway::ApplyCheck {
  std::unique_ptr<ValidatedConfig> next;
  ApplyOutcome outcome;
  bool passed = false;
  std::optional<config::PreparedSave> save;  // applyAndSave(): written and synced, not yet in place
};

// One swap of sources in progress (on the executor).
struct Gateway::Swap {
  std::unique_ptr<ValidatedConfig> next;
  ApplyOutcome out;
  std::function<void(ApplyOutcome)> done;
  std::vector<std::shared_ptr<sources::Source>> sources;  // aligned with next->sources: kept or fresh
  std::vector<std::shared_ptr<sources::Source>> fresh;    // made for added and changed sources
  std::vector<std::shared_ptr<sources::Source>> old;      // the removed and changed ones, stopped
  std::string failure;
};

void Gateway::applyConfig(std::string path, std::optional<std::string> text, bool dryRun, ApplyDone done) {
  change(std::move(path), std::move(text), dryRun, false, std::move(done));
}

void Gateway::applyAndSave(std::string path, std::string text, ApplyDone done) {
  change(std::move(path), std::move(text), false, true, std::move(done));
}

void Gateway::change(std::string path, std::optional<std::string> text, bool dryRun, bool save, ApplyDone done) {
  using Kind = ApplyOutcome::Kind;
  ApplyOutcome refusal;
  if (stopping_) {
    refusal.kind = Kind::Unavailable;
    refusal.message = "citygated is stopping";
  } else if (applying_) {
    refusal.kind = Kind::Busy;
    refusal.message = "another configuration change is in progress; try again";
  }
  if (stopping_ || applying_) {
    boost::asio::post(ioc_, [done = std::move(done), o = std::move(refusal)]() mutable { done(std::move(o)); });
    return;
  }
  applying_ = true;
  if (applyThread_.joinable()) applyThread_.join();  // the previous check; it has posted its result
  auto check = std::make_shared<ApplyCheck>();
  const ValidatedConfig* running = config_.get();
  const sources::SourceRegistry* registry = &registry_;
  // The check runs on a helper thread; a thread the system refuses fails the change (nothing was
  // touched), never the daemon.
  auto finish = std::make_shared<ApplyDone>(std::move(done));
  try {
    applyThread_ = std::thread([weak = weak_from_this(), &ioc = ioc_, registry, running, path = std::move(path),
                                text = std::move(text), dryRun, finish, check, save,
                                file = save ? configFile_ : std::string()]() mutable {
      checkChange(*registry, *running, path, text, check->next, check->outcome);
      check->passed = check->outcome.kind == ApplyOutcome::Kind::Planned;
      if (check->passed && save) {
        // Written and synced before anything changes: a file that cannot be written (a read-only
        // /etc, permissions, a full disk) fails the apply with the running configuration kept.
        auto prepared = config::prepareSave(file, check->next->loaded.text);
        if (prepared) {
          check->save = std::move(prepared.value());
        } else {
          check->passed = false;
          check->outcome.kind = ApplyOutcome::Kind::Failed;
          check->outcome.message = "cannot save to " + file + ": " + prepared.error() + "; nothing was changed" +
                                   " (--runtime-only applies without saving)";
        }
      }
      boost::asio::post(ioc, [weak, dryRun, finish, check]() {
        if (auto self = weak.lock()) self->onApplyChecked(dryRun, *finish, check);
      });
    });
  } catch (const std::system_error& e) {
    applying_ = false;
    ApplyOutcome failed;
    failed.kind = Kind::Failed;
    failed.message =
        std::string("cannot create a thread to check the configuration: ") + e.what() + "; nothing was changed";
    failed.generation = generation_;
    failed.nextSeq = nextSeq();
    log_->error("config apply failed: {}", failed.message);
    boost::asio::post(ioc_, [finish, o = std::move(failed)]() mutable { (*finish)(std::move(o)); });
  }
}

void Gateway::onApplyChecked(bool dryRun, const ApplyDone& done, const std::shared_ptr<ApplyCheck>& check) {
  ApplyOutcome out = std::move(check->outcome);
  std::function<void(ApplyOutcome)> answer = [self = shared_from_this(), done](ApplyOutcome o) {
    o.generation = self->generation_;
    o.nextSeq = self->nextSeq();
    self->applying_ = false;
    done(std::move(o));
  };
  if (stopping_) {
    out.kind = ApplyOutcome::Kind::Unavailable;
    out.message = "citygated is stopping";
  } else if (check->passed && !dryRun) {
    swapIn(std::move(check->next), std::move(out.plan),
           [self = shared_from_this(), check, answer, diagnostics = std::move(out.diagnostics),
            text = std::move(out.text)](ApplyOutcome o) mutable {
             o.diagnostics = std::move(diagnostics);
             o.text = std::move(text);
             if (!check->save) return answer(std::move(o));
             const bool commit = o.kind == ApplyOutcome::Kind::Applied;
             self->finishSave(check, commit, std::move(o), std::move(answer));
           });
    return;
  }
  if (check->save) return finishSave(check, false, std::move(out), std::move(answer));
  answer(std::move(out));
}

void Gateway::finishSave(const std::shared_ptr<ApplyCheck>& check, bool commit, ApplyOutcome o,
                         std::function<void(ApplyOutcome)> answer) {
  // Two renames and a directory fsync: on the helper thread too, so the executor never waits for
  // the disk. The check's thread has posted its result; joining it waits for its return only.
  // The thread holds no reference to the Gateway (its last one must never go on that thread).
  saveAnswer_ = std::move(answer);
  saveCommitted_ = commit;
  auto work = [check, commit](ApplyOutcome& out) {
    const config::PreparedSave& save = *check->save;
    if (!commit) {
      config::discardSave(save);
      return;
    }
    if (auto st = config::commitSave(save); !st) {
      out.saveError = st.error();
      return;
    }
    out.saved = true;
    if (!save.unchanged() && !save.backupTmp.empty()) out.backup = save.backup;
  };
  if (applyThread_.joinable()) applyThread_.join();
  try {
    applyThread_ = std::thread([weak = weak_from_this(), &ioc = ioc_, work, o = std::move(o)]() mutable {
      work(o);
      boost::asio::post(ioc, [weak, o = std::move(o)]() mutable {
        if (auto self = weak.lock()) self->onSaveFinished(std::move(o));
      });
    });
  } catch (const std::system_error&) {
    work(o);  // no thread to be had: on the executor, rather than not at all
    onSaveFinished(std::move(o));
  }
}

void Gateway::onSaveFinished(ApplyOutcome o) {
  if (saveCommitted_ && o.saved) {
    log_->info("configuration {} saved to {}{}", generation_, configFile_,
               o.backup.empty() ? std::string(" (unchanged)") : "; the previous file is " + o.backup);
  } else if (saveCommitted_) {
    log_->error("configuration {} applied but not saved: {}", generation_, o.saveError);
  }
  auto answer = std::exchange(saveAnswer_, nullptr);
  if (answer) answer(std::move(o));
}

void Gateway::swapIn(std::unique_ptr<ValidatedConfig> next, ConfigPlan plan, std::function<void(ApplyOutcome)> done) {
  auto swap = std::make_shared<Swap>();
  swap->next = std::move(next);
  swap->out.plan = std::move(plan);
  swap->done = std::move(done);
  const ConfigPlan& p = swap->out.plan;

  // The new sources first, prepared before anything is stopped: a thread the system refuses
  // (TasksMax, RLIMIT_NPROC) fails the change with nothing touched.
  auto running = [&](const std::string& name) -> std::shared_ptr<sources::Source> {
    for (const auto& s : sources_) {
      if (s->name() == name) return s;
    }
    return nullptr;
  };
  for (const auto& spec : swap->next->sources) {
    if (listed(p.unchanged, spec->name)) {
      if (auto kept = running(spec->name)) {
        swap->sources.push_back(std::move(kept));
        continue;
      }
    }
    auto source = makeSource(spec);
    Status st = source ? source->prepare() : Status(Error{"no kind '" + spec->kind + "' is registered"});
    if (!st) {
      if (source) swap->fresh.push_back(std::move(source));
      stopSources(std::move(swap->fresh), [] {});
      swap->out.kind = ApplyOutcome::Kind::Failed;
      swap->out.message = st.error() + "; nothing was changed";
      log_->error("config apply failed: {}", swap->out.message);
      swap->done(std::move(swap->out));
      return;
    }
    swap->sources.push_back(source);
    swap->fresh.push_back(std::move(source));
  }
  // Then the removed and changed sources stop (a changed one may keep its serial port or UDP port:
  // the new one opens it once the old one has let it go); unchanged ones are not touched.
  for (const auto& s : sources_) {
    if (std::find(swap->sources.begin(), swap->sources.end(), s) == swap->sources.end()) swap->old.push_back(s);
  }
  stopSources(swap->old, std::bind_front(&Gateway::onOldStopped, shared_from_this(), swap));
}

void Gateway::onOldStopped(const std::shared_ptr<Swap>& swap) {
  if (stopping_) {
    stopSources(std::move(swap->fresh), [] {});
    swap->out.kind = ApplyOutcome::Kind::Unavailable;
    swap->out.message = "citygated is stopping";
    swap->done(std::move(swap->out));
    return;
  }
  for (auto& f : swap->fresh) {
    if (auto st = f->start(); !st) {
      swap->failure = st.error();
      stopSources(swap->fresh, std::bind_front(&Gateway::onSwapFailed, shared_from_this(), swap));
      return;
    }
  }
  finishSwap(swap);
}

// A new source could not start: the new ones are stopped; the old ones are made again from the
// running configuration and started.
void Gateway::onSwapFailed(const std::shared_ptr<Swap>& swap) {
  std::string restored = "rolled back to the running configuration";
  std::vector<std::shared_ptr<sources::Source>> back;
  for (const auto& spec : config_->sources) {
    std::shared_ptr<sources::Source> s;
    for (const auto& r : sources_) {
      const bool stopped = std::find(swap->old.begin(), swap->old.end(), r) != swap->old.end();
      if (r->name() == spec->name && !stopped) s = r;
    }
    if (!s) {
      s = makeSource(spec);
      if (auto again = s ? s->start() : Status(Error{"no kind '" + spec->kind + "'"}); !again) {
        restored = "the previous source '" + spec->name + "' could not be restarted either: " + again.error();
        log_->critical("config apply: {}", restored);
        continue;
      }
    }
    back.push_back(std::move(s));
  }
  sources_ = std::move(back);
  swap->out.kind = ApplyOutcome::Kind::Failed;
  swap->out.message = swap->failure + "; " + restored;
  log_->error("config apply failed: {}", swap->out.message);
  swap->done(std::move(swap->out));
}

void Gateway::finishSwap(const std::shared_ptr<Swap>& swap) {
  const ConfigPlan& p = swap->out.plan;
  sources_ = std::move(swap->sources);
  applyLiveSettings(*swap->next, p);
  config_ = std::move(swap->next);
  if (commands_) commands_->configure();  // platform commands on or off, the request ids remembered
  ++generation_;
  configLoadedAt_ = clock_.wallNow();
  swap->out.kind = ApplyOutcome::Kind::Applied;
  swap->out.message = "configuration " + std::to_string(generation_) + " running";
  log_->info("configuration {} applied from {}: added [{}] removed [{}] changed [{}] unchanged [{}] live [{}]",
             generation_, config_->loaded.path, joined(p.added, ", "), joined(p.removed, ", "), joined(p.changed, ", "),
             joined(p.unchanged, ", "), joined(p.live, ", "));
  swap->done(std::move(swap->out));
}

void Gateway::applyLiveSettings(const ValidatedConfig& next, const ConfigPlan& plan) {
  const auto& c = next.loaded.config;
  for (const auto& what : plan.live) {
    if (what == "log_level") {
      logging_.setLevel(c.log_level().empty() ? "info" : c.log_level());
    } else if (what == "health_interval_s") {
      healthTimer_->start(std::chrono::seconds(c.health_interval_s()),
                          std::bind_front(&Gateway::onHealthTimer, shared_from_this()));
    }
  }
}

}  // namespace citygate::app
