#include "app/gateway.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <random>

#include "app/health.hpp"
#include "core/clock_sync.hpp"
#include "core/hash.hpp"
#include "core/pipeline.hpp"
#include "core/seq_store.hpp"
#include "outputs/mqtt/readings_sink.hpp"
#include "outputs/mqtt/session.hpp"
#include "outputs/sparkplug/edge_node.hpp"
#include "platform/logging.hpp"
#include "platform/systemd.hpp"
#include "spool/fallback_spool.hpp"
#include "spool/file_spool.hpp"
#include "spool/memory_spool.hpp"
#include "spool/tiered_spool.hpp"

namespace citygate::app {

namespace pb = citygate::v1;

namespace {

Status makeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return Ok{};
  std::string cur;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || (path[i] == '/' && i > 0)) {
      cur = path.substr(0, i);
      if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
        return Error{"cannot create " + cur + ": " + std::strerror(errno)};
      }
    }
  }
  return Ok{};
}

// The first line of a secret's file (validated with the configuration; read again here).
Result<std::string> readSecretLine(const std::string& path) {
  config::SmallFile f = config::readSmallFile(path, config::kMaxSecretBytes);
  if (!f.ok()) return Error{path + ": " + f.error};
  std::string line = f.bytes.substr(0, f.bytes.find('\n'));
  std::fill(f.bytes.begin(), f.bytes.end(), '\0');
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

}  // namespace

std::unique_ptr<core::Spool> Gateway::openTiered(std::unique_ptr<spool::FileSpool> durable,
                                                 const std::shared_ptr<spdlog::logger>& log) {
  const pb::GatewayConfig& c = config_->loaded.config;
  spool::TieredOptions to;
  to.syncAfter = std::chrono::milliseconds(c.spool().sync_after_ms());
  auto unusable = [&](const std::string& why) {
    log->error("runtime_dir unusable ({}): every reading is synced to the storage before it is published (STRICT)",
               why);
    return std::move(durable);
  };
  if (std::string why = config::preparePrivateDir(c.runtime_dir()); !why.empty()) return unusable(why);
  // Named after the storage's spool: a runtime_dir shared by mistake never mixes two spools' readings.
  const std::string youngDir = fmt::format("{}/spool-{:016x}", c.runtime_dir(), core::fnv1a64(c.spool().dir()));
  if (auto st = makeDirs(youngDir, 0750); !st) return unusable(st.error());
  sameBoot_ = spool::TieredSpool::sameBoot(youngDir, config::kernelBootId());
  auto young = spool::FileSpool::open(ioc_.get_executor(), spool::TieredSpool::youngOptions(youngDir, to), log);
  if (!young) return unusable(young.error());
  return std::make_unique<spool::TieredSpool>(ioc_.get_executor(), clock_, to, std::move(durable),
                                              std::move(young).value(), log);
}

Gateway::Gateway(boost::asio::io_context& ioc, platform::Logging& logging, std::unique_ptr<ValidatedConfig> config,
                 std::string version, const sources::SourceRegistry& registry)
    : ioc_(ioc),
      logging_(logging),
      registry_(registry),
      clock_(ioc.get_executor()),
      config_(std::move(config)),
      configFile_(config_->loaded.path),
      version_(std::move(version)),
      bootId_(core::randomHex(16)),
      startedAt_(clock_.wallNow()),
      startedSteady_(clock_.steadyNow()),
      log_(logging.get("main")),
      healthTimer_(clock_.makeTimer()),
      clockSource_(std::make_unique<core::KernelClockSync>()),
      configLoadedAt_(startedAt_) {}

Gateway::~Gateway() {
  if (applyThread_.joinable()) applyThread_.join();
}

void Gateway::setClockSyncSource(std::unique_ptr<core::ClockSyncSource> source) {
  clockSource_ = std::move(source);
}

