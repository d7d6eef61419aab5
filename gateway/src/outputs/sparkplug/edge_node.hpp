// EdgeNode: the gateway as a Sparkplug 3.0 edge node (mqtt { format: SPARKPLUG_B }), on the one
// broker Session. It is the pipeline's sink in that mode: the spool's readings go out as DDATA,
// in seq order, after the births.
//
// - bdSeq (BdSeq): one per MQTT CONNECT, 0..255, in that connect's will (NDEATH) and in the
//   NBIRTH that follows it; stored in state_dir/sparkplug.bdseq on every CONNACK, so a restarted
//   daemon goes on from the last one. A rebirth keeps it.
// - Births: on every connect (with a primary host: once its STATE says online), NBIRTH (seq 0,
//   bdSeq, Node Control/Rebirth, the node's metrics) and one DBIRTH per device (every metric it can
//   send, metrics.hpp), then data. One seq counter (0..255) for every message but NDEATH.
// - Data: each spool batch becomes one DDATA per run of one device's readings (aliases only);
//   readings observed before the births are is_historical. DDATA is QoS 0, as the specification
//   says; a QoS 1 "mark" on <prefix>/<gw>/sparkplug/mark follows each batch, and its PUBACK (the
//   broker has taken everything before it on this TCP stream) is when the spool lets the batch go.
//   A link lost first: the batch is sent again after the next births (historical), never lost.
// - Devices: a device DOWN (polled every second) gets a DDEATH; back, a DBIRTH. A DDATA for a
//   device not born on this link (historical data of a dead device, a metric new since its
//   DBIRTH) is preceded by its DBIRTH.
// - NCMD "Node Control/Rebirth" = true: NBIRTH and every DBIRTH again, same bdSeq. DCMD: a write
//   of a writable point through the commands service (allow-list, range, rate limit, read-back,
//   audit). A payload that does not decode is counted and logged, never acted on.
// - STATE (host_id): births wait for spBv1.0/STATE/<host_id> online (with a timestamp not older
//   than the last seen); offline: NDEATH, disconnect, connect again (a new bdSeq).
//
// Threading: executor only; time from the session's Clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "citygate/v1/commands.pb.h"
#include "citygate/v1/reading.pb.h"
#include "core/clock.hpp"
#include "core/file_writer.hpp"
#include "core/sink.hpp"
#include "outputs/mqtt/session.hpp"
#include "outputs/sparkplug/codec.hpp"
#include "outputs/sparkplug/metrics.hpp"

namespace citygate::sparkplug {

// The bdSeq of each CONNECT. Made before the session (its will callback is the session's).
//
// One bdSeq per CONNECT a broker accepted: a failed attempt reaches no host, so the next attempt
// carries the same bdSeq, and each NBIRTH is its predecessor + 1 ([tck-id-topics-nbirth-bdseq-
// increment]). The value is on disk before the first CONNECT that carries it: a daemon killed at
// any moment starts again above every bdSeq a broker may still hold as a will (a will published
// late, after the keepalive, must never name the new session).
class BdSeq {
 public:
  // Reads `path` (empty: kept in memory only): the first CONNECT uses the stored value + 1, or 0.
  BdSeq(boost::asio::any_io_executor executor, std::string path, std::string ndeathTopic, core::Clock& clock,
        std::shared_ptr<spdlog::logger> log);
  ~BdSeq();
  // The will of the next CONNECT: NDEATH with this session's bdSeq (the session calls it before
  // every attempt), stored first when it is new (one small synchronous write per accepted CONNECT).
  mqtt::Will nextWill();
  // The bdSeq of the connect in flight or of the link.
  std::uint64_t current() const { return current_; }
  // After a CONNACK: the next CONNECT (after this link) takes the next bdSeq.
  void connected();
  // The will as published by the node itself (STATE offline, stop): same bdSeq.
  std::string ndeath() const;
  void stop();

