#include "app/gateway.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <system_error>

#include "core/pipeline.hpp"
#include "core/seq_store.hpp"
#include "inputs/lora/source.hpp"
#include "inputs/modbus/bus_source.hpp"
#include "outputs/mqtt/readings_sink.hpp"
#include "outputs/mqtt/session.hpp"
#include "platform/logging.hpp"
#include "platform/systemd.hpp"
#include "spool/fallback_spool.hpp"
#include "spool/file_spool.hpp"
#include "spool/memory_spool.hpp"

namespace citygate::app {

namespace pb = citygate::v1;

std::string randomHex(std::size_t bytes) {
  std::random_device rd;
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rd() & 0xFF);
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 0xF]);
  }
  return s;
}

std::uint64_t currentRssBytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

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

// ---- spool health (issue 5): the health report and the birth message ----
void fillSpoolHealth(const core::Spool& spool, const core::Pipeline* pipeline, const core::SeqStore* seq,
                     pb::SpoolHealth& sp) {
  const auto s = spool.stats();
  // issue 12: whether the spool takes readings, and why not.
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
  if (seq) sp.set_next_seq(seq->peek());
  if (seq && !seq->numberingError().empty()) sp.set_last_error(seq->numberingError());
}

}  // namespace

Gateway::Gateway(boost::asio::io_context& ioc, platform::Logging& logging, std::unique_ptr<ValidatedConfig> config,
                 std::string version)
    : ioc_(ioc),
      logging_(logging),
      config_(std::move(config)),
      version_(std::move(version)),
      bootId_(randomHex(16)),
      startedAt_(WallClock::now()),
      startedSteady_(SteadyClock::now()),
      log_(logging.get("main")),
      healthTimer_(ioc),
      configLoadedAt_(startedAt_) {}

Gateway::~Gateway() {
  if (applyThread_.joinable()) applyThread_.join();
}