// The pipeline marks readings from now on; the change is logged (once per change, never per
// reading).
void Gateway::onClockSync(const core::ClockSyncStatus& now, std::optional<core::ClockSyncState> before) {
  if (pipeline_) pipeline_->setClockUnsynchronised(clockSync_->unsynchronised());
  switch (now.state) {
    case core::ClockSyncState::Synchronised:
      if (before) log_->info("the clock is synchronised now: readings are no longer marked clock_unsynchronised");
      return;
    case core::ClockSyncState::Unsynchronised:
      log_->warn(
          "the clock is not synchronised (the kernel says so: no NTP or other time source has set it); readings "
          "are marked clock_unsynchronised until it is");
      return;
    case core::ClockSyncState::Unknown:
      log_->warn("cannot tell whether the clock is synchronised ({}); readings are marked clock_unsynchronised",
                 now.error);
      return;
  }
}

Status Gateway::start() {
  const pb::GatewayConfig& c = config_->loaded.config;
  if (auto st = makeDirs(c.state_dir(), 0750); !st) return st;

  // The file spool, or the memory spool with `spool { memory: true }`.
  const auto& sc = c.spool();
  bool durableSpool = !sc.memory();
  spool::FallbackSpool* fallback = nullptr;
  if (durableSpool) {
    spool::FileSpoolOptions so;
    so.dir = sc.dir();
    so.maxBytes = sc.max_bytes();
    so.whenFull = sc.when_full();
    so.segmentBytes = sc.segment_bytes();
    so.durability = std::chrono::milliseconds(sc.durability_ms());
    auto spoolLog = logging_.get("spool");
    spool::FileSpool::OpenFailure failure = spool::FileSpool::OpenFailure::Unavailable;
    auto opened = spool::FileSpool::open(ioc_.get_executor(), so, spoolLog, &failure);
    if (opened && sc.durability() == pb::SpoolConfig::ACK_DRIVEN) {
      spool_ = openTiered(std::move(opened).value(), spoolLog);
    } else if (opened) {
      spool_ = std::move(opened).value();
    } else if (failure == spool::FileSpool::OpenFailure::Refused) {
      return Error{"spool: " + opened.error()};
    } else {
      // A directory that cannot be used (read-only, no permission) must not
      // crash-loop the daemon: collect into a bounded memory buffer and try the directory again.
      auto floor = spool::FileSpool::probeNextSeq(so.dir);
      spool::FallbackOptions fo;
      fo.file = so;
      auto fb = std::make_unique<spool::FallbackSpool>(
          ioc_.get_executor(), clock_, fo, opened.error(),
          floor ? std::optional<std::uint64_t>(floor.value()) : std::nullopt, spoolLog);
      spoolLog->error(
          "spool {} unavailable: {}; readings are kept in memory (at most {} bytes, {}) until it can be "
          "opened, which is tried again every {}..{} s{}",
          so.dir, opened.error(), std::min(fo.memoryBytes, so.maxBytes),
          so.whenFull == pb::SpoolConfig::BLOCK_SOURCES ? "then sources pause" : "then the oldest go",
          fo.retryMin.count() / 1000, fo.retryMax.count() / 1000,
          floor ? fmt::format("; its readings continue at seq {}", floor.value())
                : fmt::format("; it cannot even be read ({}), so numbering cannot know the seqs it holds",
                              floor.error()));
      fallback = fb.get();
      spool_ = std::move(fb);
      durableSpool = false;  // until it opens: the seq store reserves blocks meanwhile
    }
  } else {
    spool_ = std::make_unique<spool::MemorySpool>(sc.max_bytes(), sc.when_full());
  }
  const std::string seqPath = c.state_dir().empty() ? std::string() : c.state_dir() + "/seq";
  // A tiered spool publishes before it syncs: its seqs are reserved on disk like the fallback's.
  const bool tiered = spool_->stats().ackDriven;
  seq_ = std::make_unique<core::SeqStore>(seqPath, !durableSpool || tiered);
  (void)seq_->open(spool_->recoveredNextSeq(), durableSpool && (!tiered || sameBoot_));
  if (const auto& skip = seq_->skipped()) {
    log_->warn(
        "numbering continues at seq {}, the end of the last reservation: the spool's tail ({}) may have lost "
        "readings published before a power cut, so seqs {}..{} are skipped rather than reused",
        skip->to, skip->from, skip->from, skip->to - 1);
  }
  if (const auto& d = seq_->damage()) {
    // A damaged seq file does not stop the start.
    ++seqRecovered_;
    log_->warn("{} is damaged ({}): numbering continues at seq {}, {}{}; the file was rewritten", seqPath, d->found,
               d->chosen,
               d->floor > 0 ? fmt::format("after the highest seq the spool has seen ({})", d->floor - 1)
                            : std::string("with no durable spool to say where it stood: seqs of earlier runs may "
                                          "repeat (their readings carry another boot_id)"),
               d->tmp > 0 ? fmt::format(" (an interrupted write had left {} in {}.tmp)", d->tmp, seqPath) : "");
  }
  if (!seq_->epochRenewed().empty()) {
    log_->warn("a new seq epoch {}: {}; the platform tells these readings from earlier ones by it", seq_->epoch(),
               seq_->epochRenewed());
  }
  if (!seq_->writeError().empty()) log_->error("cannot save the seq: {}", seq_->numberingError());
  if (auto st = seq_->writeOn(ioc_.get_executor()); !st) return st;
  log_->info("gateway '{}' boot {} starting at seq {}", c.gateway_id(), bootId_, seq_->peek());
  if (fallback) {
    fallback->setOpenedCallback([weakSelf = weak_from_this()](std::uint64_t nextSeq) {
      auto self = weakSelf.lock();
      if (!self || !self->seq_) return;
      // The spool carries the seq from now on; never below what it holds.
      self->seq_->raiseTo(nextSeq);
      self->seq_->setReserveBlocks(false);
      self->notifyState();
    });
    fallback->start();
  }

  const auto& m = c.mqtt();
  mqtt::ClientOptions co;
  co.uris.assign(m.uri().begin(), m.uri().end());
  co.clientId = m.client_id();
  co.keepalive = std::chrono::seconds(m.keepalive_s());
  co.connectTimeout = std::chrono::seconds(m.connect_timeout_s());
  co.username = m.username();
  if (!m.password_file().empty()) {
    auto password = readSecretLine(m.password_file());
    if (!password) return Error{"mqtt.password_file " + password.error()};
    co.password = std::move(password).value();
  }
  co.tls = m.uri(0).rfind("ssl://", 0) == 0 || m.uri(0).rfind("mqtts://", 0) == 0;  // one scheme for all (validated)
  co.mqtt5 = m.protocol_version() == pb::MqttConfig::MQTT_5;
  co.caFile = m.tls().ca_file();
  co.certFile = m.tls().cert_file();
  co.keyFile = m.tls().key_file();
  co.insecureSkipVerify = m.tls().insecure_skip_verify();
  mqtt::SessionOptions oo;
  oo.brokers = co.uris;
  oo.gatewayId = c.gateway_id();
  oo.bootId = bootId_;
  oo.epoch = seq_->epoch();
  oo.version = version_;
  oo.topicPrefix = m.topic_prefix();
  oo.startedAt = startedAt_;
  oo.reconnectMin = std::chrono::milliseconds(m.reconnect_min_ms());
  oo.reconnectMax = std::chrono::milliseconds(m.reconnect_max_ms());
  oo.healthQos = static_cast<int>(m.health_qos());
  // The birth carries the spool's state; the will does not.
  oo.birthSpool = [weakSelf = weak_from_this()](pb::SpoolHealth& sp) {
    if (auto self = weakSelf.lock(); self && self->spool_) {
      fillSpoolHealth(*self->spool_, self->pipeline_.get(), self->seq_.get(), sp);
    }
  };
  oo.birthClockUnsynchronised = [weakSelf = weak_from_this()] {
    auto self = weakSelf.lock();
    return !self || !self->clockSync_ || self->clockSync_->unsynchronised();
  };
  auto mqttLog = logging_.get("mqtt");
  if (co.insecureSkipVerify) mqttLog->warn("tls.insecure_skip_verify is set: the broker's certificate is NOT checked");
  const bool sparkplugMode = m.format() == pb::MqttConfig::SPARKPLUG_B;
  if (sparkplugMode) {
    // Every batch in flight may be a DDATA per reading and its mark, after the births (one per
    // device and the node), with the commands' results and audit records beside them.
    co.maxQueued = static_cast<int>(m.max_inflight_batches() * (m.max_batch_readings() + 1) + 1024);
    // Sparkplug's will is NDEATH with a bdSeq per CONNECT (outputs/sparkplug/edge_node.hpp).
    const sparkplug::Topics topics(m.sparkplug().group_id(), c.gateway_id(), m.sparkplug().host_id());
    bdSeq_ = std::make_shared<sparkplug::BdSeq>(
        ioc_.get_executor(), c.state_dir().empty() ? std::string() : c.state_dir() + "/sparkplug.bdseq", topics.ndeath,
        clock_, logging_.get("sparkplug"));
    oo.will = [bd = bdSeq_] { return bd->nextWill(); };
  }
  mqtt_ = std::make_shared<mqtt::Session>(ioc_.get_executor(), clock_, mqtt::makePahoClient(ioc_.get_executor(), co),
                                          oo, mqttLog);
  if (sparkplugMode) {
    startSparkplug();
  } else {
    readings_ = mqtt::ReadingsSink::create(mqtt_);
    readings_->setRetention(c.spool().retain_bytes(), std::chrono::seconds(c.spool().retain_s()));
  }
  // Writes and platform commands; their audit trail has a spool of its own (state_dir/audit).
  commands::AuditOptions ao;
  ao.dir = c.state_dir().empty() ? std::string() : c.state_dir() + "/audit";
  ao.gatewayId = c.gateway_id();
  ao.bootId = bootId_;
  auto auditLog = logging_.get("audit");
  commands_ = std::make_shared<commands::Service>(
      ioc_.get_executor(), *this, clock_,
      std::make_unique<commands::AuditTrail>(ioc_.get_executor(), clock_, ao, mqtt_, auditLog), mqtt_,
      logging_.get("commands"));

  // One sink: the native readings or the Sparkplug B edge node (mqtt.format).
  core::Sink* sink = sparkplug_ ? static_cast<core::Sink*>(sparkplug_.get()) : readings_.get();
  core::PipelineOptions po;
  po.maxBatchReadings = m.max_batch_readings();
  po.maxBatchDelay = std::chrono::milliseconds(m.max_batch_delay_ms());
  po.maxInflightBatches = m.max_inflight_batches();
  po.dropOldestHeld = sc.when_full() != pb::SpoolConfig::BLOCK_SOURCES;
  pipeline_ = std::make_shared<core::Pipeline>(clock_, po, *spool_, std::vector<core::Sink*>{sink}, *seq_,
                                               logging_.get("spool"));
  pipeline_->setStateCallback([weakSelf = weak_from_this()](core::SpoolState, const std::string&) {
    if (auto self = weakSelf.lock()) self->notifyState();
  });
  // Before the first reading and before the birth: both carry the clock's state.
  clockSync_ = std::make_unique<core::ClockSyncMonitor>(clock_, *clockSource_);
  clockSync_->start(
      [weakSelf = weak_from_this()](const core::ClockSyncStatus& now, std::optional<core::ClockSyncState> before) {
        if (auto self = weakSelf.lock()) self->onClockSync(now, before);
      });
  pipeline_->start();
  commands_->start();  // subscribes before the first connect
  mqtt_->start();

  // Every source's resources that can be refused (bus worker threads) first, then they start: a
  // thread the system refuses (TasksMax, RLIMIT_NPROC) stops the start with a message, never an
  // abort. After a failure, every source made is stopped again.
  auto fail = [this](std::string why) -> Status {
    stopSources(std::move(sources_), [] {});
    sources_.clear();
    return Error{std::move(why)};
  };
  for (const auto& spec : config_->sources) {
    auto source = makeSource(spec);
    if (!source) return fail("source '" + spec->name + "': no kind '" + spec->kind + "' is registered");
    sources_.push_back(source);
    if (auto st = source->prepare(); !st) {
      return fail(st.error());
    }
  }
  for (auto& s : sources_) {
    if (auto st = s->start(); !st) return fail(st.error());
  }
  scheduleHealth();
  return Ok{};
}

