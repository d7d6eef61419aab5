#include "app/health.hpp"

#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>

#include "app/gateway.hpp"
#include "core/clock_sync.hpp"
#include "core/pipeline.hpp"
#include "core/seq_store.hpp"
#include "core/spool.hpp"
#include "outputs/mqtt/readings_sink.hpp"
#include "outputs/mqtt/session.hpp"
#include "outputs/sparkplug/edge_node.hpp"

namespace citygate::app {

namespace pb = citygate::v1;

std::uint64_t currentRssBytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

void fillSpoolHealth(const core::Spool& spool, const core::Pipeline* pipeline, const core::SeqStore* seq,
                     pb::SpoolHealth& sp) {
  const auto s = spool.stats();
  // Whether the spool takes readings, and why not.
  const bool failing =
      (pipeline && pipeline->spoolState() == core::SpoolState::Failing) || (seq && !seq->numberingError().empty());
  sp.set_state(s.unavailable ? pb::SPOOL_UNAVAILABLE : failing ? pb::SPOOL_FAILING : pb::SPOOL_OK);
  if (s.unavailable || failing) sp.set_last_error(s.lastError);
  if (pipeline) {
    const auto ps = pipeline->stats();
    sp.set_write_errors(ps.spoolErrors);
    sp.set_held(ps.blockedNow);
    sp.set_not_stored(ps.notStored + s.notStored);
    sp.set_rejected(ps.rejectedReadings);
    sp.set_unnumbered(ps.unnumbered);
    for (const auto& k : ps.sinks) {
      auto& out = *sp.add_sinks();
      out.set_name(k.name);
      out.set_ready(k.ready);
      out.set_delivered_seq(k.deliveredSeq);
      out.set_readings_delivered(k.readingsDelivered);
      out.set_retries(k.retries);
      out.set_rejected_batches(k.rejectedBatches);
      out.set_rejected_readings(k.rejectedReadings);
    }
  }
  sp.set_bytes(s.bytes);
  sp.set_readings(s.readings);
  sp.set_oldest_seq(s.oldestSeq);
  sp.set_dropped(s.dropped);
  sp.set_replayed(s.replayed);
  sp.set_bytes_written(s.bytesWritten);
  sp.set_max_bytes(s.maxBytes);
  sp.set_blocked(s.blocked || (pipeline && !pipeline->accepting()));
  sp.set_corrupt_records(s.corruptRecords);
  sp.set_corrupt_readings(s.corruptReadings);
  sp.set_ack_driven(s.ackDriven);
  sp.set_ram_readings(s.ramReadings);
  sp.set_moved_to_storage(s.movedToStorage);
  sp.set_syncing(s.syncing);
  if (seq) sp.set_next_seq(seq->peek());
  if (seq && !seq->numberingError().empty()) sp.set_last_error(seq->numberingError());
}

namespace {
// When the link went, when it is tried again, when readings last went out and were acknowledged.
void fillMqttTimes(const mqtt::Session& session, const mqtt::ReadingsSink* readings, pb::MqttHealth& mq) {
  const auto& s = session.stats();
  mq.set_link_state(mqtt::connStateName(session.state()));
  if (!session.connected() && s.disconnectedSince) toTimestamp(*s.disconnectedSince, mq.mutable_disconnected_since());
  if (session.state() == mqtt::ConnState::Backoff && s.nextAttemptAt) {
    toTimestamp(*s.nextAttemptAt, mq.mutable_next_attempt_at());
  }
  if (readings == nullptr) return;
  const auto& r = readings->stats();
  if (r.lastPublishAt) toTimestamp(*r.lastPublishAt, mq.mutable_last_publish_at());
  if (r.lastAckAt) toTimestamp(*r.lastAckAt, mq.mutable_last_ack_at());
}

// A steady time as the wall-clock time it was: right even after the wall clock stepped (which it
// does when it is first synchronised).
void toWallTimestamp(const core::Clock& clock, SteadyTime t, google::protobuf::Timestamp* out) {
  toTimestamp(clock.wallNow() - std::chrono::duration_cast<WallClock::duration>(clock.steadyNow() - t), out);
}

}  // namespace

void fillSpoolDisk(const std::string& dir, pb::SpoolHealth& sp) {
  struct statvfs fs {};
  if (dir.empty() || ::statvfs(dir.c_str(), &fs) != 0) return;
  const auto unit = static_cast<std::uint64_t>(fs.f_frsize != 0 ? fs.f_frsize : fs.f_bsize);
  sp.set_disk_free_bytes(static_cast<std::uint64_t>(fs.f_bavail) * unit);
  sp.set_disk_total_bytes(static_cast<std::uint64_t>(fs.f_blocks) * unit);
}

void fillClockHealth(const core::ClockSyncMonitor& monitor, const core::Clock& clock, pb::ClockHealth& c) {
  const auto& s = monitor.status();
  c.set_state(s.state == core::ClockSyncState::Synchronised     ? pb::CLOCK_SYNCHRONISED
              : s.state == core::ClockSyncState::Unsynchronised ? pb::CLOCK_UNSYNCHRONISED
                                                                : pb::CLOCK_SYNC_UNKNOWN);
  if (const auto since = monitor.since()) toWallTimestamp(clock, *since, c.mutable_since());
  c.set_max_error_us(s.maxErrorUs);
  c.set_est_error_us(s.estErrorUs);
  c.set_error(s.error);
}

void fillMqttHealth(const mqtt::Session& session, const mqtt::ReadingsSink* readings, pb::MqttHealth& mq) {
  const auto& s = session.stats();
  mq.set_reconnects(s.reconnects);
  if (readings != nullptr) {
    const auto& r = readings->stats();
    mq.set_published(r.published);
    mq.set_acked(r.acked);
    mq.set_batches_published(r.batchesPublished);
    mq.set_batches_acked(r.batchesAcked);
  }
  mq.set_connected(session.connected());
  mq.set_last_error(s.lastError);
  mq.set_broker(s.serverUri);
  mq.set_connect_failures(s.connectFailures);
  if (session.connected() && s.connectedSince) toTimestamp(*s.connectedSince, mq.mutable_connected_since());
  fillMqttTimes(session, readings, mq);
}

void fillSparkplugHealth(const sparkplug::EdgeNode& node, std::uint64_t bdSeq, const pb::SparkplugConfig& config,
                         pb::SparkplugHealth& out) {
  const auto& s = node.stats();
  out.set_group_id(config.group_id());
  out.set_born(s.born);
  out.set_bd_seq(bdSeq);
  out.set_host_online(s.hostOnline);
  out.set_births(s.births);
  out.set_rebirths(s.rebirths);
  out.set_device_births(s.deviceBirths);
  out.set_device_deaths(s.deviceDeaths);
  out.set_ddata(s.ddata);
  out.set_readings(s.readings);
  out.set_commands_received(s.commandsReceived);
  out.set_commands_refused(s.commandsRefused);
  out.set_writes(s.writes);
}

void fillProcessHealth(SteadyClock::duration uptime, pb::ProcessHealth& p) {
  p.set_rss_bytes(currentRssBytes());
  p.set_uptime_s(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(uptime).count()));
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) {
    p.set_cpu_user_us(static_cast<std::uint64_t>(ru.ru_utime.tv_sec) * 1000000 +
                      static_cast<std::uint64_t>(ru.ru_utime.tv_usec));
    p.set_cpu_system_us(static_cast<std::uint64_t>(ru.ru_stime.tv_sec) * 1000000 +
                        static_cast<std::uint64_t>(ru.ru_stime.tv_usec));
  }
}

