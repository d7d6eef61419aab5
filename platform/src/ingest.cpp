#include "ingest.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <thread>

#include "citygate/v1/commands.pb.h"
#include "citygate/v1/reading.pb.h"
#include "ngsi_ld.hpp"

namespace citygate::ingest {

namespace pb = citygate::v1;

namespace {

GapTracker::Options trackerOptions(const Options& o) {
  GapTracker::Options t;
  t.grace = o.grace;
  t.answerTimeout = o.answerTimeout;
  t.backoffMax = o.backoffMax;
  t.backoffMin = std::min(std::chrono::milliseconds(2000), o.backoffMax);
  t.maxPieces = o.maxGaps;
  return t;
}

// Repeated complaints are counted; the log gets the first ones and then one in a thousand.
bool worthLogging(std::uint64_t count) {
  return count <= 10 || count % 1000 == 0;
}

constexpr std::size_t kMaxPendingEvents = 100000;

}  // namespace

Ingest::Ingest(const Options& opts, std::unique_ptr<Store> store, std::shared_ptr<spdlog::logger> log)
    : opts_(opts),
      store_(std::move(store)),
      log_(std::move(log)),
      tracker_(trackerOptions(opts)),
      rng_(std::random_device{}()) {
  char id[24];
  std::snprintf(id, sizeof id, "ingest-%08x-", static_cast<unsigned>(rng_() & 0xffffffffu));
  idPrefix_ = id;
  if (!opts_.ngsiLdOut.empty()) ngsiOut_.open(opts_.ngsiLdOut, std::ios::app);
}

bool Ingest::restore(SteadyTime now, std::string& error) {
  std::lock_guard lock(mutex_);
  if (!opts_.ngsiLdOut.empty() && !ngsiOut_) {
    error = "cannot open --ngsi-ld-out '" + opts_.ngsiLdOut + "' for appending";
    return false;
  }
  auto streams = store_->load(error);
  if (!streams) return false;
  for (const auto& s : *streams) {
    tracker_.restore(s.key, s.highest, s.holes, s.gaps, now);
    const auto c = tracker_.counts(s.key);
    if (c.missingSeqs != 0) {
      log_->info("resuming gateway {} epoch {}: highest seq {}, {} seqs missing", s.key.gatewayId, s.key.epoch,
                 s.highest, c.missingSeqs);
    }
  }
  pendingEvents_ = tracker_.takeEvents();
  return true;
}

bool Ingest::withStore(std::unique_lock<std::mutex>& lock, const char* what,
                       const std::function<bool(std::string&)>& op) {
  auto wait = std::chrono::milliseconds(100);
  for (std::uint64_t failures = 1;; ++failures) {
    std::string error;
    if (op(error)) {
      if (failures > 1) log_->info("database: {} again after {} failures", what, failures - 1);
      return true;
    }
    if (worthLogging(failures)) log_->warn("database: {} failed ({}): retrying", what, error);
    if (stopping_) return false;
    lock.unlock();  // the main thread notices a signal meanwhile
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(5000));
    lock.lock();
    std::string why;
    if (!store_->reconnect(why) && worthLogging(failures)) log_->warn("database: reconnect failed: {}", why);
  }
}

void Ingest::onMessage(const std::string& topic, const std::string& payload) {
  const std::string head = opts_.prefix + "/";
  if (topic.rfind(head, 0) != 0) return;
  const std::string rest = topic.substr(head.size());
  const auto slash = rest.find('/');
  if (slash == std::string::npos) return;
  const std::string gateway = rest.substr(0, slash);
  const std::string leaf = rest.substr(slash + 1);
  if (leaf == "readings") {
    onReadings(gateway, payload);
  } else if (leaf == "cmd/result") {
    onResult(payload);
  }
}

void Ingest::onReadings(const std::string& topicGateway, const std::string& payload) {
  pb::ReadingBatch batch;
  if (!batch.ParseFromString(payload) || batch.gateway_id() != topicGateway) {
    const auto n = ++bad_;
    if (worthLogging(n)) {
      log_->warn("bad payload on {}/{}/readings ({} bytes): {} ({} bad so far)", opts_.prefix, topicGateway,
                 payload.size(),
                 batch.ParseFromString(payload) ? "gateway_id '" + batch.gateway_id() + "' is not the topic's"
                                                : std::string("not a citygate.v1.ReadingBatch"),
                 n);
    }
    return;
  }
  const StreamKey key{batch.gateway_id(), batch.epoch()};
  std::vector<StoredReading> rows;
  rows.reserve(static_cast<std::size_t>(batch.readings_size()));
  std::vector<std::string> entities;
  for (const auto& r : batch.readings()) {
    if (r.seq() == 0 || r.seq() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      const auto n = ++bad_;
      if (worthLogging(n)) log_->warn("gateway {}: a reading with seq {} is left out", key.gatewayId, r.seq());
      continue;
    }
    StoredReading row;
    row.seq = r.seq();
    row.sensorId = r.sensor_id();
    if (r.has_observed_at()) row.observedAt = isoTime(r.observed_at());
    row.resent = batch.resent();
    if (auto e = toNgsiLd(r)) {
      row.entityType = e->type;
      row.entity = std::move(e->json);
    }
    rows.push_back(std::move(row));
  }
  std::unique_lock lock(mutex_);
  std::vector<bool> fresh;
  const bool stored = withStore(lock, "storing a batch", [&](std::string& error) {
    auto f = store_->insert(key, batch.boot_id(), rows, error);
    if (f) fresh = std::move(*f);
    return f.has_value();
  });
  if (!stored) {
    log_->warn("gateway {}: a batch of {} readings was not stored (stopping); its seqs are refilled later",
               key.gatewayId, rows.size());
    return;
  }
  auto& c = counts_[key.gatewayId];
  ++c.batches;
  const auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    tracker_.observe(key, rows[i].seq, now);
    if (!fresh[i]) {
      ++c.duplicates;
      continue;
    }
    ++c.stored;
    if (batch.resent()) ++c.resent;
    if (ngsiOut_.is_open() && !rows[i].entity.empty()) ngsiOut_ << rows[i].entity << '\n';
  }
  if (ngsiOut_.is_open()) ngsiOut_.flush();
  recordEvents();
}