// The edge node of mqtt { format: SPARKPLUG_B }: every configured device's sensor for its DBIRTH,
// the devices' states for DDEATH, the node metrics, and DCMD writes through the commands service.
void Gateway::startSparkplug() {
  const auto& c = config_->loaded.config;
  sparkplug::EdgeNodeOptions so;
  so.groupId = c.mqtt().sparkplug().group_id();
  so.edgeNodeId = c.gateway_id();
  so.hostId = c.mqtt().sparkplug().host_id();
  so.markTopic = mqtt::topicFor(c.mqtt().topic_prefix(), c.gateway_id(), "sparkplug/mark");
  so.version = version_;
  so.epoch = seq_->epoch();
  std::vector<std::shared_ptr<const core::SensorSpec>> sensors;
  for (const auto& spec : config_->sources) spec->sensors(sensors);
  std::weak_ptr<Gateway> weak = weak_from_this();
  auto deviceStates = [weak](std::vector<std::pair<std::string, bool>>& out) {
    auto self = weak.lock();
    if (!self) return;
    pb::GatewayHealth h;
    for (const auto& s : self->sources_) s->fillHealth(h);
    for (const auto& d : h.devices()) out.emplace_back(d.sensor_id(), d.state() == pb::DOWN);
  };
  auto nodeMetrics = [weak] {
    sparkplug::NodeMetrics nm;
    auto self = weak.lock();
    if (!self) return nm;
    pb::SpoolHealth sp;
    if (self->spool_) fillSpoolHealth(*self->spool_, self->pipeline_.get(), self->seq_.get(), sp);
    nm.spoolReadings = sp.readings();
    nm.spoolBytes = sp.bytes();
    nm.reconnects = self->mqtt_ ? self->mqtt_->stats().reconnects : 0;
    return nm;
  };
  auto write = [weak](pb::Command command) {
    if (auto self = weak.lock(); self && self->commands_) self->commands_->submit(std::move(command));
  };
  sparkplug_ = sparkplug::EdgeNode::create(mqtt_, bdSeq_, std::move(so), sensors, std::move(deviceStates),
                                           std::move(nodeMetrics), std::move(write));
}