void addPipelineCounters(const core::Pipeline& pipeline, pb::GatewayHealth& h) {
  const auto ps = pipeline.stats();
  auto& ctr = *h.mutable_counters();
  ctr["readings"] = ps.readings;
  ctr["batches_sent"] = ps.batchesSent;
  ctr["batches_delivered"] = ps.batchesDelivered;
  ctr["delivery_retries"] = ps.retries;
  ctr["lost_blocked"] = ps.lostBlocked;
  ctr["spool_errors"] = ps.spoolErrors;
  ctr["batches_rejected"] = ps.rejectedBatches;
}

void fillCommandsHealth(const commands::Service& service, const pb::CommandsConfig& config, pb::CommandsHealth& ch) {
  const auto& s = service.stats();
  const auto a = service.auditStats();
  ch.set_enabled(config.enabled());
  ch.set_platform(s.subscribed);
  ch.set_received(s.received);
  ch.set_malformed(s.malformed);
  ch.set_duplicates(s.duplicates);
  ch.set_expired(s.expired);
  ch.set_refused(s.refused);
  ch.set_accepted(s.accepted);
  ch.set_done(s.done);
  ch.set_failed(s.failed);
  ch.set_results_not_published(s.resultsNotPublished);
  ch.set_audit_recorded(a.recorded);
  ch.set_audit_pending(a.pending);
  ch.set_audit_lost(a.lost + a.dropped);
  ch.set_audit_next_seq(a.nextSeq);
  ch.set_audit_durable(a.durable);
}