void Ingest::recordEvents() {
  auto events = tracker_.takeEvents();
  pendingEvents_.insert(pendingEvents_.end(), events.begin(), events.end());
  if (pendingEvents_.size() > kMaxPendingEvents) {
    log_->warn("database: {} gap changes not recorded are dropped", pendingEvents_.size() - kMaxPendingEvents);
    pendingEvents_.erase(
        pendingEvents_.begin(),
        pendingEvents_.begin() + static_cast<std::ptrdiff_t>(pendingEvents_.size() - kMaxPendingEvents));
  }
  std::string error;
  if (store_->record(pendingEvents_, error)) {
    pendingEvents_.clear();
  } else {
    log_->warn("database: recording gaps failed ({}): tried again later", error);
  }
}

void Ingest::onResult(const std::string& payload) {
  pb::CommandResult r;
  if (!r.ParseFromString(payload)) {
    const auto n = ++bad_;
    if (worthLogging(n)) log_->warn("bad payload on .../cmd/result: not a citygate.v1.CommandResult");
    return;
  }
  if (r.request_id().rfind(idPrefix_, 0) != 0) return;  // another platform's, or an earlier run's
  RefillAnswer a = RefillAnswer::Failed;
  switch (r.status()) {
    case pb::CommandResult::ACCEPTED:
      a = RefillAnswer::Accepted;
      break;
    case pb::CommandResult::DONE:
      a = RefillAnswer::Done;
      break;
    case pb::CommandResult::REFUSED:
      a = r.refusal() == pb::REFILL_UNAVAILABLE ? RefillAnswer::Unavailable : RefillAnswer::Failed;
      break;
    default:
      a = RefillAnswer::Failed;
      break;
  }
  std::lock_guard lock(mutex_);
  const bool known = tracker_.answer(r.request_id(), a, r.refill().missing(), std::chrono::steady_clock::now());
  if (!known) return;
  const auto& o = r.refill();
  log_->info("refill {} from {}: {} ({}{}resent {}, missing {}, retained {}..{})", r.request_id(), r.gateway_id(),
             pb::CommandResult::Status_Name(r.status()),
             r.refusal() != pb::WRITE_REFUSAL_UNSPECIFIED ? pb::WriteRefusal_Name(r.refusal()) + ", " : "",
             r.detail().empty() ? "" : r.detail() + "; ", o.resent(), o.missing(), o.retained_from_seq(),
             o.retained_to_seq());
  recordEvents();
}

std::string Ingest::newRequestId() {
  return idPrefix_ + std::to_string(++nextId_);
}

std::vector<Outgoing> Ingest::tick(SteadyTime now) {
  std::lock_guard lock(mutex_);
  const auto due = tracker_.due(now, [this] { return newRequestId(); });
  std::vector<Outgoing> out;
  out.reserve(due.size());
  const auto expires = std::chrono::system_clock::now() + std::chrono::seconds(60);
  const auto expiresNs = std::chrono::duration_cast<std::chrono::nanoseconds>(expires.time_since_epoch()).count();
  for (const auto& r : due) {
    pb::Command c;
    c.set_request_id(r.requestId);
    c.mutable_expires_at()->set_seconds(expiresNs / 1000000000);
    c.mutable_expires_at()->set_nanos(static_cast<std::int32_t>(expiresNs % 1000000000));
    c.set_origin("citygate-ingest");
    c.mutable_refill()->set_epoch(r.key.epoch);
    c.mutable_refill()->set_from_seq(r.fromSeq);
    c.mutable_refill()->set_to_seq(r.toSeq);
    log_->info("gap: asking {} to refill seq {}..{} of epoch {} ({}, attempt {})", r.key.gatewayId, r.fromSeq, r.toSeq,
               r.key.epoch, r.requestId, r.attempt + 1);
    out.push_back({opts_.prefix + "/" + r.key.gatewayId + "/cmd", c.SerializeAsString()});
  }
  recordEvents();
  return out;
}

void Ingest::summary() {
  std::lock_guard lock(mutex_);
  std::map<std::string, StreamCounts> gaps;
  for (const auto& key : tracker_.streams()) {
    const auto s = tracker_.counts(key);
    auto& g = gaps[key.gatewayId];
    g.missingSeqs += s.missingSeqs;
    g.openGaps += s.openGaps;
    g.refilledGaps += s.refilledGaps;
    g.lostGaps += s.lostGaps;
    g.lostSeqs += s.lostSeqs;
    g.filledSeqs += s.filledSeqs;
    counts_.try_emplace(key.gatewayId);
  }
  if (counts_.empty()) log_->info("summary: no gateway seen yet; {} bad payloads", bad_.load());
  for (const auto& [gw, c] : counts_) {
    const auto& g = gaps[gw];
    log_->info(
        "summary: gateway {}: {} readings stored ({} from refills), {} duplicates dropped; gaps {} open "
        "({} seqs missing), {} refilled, {} lost ({} seqs); {} bad payloads in all",
        gw, c.stored, c.resent, c.duplicates, g.openGaps, g.missingSeqs, g.refilledGaps, g.lostGaps, g.lostSeqs,
        bad_.load());
  }
}

}  // namespace citygate::ingest