Status Gateway::start() {
  const pb::GatewayConfig& c = config_->loaded.config;
  if (auto st = makeDirs(c.state_dir(), 0750); !st) return st;

  // ---- spool (issue 5): the file spool, or the memory spool with `spool { memory: true }` ----
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
    if (opened) {
      spool_ = std::move(opened).value();
    } else if (failure == spool::FileSpool::OpenFailure::Refused) {
      return Error{"spool: " + opened.error()};
    } else {
      // issue 12, item 5: a directory that cannot be used (read-only, no permission) must not
      // crash-loop the daemon: collect into a bounded memory buffer and try the directory again.
      auto floor = spool::FileSpool::probeNextSeq(so.dir);
      spool::FallbackOptions fo;
      fo.file = so;
      auto fb = std::make_unique<spool::FallbackSpool>(
          ioc_.get_executor(), fo, opened.error(), floor ? std::optional<std::uint64_t>(floor.value()) : std::nullopt,
          spoolLog);
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
  // ---- end spool ----
  const std::string seqPath = c.state_dir().empty() ? std::string() : c.state_dir() + "/seq";
  seq_ = std::make_unique<core::SeqStore>(seqPath, !durableSpool);
  (void)seq_->open(spool_->recoveredNextSeq());
  if (const auto& d = seq_->damage()) {
    // issue 12, item 4: a damaged seq file no longer stops every start.
    ++seqRecovered_;
    log_->warn("{} is damaged ({}): numbering continues at seq {}, {}{}; the file was rewritten", seqPath, d->found,
               d->chosen,
               d->floor > 0 ? fmt::format("after the highest seq the spool has seen ({})", d->floor - 1)
                            : std::string("with no durable spool to say where it stood: seqs of earlier runs may "
                                          "repeat (their readings carry another boot_id)"),
               d->tmp > 0 ? fmt::format(" (an interrupted write had left {} in {}.tmp)", d->tmp, seqPath) : "");
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
  co.uri = m.uri();
  co.clientId = m.client_id();
  co.keepalive = std::chrono::seconds(m.keepalive_s());
  co.connectTimeout = std::chrono::seconds(m.connect_timeout_s());
  co.username = m.username();
  if (!m.password_file().empty()) {
    auto password = readSecretLine(m.password_file());
    if (!password) return Error{"mqtt.password_file " + password.error()};
    co.password = std::move(password).value();
  }
  co.tls = m.uri().rfind("ssl://", 0) == 0 || m.uri().rfind("mqtts://", 0) == 0;
  co.caFile = m.tls().ca_file();
  co.certFile = m.tls().cert_file();
  co.keyFile = m.tls().key_file();
  co.insecureSkipVerify = m.tls().insecure_skip_verify();
  mqtt::SessionOptions oo;
  oo.gatewayId = c.gateway_id();
  oo.bootId = bootId_;
  oo.version = version_;
  oo.topicPrefix = m.topic_prefix();
  oo.startedAt = startedAt_;
  oo.reconnectMin = std::chrono::milliseconds(m.reconnect_min_ms());
  oo.reconnectMax = std::chrono::milliseconds(m.reconnect_max_ms());
  oo.healthQos = static_cast<int>(m.health_qos());
  // The birth carries the spool's state (issue 5); the will does not.
  oo.birthSpool = [weakSelf = weak_from_this()](pb::SpoolHealth& sp) {
    if (auto self = weakSelf.lock(); self && self->spool_) {
      fillSpoolHealth(*self->spool_, self->pipeline_.get(), self->seq_.get(), sp);
    }
  };
  co.willTopic = mqtt::topicFor(oo.topicPrefix, oo.gatewayId, "status");
  co.willPayload = mqtt::statusPayload(oo, pb::OFFLINE);
  auto mqttLog = logging_.get("mqtt");
  if (co.insecureSkipVerify) mqttLog->warn("tls.insecure_skip_verify is set: the broker's certificate is NOT checked");
  mqtt_ =
      std::make_shared<mqtt::Session>(ioc_.get_executor(), mqtt::makePahoClient(ioc_.get_executor(), co), oo, mqttLog);
  readings_ = mqtt::ReadingsSink::create(mqtt_);

  core::PipelineOptions po;
  po.gatewayId = c.gateway_id();
  po.bootId = bootId_;
  po.maxBatchReadings = m.max_batch_readings();
  po.maxBatchDelay = std::chrono::milliseconds(m.max_batch_delay_ms());
  po.maxInflightBatches = m.max_inflight_batches();
  po.dropOldestHeld = sc.when_full() != pb::SpoolConfig::BLOCK_SOURCES;
  pipeline_ =
      std::make_shared<core::Pipeline>(ioc_.get_executor(), po, *spool_, *readings_, *seq_, logging_.get("spool"));
  pipeline_->setStateCallback([weakSelf = weak_from_this()](core::SpoolState, const std::string&) {
    if (auto self = weakSelf.lock()) self->notifyState();
  });
  pipeline_->start();
  mqtt_->start();

  // Every bus's worker thread first, then the polls: a thread the system refuses (TasksMax,
  // RLIMIT_NPROC) stops the start with a message, never an abort.
  for (const auto& bus : config_->buses) {
    auto source = makeBus(bus);
    if (auto st = source->prepare(); !st) {
      source->stop();
      for (auto& b : buses_) {
        b->stop();
        b->join();  // the executor does not serve yet
      }
      buses_.clear();
      return Error{"bus '" + bus.name + "': " + st.error() + " (" + std::to_string(config_->buses.size()) +
                   " bus(es) configured, one thread each)"};
    }
    buses_.push_back(std::move(source));
  }
  for (auto& b : buses_) (void)b->start();  // prepared: cannot fail
  // ---- LoRa: the packet forwarder's UDP server (inputs/lora) ----
  if (config_->lora) {
    lora_ = makeLora(*config_->lora);
    if (auto st = lora_->start(); !st) return st;
  }
  // ---- end LoRa ----
  scheduleHealth();
  return Ok{};
}

// The sources, built the same way at start and by applyConfig().
std::shared_ptr<modbus::BusSource> Gateway::makeBus(const modbus::BusSpec& spec) {
  std::weak_ptr<core::Pipeline> weakPipeline = pipeline_;
  return std::make_shared<modbus::BusSource>(
      ioc_.get_executor(), spec, modbus::makeTransport(spec.config),
      [weakPipeline](const core::SensorSpec& sensor, core::SensorMemory& mem, core::RawSample&& s) {
        if (auto p = weakPipeline.lock()) p->submit(sensor, mem, std::move(s));
      },
      [weakPipeline] {
        auto p = weakPipeline.lock();
        return p && p->accepting();
      },
      logging_.get("modbus"));
}

std::shared_ptr<lora::LoraSource> Gateway::makeLora(const lora::LoraSpec& spec) {
  std::weak_ptr<core::Pipeline> weakPipeline = pipeline_;
  return std::make_shared<lora::LoraSource>(
      ioc_.get_executor(), spec,
      [weakPipeline](const core::SensorSpec& sensor, core::SensorMemory& mem, core::RawSample&& s) {
        if (auto p = weakPipeline.lock()) p->submit(sensor, mem, std::move(s));
      },
      logging_.get("lora"));
}

void Gateway::stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  healthTimer_.cancel();
  if (applyThread_.joinable()) applyThread_.join();  // a config check in progress (bounded)
  for (auto& b : buses_) b->stop(busThreads_.add());
  if (lora_) lora_->stop();  // publishes frames still in their dedup window, saves the counters
  if (pipeline_) pipeline_->stop();
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
  // Every bus worker ends (each after its transaction in progress) before the gateway is done.
  auto stopOutput = [self, finish = std::move(finish)]() mutable {
    if (self->mqtt_) {
      self->mqtt_->stop(std::chrono::milliseconds(2000), std::move(finish));
    } else {
      finish();
    }
  };
  busThreads_.whenIdle(std::move(stopOutput));
}

void Gateway::release() {
  if (mqtt_) mqtt_->release();
}

void Gateway::scheduleHealth() {
  healthTimer_.expires_after(std::chrono::seconds(config_->loaded.config.health_interval_s()));
  healthTimer_.async_wait(std::bind_front(&Gateway::onHealthTimer, shared_from_this()));
}

void Gateway::onHealthTimer(const boost::system::error_code& ec) {
  if (ec || stopping_) return;
  mqtt_->publishHealth(health());
  scheduleHealth();
}

pb::GatewayHealth Gateway::health() const {
  pb::GatewayHealth h;
  h.set_gateway_id(config_->loaded.config.gateway_id());
  h.set_boot_id(bootId_);
  toTimestamp(WallClock::now(), h.mutable_at());
  for (const auto& b : buses_) b->fillHealth(*h.mutable_devices());
  if (lora_) lora_->fillHealth(h);  // GatewayHealth.lora and the LoRa devices
  if (spool_) {
    fillSpoolHealth(*spool_, pipeline_.get(), seq_.get(), *h.mutable_spool());
    (*h.mutable_counters())["spool_bytes_written_per_day"] = spool_->stats().bytesWrittenPerDay;
  }
  if (mqtt_) {
    const auto& s = mqtt_->stats();
    const auto& r = readings_->stats();
    auto* mq = h.mutable_mqtt();
    mq->set_reconnects(s.reconnects);
    mq->set_published(r.published);
    mq->set_acked(r.acked);
    mq->set_connected(mqtt_->connected());
    mq->set_last_error(s.lastError);
    mq->set_batches_published(r.batchesPublished);
    mq->set_batches_acked(r.batchesAcked);
    if (mqtt_->connected() && s.connectedSince) toTimestamp(*s.connectedSince, mq->mutable_connected_since());
  }
  auto* p = h.mutable_process();
  p->set_rss_bytes(currentRssBytes());
  p->set_uptime_s(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - startedSteady_).count()));
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) {
    p->set_cpu_user_us(static_cast<std::uint64_t>(ru.ru_utime.tv_sec) * 1000000 +
                       static_cast<std::uint64_t>(ru.ru_utime.tv_usec));
    p->set_cpu_system_us(static_cast<std::uint64_t>(ru.ru_stime.tv_sec) * 1000000 +
                         static_cast<std::uint64_t>(ru.ru_stime.tv_usec));
  }
  if (pipeline_) {
    const auto ps = pipeline_->stats();
    auto& ctr = *h.mutable_counters();
    ctr["readings"] = ps.readings;
    ctr["batches_sent"] = ps.batchesSent;
    ctr["batches_delivered"] = ps.batchesDelivered;
    ctr["delivery_retries"] = ps.retries;
    ctr["lost_blocked"] = ps.lostBlocked;
    ctr["spool_errors"] = ps.spoolErrors;
    ctr["batches_rejected"] = ps.rejectedBatches;
  }
  (*h.mutable_counters())["seq_file_recovered"] = seqRecovered_;
  for (const auto& b : buses_) {
    auto& ctr = *h.mutable_counters();
    const auto& bc = b->counters();
    ctr["modbus_polls_skipped"] += bc.skipped;
    ctr["modbus_polls_blocked"] += bc.blocked;
    ctr["modbus_read_splits"] += bc.splits;
    ctr["modbus_answers_discarded"] += bc.discarded;
  }
  (*h.mutable_counters())["config_generation"] = generation_;
  if (healthExtension_) healthExtension_(h);
  return h;
}