pb::GatewayHealth Gateway::health() const {
  pb::GatewayHealth h;
  h.set_gateway_id(config_->loaded.config.gateway_id());
  h.set_boot_id(bootId_);
  toTimestamp(clock_.wallNow(), h.mutable_at());
  for (const auto& s : sources_) s->fillHealth(h);  // devices, their kind's section and counters
  if (spool_) {
    fillSpoolHealth(*spool_, pipeline_.get(), seq_.get(), *h.mutable_spool());
    (*h.mutable_counters())["spool_bytes_written_per_day"] = spool_->stats().bytesWrittenPerDay;
    if (!config_->loaded.config.spool().memory())
      fillSpoolDisk(config_->loaded.config.spool().dir(), *h.mutable_spool());
  }
  if (clockSync_) fillClockHealth(*clockSync_, clock_, *h.mutable_clock());
  if (mqtt_) fillMqttHealth(*mqtt_, readings_.get(), *h.mutable_mqtt());
  if (sparkplug_)
    fillSparkplugHealth(*sparkplug_, bdSeq_->current(), config_->loaded.config.mqtt().sparkplug(),
                        *h.mutable_sparkplug());
  if (commands_) fillCommandsHealth(*commands_, config_->loaded.config.commands(), *h.mutable_commands());
  fillProcessHealth(clock_.steadyNow() - startedSteady_, *h.mutable_process());
  if (pipeline_) addPipelineCounters(*pipeline_, h);
  (*h.mutable_counters())["seq_file_recovered"] = seqRecovered_;
  (*h.mutable_counters())["config_generation"] = generation_;
  if (healthExtension_) healthExtension_(h);
  return h;
}

std::optional<pb::MqttReconnectResponse> Gateway::reconnectMqtt() {
  if (!mqtt_) return std::nullopt;
  pb::MqttReconnectResponse r;
  r.set_link_state_before(mqtt::connStateName(mqtt_->state()));
  switch (mqtt_->reconnectNow()) {
    case mqtt::Session::Reconnect::Connecting:
      r.set_outcome(pb::MqttReconnectResponse::CONNECTING);
      break;
    case mqtt::Session::Reconnect::Reconnecting:
      r.set_outcome(pb::MqttReconnectResponse::RECONNECTING);
      break;
    case mqtt::Session::Reconnect::AlreadyConnecting:
      r.set_outcome(pb::MqttReconnectResponse::ALREADY_CONNECTING);
      break;
    case mqtt::Session::Reconnect::NotRunning:
      return std::nullopt;
  }
  return r;
}

std::string Gateway::statusText() const {
  if (!spool_) return "running";
  const auto s = spool_->stats();
  if (s.unavailable) return "running; spool unavailable: " + s.lastError;
  if (pipeline_ && pipeline_->spoolState() == core::SpoolState::Failing) {
    return "running; spool failing: " + s.lastError + " (" + std::to_string(pipeline_->stats().blockedNow) +
           " reading(s) held in memory)";
  }
  return "running";
}

}  // namespace citygate::app