// What every source gets, at start and from applyConfig().
sources::SourceContext Gateway::sourceContext() {
  std::weak_ptr<core::Pipeline> weakPipeline = pipeline_;
  sources::SourceContext ctx;
  ctx.executor = ioc_.get_executor();
  ctx.clock = &clock_;
  ctx.submit = [weakPipeline](const core::SensorSpec& sensor, core::SensorMemory& mem, core::RawSample&& s) {
    if (auto p = weakPipeline.lock()) p->submit(sensor, mem, std::move(s));
  };
  ctx.accepting = [weakPipeline] {
    auto p = weakPipeline.lock();
    return p && p->accepting();
  };
  ctx.logger = [&logging = logging_](const std::string& component) { return logging.get(component); };
  return ctx;
}

std::shared_ptr<sources::Source> Gateway::makeSource(const std::shared_ptr<const sources::SourceSpec>& spec) {
  return registry_.make(spec, sourceContext());
}

// Stops `sources` and calls `done` on the executor once every one of them has called back; they
// are kept alive until then.
void Gateway::stopSources(std::vector<std::shared_ptr<sources::Source>> sources, std::function<void()> done) {
  if (sources.empty()) {
    boost::asio::post(ioc_, std::move(done));
    return;
  }
  auto left = std::make_shared<std::size_t>(sources.size());
  auto stopping = std::make_shared<std::vector<std::shared_ptr<sources::Source>>>(std::move(sources));
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  for (const auto& s : *stopping) {
    s->stop([left, stopping, finish] {
      if (--*left == 0) (*finish)();
    });
  }
}