 private:
  std::string path_;
  std::string topic_;
  core::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::FileWriter> writer_;
  std::uint64_t current_ = 0;
  bool stored_ = false;  // current_ is on disk (or there is no disk)
  bool used_ = false;    // a CONNECT with current_ was accepted
};

struct EdgeNodeOptions {
  std::string groupId;
  std::string edgeNodeId;  // the gateway_id
  std::string hostId;      // primary host; empty: none
  std::string markTopic;   // <prefix>/<gateway_id>/sparkplug/mark
  std::string version;
  std::string epoch;
  std::chrono::milliseconds devicePoll{1000};
};

// The node's own metrics (NBIRTH, then NDATA when they change).
struct NodeMetrics {
  std::uint64_t spoolReadings = 0;
  std::uint64_t spoolBytes = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t commandsRefused = 0;  // the edge node's own count (filled by it)
};

struct EdgeNodeStats {
  std::uint64_t births = 0;    // NBIRTHs (rebirths included)
  std::uint64_t rebirths = 0;  // asked by NCMD
  std::uint64_t deviceBirths = 0;
  std::uint64_t deviceDeaths = 0;
  std::uint64_t ddata = 0;     // DDATA messages
  std::uint64_t readings = 0;  // readings in them
  std::uint64_t batchesAcked = 0;
  std::uint64_t readingsAcked = 0;     // in batches whose mark the broker acknowledged
  std::uint64_t commandsReceived = 0;  // NCMD and DCMD messages
  std::uint64_t commandsRefused = 0;   // malformed, unknown device or metric, no value
  std::uint64_t writes = 0;            // DCMD writes handed to the commands service
  std::uint64_t stateMessages = 0;
  std::uint64_t publishFailures = 0;  // DDATA or marks the client failed (the batch goes again)
  std::uint64_t undecodable = 0;      // spool records that are no Reading (skipped)
  bool born = false;
  bool hostOnline = false;
};

class EdgeNode final : public core::Sink, public std::enable_shared_from_this<EdgeNode> {
 public:
  using DeviceStates = std::function<void(std::vector<std::pair<std::string, bool>>& down)>;
  using NodeMetricsFn = std::function<NodeMetrics()>;
  using WriteFn = std::function<void(citygate::v1::Command command)>;

  // Registers its listener and subscriptions with the session: make it before session->start().
  // `sensors`: every configured device (its DBIRTH); `deviceStates` (id, down) for DDEATH;
  // `write` carries a DCMD write to the commands service (null: DCMD writes are refused).
  static std::shared_ptr<EdgeNode> create(std::shared_ptr<mqtt::Session> session, std::shared_ptr<BdSeq> bdSeq,
                                          EdgeNodeOptions options,
                                          const std::vector<std::shared_ptr<const core::SensorSpec>>& sensors,
                                          DeviceStates deviceStates, NodeMetricsFn nodeMetrics, WriteFn write);
  EdgeNode(std::shared_ptr<mqtt::Session> session, std::shared_ptr<BdSeq> bdSeq, EdgeNodeOptions options,
           DeviceStates deviceStates, NodeMetricsFn nodeMetrics, WriteFn write);  // use create()
  ~EdgeNode() override;

  // core::Sink. The batch is framed into the node (one DDATA per device run), not into `payload`.
  std::string_view name() const override { return "sparkplug"; }
  bool ready() const override { return born_; }
  void beginBatch(std::string& payload) override;
  void addRecord(std::string& payload, std::uint64_t seq, std::string_view record) override;
  void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(core::Outcome)> done) override;
  void setReadyCallback(std::function<void(bool)> cb) override { readyCb_ = std::move(cb); }

  // NDATA with the node metrics that changed (the gateway's health interval).
  void publishNodeData();
  void stop();

  const EdgeNodeStats& stats() const { return stats_; }
  const Topics& topics() const { return topics_; }
  const MetricTable& metrics() const { return table_; }

  // Inbound messages (the session's handlers; tests call them directly).
  void onNcmd(const std::string& payload);
  void onDcmd(const std::string& topic, const std::string& payload);
  void onState(const std::string& payload);

 private:
  struct Chunk {
    DeviceMetrics* device = nullptr;
    spb::Payload payload;
    std::uint32_t readings = 0;
  };
  struct DeviceLink {
    bool born = false;  // DBIRTH sent on this link
    bool dead = false;  // DDEATH sent since
  };

  void onSession(bool connected);
  void birth();
  void deviceBirth(DeviceMetrics& device);
  void deviceDeath(DeviceMetrics& device);
  void pollDevices();
  void die();  // no longer born (link lost, host offline)
  std::uint64_t nextSeq();
  std::uint64_t nowMs() const;
  void publish(const std::string& topic, spb::Payload& payload, mqtt::MqttClient::Done done = {});
  void refuse(const std::string& what, const std::string& why);

  std::shared_ptr<mqtt::Session> session_;
  std::shared_ptr<BdSeq> bdSeq_;
  EdgeNodeOptions options_;
  Topics topics_;
  DeviceStates deviceStates_;
  NodeMetricsFn nodeMetrics_;
  WriteFn write_;
  MetricTable table_;
  std::map<std::string, DeviceLink, std::less<>> links_;
  std::vector<Chunk> chunks_;
  std::size_t used_ = 0;
  std::uint64_t batchLastSeq_ = 0;
  citygate::v1::Reading reading_;  // reused for each record
  std::function<void(bool)> readyCb_;
  std::unique_ptr<core::Timer> pollTimer_;
  std::vector<std::pair<std::string, bool>> states_;  // reused by pollDevices
  bool linkUp_ = false;
  bool born_ = false;
  bool hostOnline_ = false;
  bool stopped_ = false;
  std::optional<std::uint64_t> lastStateTimestamp_;
  std::uint64_t seq_ = 0;  // of the next message
  WallTime birthAt_;
  std::optional<NodeMetrics> sentNodeMetrics_;
  std::uint64_t dcmdRequests_ = 0;
  EdgeNodeStats stats_;
};

}  // namespace citygate::sparkplug
