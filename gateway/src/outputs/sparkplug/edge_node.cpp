#include "outputs/sparkplug/edge_node.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <cmath>
#include <fstream>

#include "core/time.hpp"

namespace citygate::sparkplug {

namespace pb = citygate::v1;

namespace {

// The node's metrics after bdSeq and Node Control/Rebirth (which carry no alias: any host may ask
// for a rebirth without knowing the aliases); device metrics take the aliases after these.
enum NodeAlias : std::uint64_t {
  kVersion = 1,
  kEpoch,
  kSpoolReadings,
  kSpoolBytes,
  kReconnects,
  kCommandsRefused,
  kFirstDeviceAlias,
};

constexpr std::uint64_t kSeqModulus = 256;
// How long a DCMD write may wait for its bus before it is refused as expired.
constexpr std::chrono::seconds kWriteExpiry{60};

spb::Payload::Metric& nodeMetric(spb::Payload& p, std::string_view name, std::uint64_t alias, spb::DataType type,
                                 std::uint64_t atMs) {
  auto* m = p.add_metrics();
  if (!name.empty()) m->set_name(std::string(name));
  if (alias != 0) m->set_alias(alias);
  m->set_timestamp(atMs);
  if (!name.empty()) m->set_datatype(static_cast<std::uint32_t>(type));
  return *m;
}

}  // namespace

// ---- BdSeq ----------------------------------------------------------------------------------

BdSeq::BdSeq(boost::asio::any_io_executor executor, std::string path, std::string ndeathTopic, core::Clock& clock,
             std::shared_ptr<spdlog::logger> log)
    : path_(std::move(path)), topic_(std::move(ndeathTopic)), clock_(clock), log_(std::move(log)) {
  if (path_.empty()) {
    stored_ = true;
    return;
  }
  std::ifstream in(path_);
  unsigned long long stored = 0;
  if (in >> stored && stored < kSeqModulus) {
    current_ = (stored + 1) % kSeqModulus;
  } else if (in.is_open()) {
    log_->warn("{} does not hold a bdSeq (0..255): starting again at 0", path_);
  }
  writer_ = std::make_unique<core::FileWriter>(std::move(executor), path_, 0644);
}

BdSeq::~BdSeq() {
  stop();
}

void BdSeq::stop() {
  if (!writer_) return;
  writer_->stop();
  writer_->join();
  writer_.reset();
}

mqtt::Will BdSeq::nextWill() {
  if (used_) {  // the previous CONNECT was accepted: this one is a new session
    current_ = (current_ + 1) % kSeqModulus;
    used_ = false;
    stored_ = writer_ == nullptr;
  }
  if (!stored_ && writer_) {
    if (auto st = writer_->writeNow(std::to_string(current_) + "\n"); !st) {
      log_->warn("bdSeq {} not stored: {} (a restart may repeat it)", current_, st.error());
    }
  }
  stored_ = true;
  // QoS 1, not retained ([tck-id-topics-ndeath-...]): the broker publishes it when the link dies.
  return mqtt::Will{topic_, ndeath(), 1, false};
}

std::string BdSeq::ndeath() const {
  return ndeathPayload(current_, static_cast<std::uint64_t>(toMillis(clock_.wallNow())));
}

void BdSeq::connected() {
  used_ = true;
}

// ---- EdgeNode -------------------------------------------------------------------------------

std::shared_ptr<EdgeNode> EdgeNode::create(std::shared_ptr<mqtt::Session> session, std::shared_ptr<BdSeq> bdSeq,
                                           EdgeNodeOptions options,
                                           const std::vector<std::shared_ptr<const core::SensorSpec>>& sensors,
                                           DeviceStates deviceStates, NodeMetricsFn nodeMetrics, WriteFn write) {
  auto node = std::make_shared<EdgeNode>(std::move(session), std::move(bdSeq), std::move(options),
                                         std::move(deviceStates), std::move(nodeMetrics), std::move(write));
  for (const auto& s : sensors) {
    if (s) node->table_.addSensor(*s);
  }
  for (const auto& d : node->table_.devices()) d->changed = false;
  std::weak_ptr<EdgeNode> weak = node;
  auto& sess = *node->session_;
  sess.addStateListener([weak](bool up) {
    if (auto self = weak.lock()) self->onSession(up);
  });
  // QoS 1 subscriptions, made before the NBIRTH on every connect (the session subscribes first).
  sess.subscribe(node->topics_.ncmd, 1, [weak](const mqtt::InboundMessage& m) {
    if (auto self = weak.lock()) self->onNcmd(m.payload);
  });
  sess.subscribe(node->topics_.dcmdFilter, 1, [weak](const mqtt::InboundMessage& m) {
    if (auto self = weak.lock()) self->onDcmd(m.topic, m.payload);
  });
  if (!node->topics_.state.empty()) {
    for (const auto& t : {node->topics_.state, node->topics_.legacyState}) {
      sess.subscribe(t, 1, [weak](const mqtt::InboundMessage& m) {
        if (auto self = weak.lock()) self->onState(m.payload);
      });
    }
  }
  return node;
}

EdgeNode::EdgeNode(std::shared_ptr<mqtt::Session> session, std::shared_ptr<BdSeq> bdSeq, EdgeNodeOptions options,
                   DeviceStates deviceStates, NodeMetricsFn nodeMetrics, WriteFn write)
    : session_(std::move(session)),
      bdSeq_(std::move(bdSeq)),
      options_(std::move(options)),
      topics_(options_.groupId, options_.edgeNodeId, options_.hostId),
      deviceStates_(std::move(deviceStates)),
      nodeMetrics_(std::move(nodeMetrics)),
      write_(std::move(write)),
      table_(kFirstDeviceAlias),
      pollTimer_(session_->clock().makeTimer()) {}

EdgeNode::~EdgeNode() = default;

void EdgeNode::stop() {
  stopped_ = true;
  pollTimer_->cancel();
}

std::uint64_t EdgeNode::nowMs() const {
  return static_cast<std::uint64_t>(toMillis(session_->wallNow()));
}

std::uint64_t EdgeNode::nextSeq() {
  const std::uint64_t s = seq_;
  seq_ = (seq_ + 1) % kSeqModulus;
  return s;
}

void EdgeNode::publish(const std::string& topic, spb::Payload& payload, mqtt::MqttClient::Done done) {
  payload.set_timestamp(nowMs());
  payload.set_seq(nextSeq());
  // QoS 0, not retained: every edge-node message but NDEATH ([tck-id-topics-*-qos], -retain).
  session_->publish(topic, payload.SerializeAsString(), 0, false,
                    done ? std::move(done) : mqtt::MqttClient::Done([](const Status&) {}));
}

void EdgeNode::onSession(bool connected) {
  if (stopped_) return;
  if (!connected) {
    linkUp_ = false;
    hostOnline_ = false;
    die();
    return;
  }
  linkUp_ = true;
  bdSeq_->connected();
  if (topics_.state.empty()) {
    birth();
  } else {
    session_->logger()->info("sparkplug: waiting for the primary host '{}' to be online before the births",
                             options_.hostId);
  }
}

void EdgeNode::die() {
  pollTimer_->cancel();
  links_.clear();
  stats_.born = false;
  if (!born_) return;
  born_ = false;
  if (readyCb_) readyCb_(false);
}

void EdgeNode::birth() {
  if (stopped_ || !linkUp_) return;
  const std::uint64_t at = nowMs();
  birthAt_ = session_->wallNow();
  seq_ = 0;  // NBIRTH is always 0 ([tck-id-topics-nbirth-seq-num])
  spb::Payload p;
  nodeMetric(p, kBdSeq, 0, spb::Int64, at).set_long_value(bdSeq_->current());
  nodeMetric(p, kRebirth, 0, spb::Boolean, at).set_boolean_value(false);
  nodeMetric(p, "Properties/Version", kVersion, spb::String, at).set_string_value(options_.version);
  nodeMetric(p, "Properties/Epoch", kEpoch, spb::String, at).set_string_value(options_.epoch);
  const NodeMetrics nm = nodeMetrics_ ? nodeMetrics_() : NodeMetrics{};
  nodeMetric(p, "Spool/Pending Readings", kSpoolReadings, spb::UInt64, at).set_long_value(nm.spoolReadings);
  nodeMetric(p, "Spool/Bytes", kSpoolBytes, spb::UInt64, at).set_long_value(nm.spoolBytes);
  nodeMetric(p, "MQTT/Reconnects", kReconnects, spb::UInt64, at).set_long_value(nm.reconnects);
  nodeMetric(p, "Sparkplug/Commands Refused", kCommandsRefused, spb::UInt64, at).set_long_value(stats_.commandsRefused);
  sentNodeMetrics_ = nm;
  publish(topics_.nbirth, p);
  ++stats_.births;
  links_.clear();
  for (const auto& d : table_.devices()) deviceBirth(*d);
  session_->logger()->info("sparkplug: born (bdSeq {}, {} device(s))", bdSeq_->current(), table_.devices().size());
  const bool wasBorn = born_;
  born_ = true;
  stats_.born = true;
  pollDevices();  // DDEATH at once for a device already down; then every devicePoll
  if (!wasBorn && readyCb_) readyCb_(true);
}

void EdgeNode::deviceBirth(DeviceMetrics& device) {
  spb::Payload p;
  appendBirthMetrics(device, nowMs(), p);
  publish(topics_.device("DBIRTH", device.id), p);
  device.changed = false;
  auto& link = links_[device.id];
  link.born = true;
  link.dead = false;
  ++stats_.deviceBirths;
}

void EdgeNode::deviceDeath(DeviceMetrics& device) {
  spb::Payload p;
  publish(topics_.device("DDEATH", device.id), p);
  links_[device.id].dead = true;
  ++stats_.deviceDeaths;
}

void EdgeNode::pollDevices() {
  if (!born_ || stopped_) return;
  if (deviceStates_) {
    states_.clear();
    deviceStates_(states_);
    for (const auto& [id, down] : states_) {
      auto* device = table_.find(id);
      if (device == nullptr) continue;
      auto& link = links_[id];
      if (down && link.born && !link.dead) {
        deviceDeath(*device);
      } else if (!down && link.dead) {
        deviceBirth(*device);
      }
    }
  }
  std::weak_ptr<EdgeNode> weak = weak_from_this();
  pollTimer_->start(options_.devicePoll, [weak] {
    if (auto self = weak.lock()) self->pollDevices();
  });
}

void EdgeNode::publishNodeData() {
  if (!born_ || stopped_ || !nodeMetrics_) return;
  NodeMetrics nm = nodeMetrics_();
  nm.commandsRefused = stats_.commandsRefused;
  const NodeMetrics was = sentNodeMetrics_.value_or(NodeMetrics{});
  const std::uint64_t at = nowMs();
  spb::Payload p;
  // Report by exception: only what changed, by alias.
  if (nm.spoolReadings != was.spoolReadings)
    nodeMetric(p, {}, kSpoolReadings, spb::UInt64, at).set_long_value(nm.spoolReadings);
  if (nm.spoolBytes != was.spoolBytes) nodeMetric(p, {}, kSpoolBytes, spb::UInt64, at).set_long_value(nm.spoolBytes);
  if (nm.reconnects != was.reconnects) nodeMetric(p, {}, kReconnects, spb::UInt64, at).set_long_value(nm.reconnects);
  if (nm.commandsRefused != was.commandsRefused) {
    nodeMetric(p, {}, kCommandsRefused, spb::UInt64, at).set_long_value(nm.commandsRefused);
  }
  if (p.metrics_size() == 0) return;
  sentNodeMetrics_ = nm;
  publish(topics_.ndata, p);
}

// ---- the sink -------------------------------------------------------------------------------

void EdgeNode::beginBatch(std::string& /*payload*/) {
  used_ = 0;
}

void EdgeNode::addRecord(std::string& /*payload*/, std::uint64_t seq, std::string_view record) {
  if (!reading_.ParseFromArray(record.data(), static_cast<int>(record.size()))) {
    // The spool's own records: damage is caught by its checksums first; counted, not fatal.
    ++stats_.undecodable;
    return;
  }
  reading_.set_seq(seq);
  DeviceMetrics& device = table_.device(reading_.sensor_id());
  if (used_ == 0 || chunks_[used_ - 1].device != &device) {
    if (used_ == chunks_.size()) chunks_.emplace_back();
    Chunk& c = chunks_[used_++];
    c.device = &device;
    c.payload.Clear();
    c.readings = 0;
  }
  Chunk& c = chunks_[used_ - 1];
  const bool historical = fromTimestamp(reading_.observed_at()) < birthAt_;
  appendReadingMetrics(table_, device, reading_, historical, c.payload);
  ++c.readings;
  batchLastSeq_ = seq;
}

void EdgeNode::asyncDeliver(std::string /*payload*/, std::uint32_t /*count*/, std::function<void(core::Outcome)> done) {
  if (!born_) {
    boost::asio::post(session_->executor(), [done = std::move(done)] { done(core::Outcome::Retry); });
    return;
  }
  // The batch's outcome: Retry if anything of it may not have reached the broker, Rejected if a
  // DDATA can never be published as it is, else Delivered (at the mark's PUBACK).
  auto outcome = std::make_shared<core::Outcome>(core::Outcome::Delivered);
  std::weak_ptr<EdgeNode> weakNode = weak_from_this();
  auto note = [outcome, weakNode](const Status& st) {
    if (st) return;
    if (auto self = weakNode.lock(); self && ++self->stats_.publishFailures % 100 == 1) {
      self->session_->logger()->warn("sparkplug: a publish failed ({}): {} ({} so far)", errorCauseName(st.cause()),
                                     st.error(), self->stats_.publishFailures);
    }
    if (st.cause() != ErrorCause::Invalid) {
      *outcome = core::Outcome::Retry;
    } else if (*outcome == core::Outcome::Delivered) {
      *outcome = core::Outcome::Rejected;
    }
  };
  std::uint64_t readings = 0;
  for (std::size_t i = 0; i < used_; ++i) {
    Chunk& c = chunks_[i];
    readings += c.readings;
    const auto link = links_.find(c.device->id);
    if (link == links_.end() || !link->second.born || link->second.dead || c.device->changed) {
      deviceBirth(*c.device);
    }
    publish(topics_.device("DDATA", c.device->id), c.payload, note);
    ++stats_.ddata;
    stats_.readings += c.readings;
  }
  used_ = 0;
  std::weak_ptr<EdgeNode> weak = weak_from_this();
  session_->publish(options_.markTopic, std::to_string(batchLastSeq_), 1, false,
                    [weak, outcome, note, readings, done = std::move(done)](const Status& st) {
                      note(st);
                      if (auto self = weak.lock(); self && *outcome == core::Outcome::Delivered) {
                        ++self->stats_.batchesAcked;
                        self->stats_.readingsAcked += readings;
                      }
                      done(*outcome);
                    });
}

// ---- what hosts send ------------------------------------------------------------------------

void EdgeNode::refuse(const std::string& what, const std::string& why) {
  ++stats_.commandsRefused;
  // At most one line per 100 refusals: a flood must not flood the log.
  if (stats_.commandsRefused % 100 == 1) {
    session_->logger()->warn("sparkplug: {} refused: {} ({} refused so far)", what, why, stats_.commandsRefused);
  }
}

void EdgeNode::onNcmd(const std::string& payload) {
  if (stopped_) return;
  ++stats_.commandsReceived;
  const DecodedCommand cmd = decodeCommand(payload);
  if (!cmd.ok()) return refuse("an NCMD", cmd.error);
  for (const auto& m : cmd.metrics) {
    // By name only: Node Control/Rebirth has no alias. Other names are tolerated and ignored.
    if (m.name != kRebirth) continue;
    if (!m.boolean) return refuse("an NCMD", "Node Control/Rebirth without a Boolean value");
    if (!*m.boolean) continue;
    ++stats_.rebirths;
    session_->logger()->info("sparkplug: rebirth asked");
    // Everything already handed to the client goes first; nothing is published between the births.
    if (linkUp_ && (born_ || topics_.state.empty() || hostOnline_)) birth();
    return;
  }
}

void EdgeNode::onDcmd(const std::string& topic, const std::string& payload) {
  if (stopped_) return;
  ++stats_.commandsReceived;
  const std::string deviceId(topics_.dcmdDevice(topic));
  DeviceMetrics* device = deviceId.empty() ? nullptr : table_.find(deviceId);
  if (device == nullptr) return refuse("a DCMD on " + topic, "no such device on this edge node");
  const DecodedCommand cmd = decodeCommand(payload);
  if (!cmd.ok()) return refuse("a DCMD for " + deviceId, cmd.error);
  for (const auto& m : cmd.metrics) {
    const MetricDef* def = nullptr;
    if (!m.name.empty()) {
      const auto it = device->byName.find(m.name);
      if (it != device->byName.end()) def = &device->metrics[it->second];
    } else if (m.alias) {
      def = table_.byAlias(*device, *m.alias);
    }
    const std::string label = def != nullptr    ? def->name
                              : !m.name.empty() ? m.name
                                                : "alias " + std::to_string(*m.alias);
    if (def == nullptr) {
      refuse("a DCMD for " + deviceId, "'" + label + "' is no metric of the device");
      continue;
    }
    std::optional<double> value = m.number;
    if (!value && m.boolean) value = *m.boolean ? 1.0 : 0.0;
    if (!value || m.isNull || !std::isfinite(*value)) {
      refuse("a DCMD for " + deviceId + " '" + label + "'", "no finite numeric or Boolean value");
      continue;
    }
    if (!write_) {
      refuse("a DCMD for " + deviceId + " '" + label + "'", "writes are off (commands { enabled platform })");
      continue;
    }
    // The commands service decides (allow-list, writable range, rate limit) and audits; a metric
    // with no writable point behind it goes there too, named by its field, to be refused on record.
    pb::Command c;
    c.set_request_id("spb-" + std::to_string(bdSeq_->current()) + "-" + std::to_string(++dcmdRequests_));
    c.set_device(deviceId);
    c.set_origin("sparkplug DCMD");
    toTimestamp(session_->wallNow() + kWriteExpiry, c.mutable_expires_at());
    auto* w = c.mutable_write();
    if (!def->point.empty()) {
      w->set_point(def->point);
      w->set_lane(def->lane);
      w->set_bay(def->bay);
    } else {
      const auto slash = def->name.rfind('/');
      w->set_point(slash == std::string::npos ? def->name : def->name.substr(slash + 1));
    }
    w->set_value(*value);
    ++stats_.writes;
    write_(std::move(c));
  }
}

void EdgeNode::onState(const std::string& payload) {
  if (stopped_) return;
  ++stats_.stateMessages;
  std::string why;
  const auto st = parseState(payload, &why);
  if (!st) return refuse("a STATE of '" + options_.hostId + "'", why);
  // An older STATE than one already seen (a stale retained message) changes nothing.
  if (st->timestamp && lastStateTimestamp_ && *st->timestamp < *lastStateTimestamp_) return;
  if (st->timestamp) lastStateTimestamp_ = st->timestamp;
  hostOnline_ = st->online;
  stats_.hostOnline = st->online;
  if (st->online) {
    if (linkUp_ && !born_) birth();
    return;
  }
  if (!born_) return;
  // The host went offline: this node dies too, and is born again (a new CONNECT, a new bdSeq)
  // once the host is back ([tck-id-operational-behavior-edge-node-birth-sequence-wait]).
  session_->logger()->info("sparkplug: the primary host '{}' is offline: NDEATH, reconnecting", options_.hostId);
  session_->publish(topics_.ndeath, bdSeq_->ndeath(), 1, false, [](const Status&) {});
  die();
  session_->reconnectNow();
}

}  // namespace citygate::sparkplug