void Gateway::stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  healthTimer_->cancel();
  if (clockSync_) clockSync_->stop();
  if (applyThread_.joinable()) applyThread_.join();  // a config check in progress (bounded)
  auto self = shared_from_this();
  auto finish = [self, done = std::move(done)]() {
    if (self->seq_) {
      if (auto st = self->seq_->close(); !st) self->log_->error("{}", st.error());
    }
    if (self->spool_) self->spool_->close();
    const auto notStored = self->pipeline_ ? self->pipeline_->stats().notStored + self->spool_->stats().notStored : 0;
    self->log_->info(
        "stopped at seq {}{}", self->seq_ ? self->seq_->peek() : 0,
        notStored > 0 ? fmt::format("; {} reading(s) of this run were not stored (logged with their seqs)", notStored)
                      : std::string());
    done();
  };
  // The sources first (LoRa publishes the frames still in its dedup window), then the pipeline,
  // then the session gets up to 2 s to deliver.
  stopSources(std::move(sources_), [self, finish = std::move(finish)]() mutable {
    if (self->pipeline_) self->pipeline_->stop();
    if (self->commands_) self->commands_->stop();    // audit records not yet delivered stay in its spool
    if (self->sparkplug_) self->sparkplug_->stop();  // the session publishes NDEATH as it stops
    if (self->mqtt_) {
      self->mqtt_->stop(std::chrono::milliseconds(2000), std::move(finish));
    } else {
      finish();
    }
  });
}