// ---- run-time configuration changes and the control socket (issue 6) ----

void Gateway::setReadingTap(ReadingTap tap) {
  if (pipeline_) pipeline_->setTap(std::move(tap));
}

void Gateway::setHealthExtension(std::function<void(pb::GatewayHealth&)> extension) {
  healthExtension_ = std::move(extension);
}

std::shared_ptr<modbus::BusSource> Gateway::bus(const std::string& name) const {
  for (const auto& b : buses_) {
    if (b->spec().name == name) return b;
  }
  return nullptr;
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

// What the helper thread hands back to the executor.
struct Gateway::ApplyCheck {
  std::unique_ptr<ValidatedConfig> next;
  ApplyOutcome outcome;
  bool passed = false;
};

namespace {

std::string joined(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

// A serial port the new configuration needs: opened without touching its settings (the running
// bus may share it) and without waiting for a carrier.
std::string checkSerialPort(const std::string& device) {
  const int fd = ::open(device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "cannot open " + device + ": " + std::strerror(errno);
  const bool tty = ::isatty(fd) == 1;
  ::close(fd);
  if (!tty) return device + " is not a serial port";
  return {};
}

// A UDP port the new LoRa source will bind: bound and released at once.
std::string checkUdpPort(const std::string& host, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) return {};  // IPv6 and names: the bind itself decides
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  std::string why;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
    why = host + ":" + std::to_string(port) + " (udp) is not available: " + std::strerror(errno);
  }
  ::close(fd);
  return why;
}

// Off the executor: validation (reads the file, profiles, key files), the plan against the running
// configuration (read-only; no other change can run meanwhile) and the I/O checks.
void checkChange(const ValidatedConfig& running, const std::string& path, const std::optional<std::string>& text,
                 std::unique_ptr<ValidatedConfig>& next, Gateway::ApplyOutcome& out) {
  using Kind = Gateway::ApplyOutcome::Kind;
  config::Diagnostics diags;
  // A text from the control socket may name files only where the running configuration lives;
  // the daemon's own file (SIGHUP) may name any.
  const config::ReadPolicy policy = text ? applyReadPolicy(running) : config::ReadPolicy::any();
  next = text ? validateText(path, *text, diags, policy) : validateFile(path, diags);
  for (const auto& d : diags.items()) out.diagnostics.push_back(d.str());
  if (!next) {
    out.kind = Kind::Invalid;
    out.message = path + ": " + std::to_string(diags.size()) + " error(s); the running configuration is kept";
    return;
  }
  out.text = next->loaded.text;
  out.plan = planChange(running, *next);
  if (!out.plan.refused.empty()) {
    out.kind = Kind::Refused;
    out.message = joined(out.plan.refused, "; ");
    return;
  }
  for (const auto& bus : next->buses) {
    if (bus.kind != modbus::BusSpec::Kind::Rtu || !out.plan.touches(bus.name)) continue;
    const std::string& device = bus.config.rtu().device();
    // Serial ports live in /dev; anywhere else, only where the policy allows (no probing).
    std::string why = config::absolutePath(device).starts_with("/dev/") ? std::string() : policy.check(device);
    if (why.empty()) why = checkSerialPort(device);
    if (!why.empty()) {
      out.kind = Kind::Failed;
      out.message = "bus '" + bus.name + "': " + why + "; nothing was changed";
      return;
    }
  }
  if (next->lora && out.plan.touches(kLoraSourceName)) {
    const bool samePort =
        running.lora && running.lora->bind == next->lora->bind && running.lora->port == next->lora->port;
    if (!samePort) {
      if (auto why = checkUdpPort(next->lora->bind, next->lora->port); !why.empty()) {
        out.kind = Kind::Failed;
        out.message = "lora: " + why + "; nothing was changed";
        return;
      }
    }
  }
  out.kind = Kind::Planned;
}

}  // namespace

void Gateway::applyConfig(std::string path, std::optional<std::string> text, bool dryRun, ApplyDone done) {
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
  // The check runs on a helper thread; a thread the system refuses fails the change (nothing was
  // touched), never the daemon.
  auto finish = std::make_shared<ApplyDone>(std::move(done));
  try {
    applyThread_ = std::thread([weak = weak_from_this(), &ioc = ioc_, running, path = std::move(path),
                                text = std::move(text), dryRun, finish, check]() mutable {
      checkChange(*running, path, text, check->next, check->outcome);
      check->passed = check->outcome.kind == ApplyOutcome::Kind::Planned;
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
  if (stopping_) {
    out.kind = ApplyOutcome::Kind::Unavailable;
    out.message = "citygated is stopping";
  } else if (check->passed && !dryRun) {
    auto diagnostics = std::move(out.diagnostics);
    auto text = std::move(out.text);
    out = swapIn(std::move(check->next), std::move(out.plan));
    out.diagnostics = std::move(diagnostics);
    out.text = std::move(text);
  }
  out.generation = generation_;
  out.nextSeq = nextSeq();
  applying_ = false;
  done(std::move(out));
}

Gateway::ApplyOutcome Gateway::swapIn(std::unique_ptr<ValidatedConfig> next, ConfigPlan plan) {
  ApplyOutcome out;
  out.plan = std::move(plan);
  const ConfigPlan& p = out.plan;
  auto listed = [](const std::vector<std::string>& v, const std::string& name) {
    return std::find(v.begin(), v.end(), name) != v.end();
  };

  // The worker threads of new and changed buses first, before anything is stopped: a thread the
  // system refuses (TasksMax, RLIMIT_NPROC) fails the change with nothing touched.
  auto runningBus = [&](const std::string& name) -> std::shared_ptr<modbus::BusSource> {
    if (listed(p.removed, name) || listed(p.changed, name)) return nullptr;
    for (const auto& b : buses_) {
      if (b->spec().name == name) return b;
    }
    return nullptr;
  };
  std::vector<std::shared_ptr<modbus::BusSource>> freshBuses;  // aligned with next->buses; null = kept
  auto dropFresh = [this, &freshBuses] {
    for (auto& f : freshBuses) {
      if (f) f->stop(busThreads_.add());
    }
  };
  for (const auto& spec : next->buses) {
    if (runningBus(spec.name)) {
      freshBuses.emplace_back();
      continue;
    }
    auto source = makeBus(spec);
    if (auto st = source->prepare(); !st) {
      source->stop(busThreads_.add());
      dropFresh();
      out.kind = ApplyOutcome::Kind::Failed;
      out.message = "bus '" + spec.name + "': " + st.error() + "; nothing was changed";
      log_->error("config apply failed: {}", out.message);
      return out;
    }
    freshBuses.push_back(std::move(source));
  }

  // LoRa next: binding its port is the one step that can still fail, and nothing else has
  // changed yet when it does.
  const bool loraTouched = p.touches(kLoraSourceName) || listed(p.removed, kLoraSourceName);
  if (loraTouched) {
    if (lora_) lora_->stop();  // publishes frames in their dedup window, writes the frame counters
    lora_.reset();
    if (next->lora) {
      auto fresh = makeLora(*next->lora);
      if (auto st = fresh->start(); !st) {
        std::string restored = "rolled back to the running configuration";
        if (config_->lora) {
          auto back = makeLora(*config_->lora);
          if (auto again = back->start(); again) {
            lora_ = std::move(back);
          } else {
            restored = "the previous LoRa source could not be restarted either: " + again.error();
            log_->critical("config apply: {}", restored);
          }
        }
        dropFresh();
        out.kind = ApplyOutcome::Kind::Failed;
        out.message = st.error() + "; " + restored;
        log_->error("config apply failed: {}", out.message);
        return out;
      }
      lora_ = std::move(fresh);
    }
  }

  // Buses: stop the removed and changed ones first (a changed bus may keep its serial port; the
  // new workers have not opened anything yet), then start polling on the new ones; unchanged
  // buses are not touched.
  std::vector<std::shared_ptr<modbus::BusSource>> buses;
  for (std::size_t i = 0; i < next->buses.size(); ++i) {
    buses.push_back(freshBuses[i] ? freshBuses[i] : runningBus(next->buses[i].name));
  }
  for (auto& b : buses_) {
    const std::string& name = b->spec().name;
    if (listed(p.removed, name) || listed(p.changed, name)) b->stop(busThreads_.add());
  }
  for (auto& f : freshBuses) {
    if (f) (void)f->start();  // prepared: cannot fail
  }
  buses_ = std::move(buses);

  applyLiveSettings(*next, p);
  config_ = std::move(next);
  ++generation_;
  configLoadedAt_ = WallClock::now();
  out.kind = ApplyOutcome::Kind::Applied;
  out.message = "configuration " + std::to_string(generation_) + " running";
  log_->info("configuration {} applied from {}: added [{}] removed [{}] changed [{}] unchanged [{}] live [{}]",
             generation_, config_->loaded.path, joined(p.added, ", "), joined(p.removed, ", "), joined(p.changed, ", "),
             joined(p.unchanged, ", "), joined(p.live, ", "));
  return out;
}

void Gateway::applyLiveSettings(const ValidatedConfig& next, const ConfigPlan& plan) {
  const auto& c = next.loaded.config;
  for (const auto& what : plan.live) {
    if (what == "log_level") {
      logging_.setLevel(c.log_level().empty() ? "info" : c.log_level());
    } else if (what == "health_interval_s") {
      healthTimer_.expires_after(std::chrono::seconds(c.health_interval_s()));
      healthTimer_.async_wait(std::bind_front(&Gateway::onHealthTimer, shared_from_this()));
    }
  }
}

}  // namespace citygate::app