void Gateway::release() {
  if (mqtt_) mqtt_->release();
  // What owns timers and descriptors goes now, while the io_context is alive: a completion still
  // queued may hold the last reference to this object, and would otherwise destroy it (and its
  // timers) inside the io_context's own destructor.
  pipeline_.reset();
  commands_.reset();
  readings_.reset();
  sparkplug_.reset();
  if (bdSeq_) bdSeq_->stop();  // its last store is written
  spool_.reset();
  clockSync_.reset();
  saveAnswer_ = nullptr;  // a save's answer never delivered holds a reference to this object
}

void Gateway::scheduleHealth() {
  healthTimer_->start(std::chrono::seconds(config_->loaded.config.health_interval_s()),
                      std::bind_front(&Gateway::onHealthTimer, shared_from_this()));
}

void Gateway::onHealthTimer() {
  if (stopping_) return;
  if (sparkplug_) {
    sparkplug_->publishNodeData();
  } else {
    mqtt_->publishHealth(health());
  }
  scheduleHealth();
}

void Gateway::setReadingTap(ReadingTap tap) {
  if (pipeline_) pipeline_->setTap(std::move(tap));
}

void Gateway::setHealthExtension(std::function<void(pb::GatewayHealth&)> extension) {
  healthExtension_ = std::move(extension);
}

// systemd's STATUS= (systemctl status) follows the spool's state.
void Gateway::notifyState() {
  const std::string text = statusText();
  if (text == lastStatusText_) return;
  lastStatusText_ = text;
  platform::notifyStatus(text);
}

std::uint64_t Gateway::nextSeq() const {
  return seq_ ? seq_->peek() : 0;
}

void Gateway::refill(const pb::Refill& refill, std::function<void(pb::CommandResult)> done) {
  if (!readings_) {
    pb::CommandResult r;
    r.set_status(pb::CommandResult::REFUSED);
    r.set_refusal(pb::REFILL_UNAVAILABLE);
    r.set_detail("the gateway is not publishing readings");
    done(std::move(r));
    return;
  }
  readings_->refill(refill, std::move(done));
}

}  // namespace citygate::app
