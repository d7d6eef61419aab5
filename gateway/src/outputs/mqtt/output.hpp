// MqttOutput: the pipeline's sink on MQTT, and the gateway's presence on the broker.
//
// Keeps one session: connects, publishes the retained ONLINE GatewayStatus (birth) on every
// connect, with the OFFLINE status as the will; reconnects after a loss with exponential backoff
// and full jitter (a fleet of gateways must not reconnect in step), resetting the backoff only
// after the link has held for a while. Batches go to <prefix>/<gateway_id>/readings at QoS 1;
// health to .../health. On stop() it publishes OFFLINE itself and disconnects.
//
// Threading: executor only (the client posts its callbacks there).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "citygate/v1/status.pb.h"
#include "core/sink.hpp"
#include "core/time.hpp"
#include "outputs/mqtt/client.hpp"

namespace spdlog {
class logger;
}

namespace citygate::mqtt {

struct OutputOptions {
  std::string gatewayId;
  std::string bootId;
  std::string version;
  std::string topicPrefix = "citygate/v1";
  WallTime startedAt;
  std::chrono::milliseconds reconnectMin{1000};
  std::chrono::milliseconds reconnectMax{300000};
  std::chrono::milliseconds stableAfter{30000};  // connected this long -> backoff resets
  int healthQos = 1;
  // Fills GatewayStatus.spool in the ONLINE birth (the will carries none).
  std::function<void(citygate::v1::SpoolHealth&)> birthSpool;
};

struct OutputStats {
  std::uint64_t reconnects = 0;
  std::uint64_t connectFailures = 0;
  std::uint64_t published = 0;  // readings
  std::uint64_t acked = 0;      // readings
  std::uint64_t batchesPublished = 0;
  std::uint64_t batchesAcked = 0;
  std::uint64_t healthPublished = 0;
  bool connected = false;
  std::string lastError;
  std::optional<WallTime> connectedSince;  // none until the first connection
};

std::string topicFor(const std::string& prefix, const std::string& gatewayId, const char* leaf);
std::string statusPayload(const OutputOptions& o, citygate::v1::GatewayState state);

class MqttOutput final : public core::Sink, public std::enable_shared_from_this<MqttOutput> {
 public:
  MqttOutput(boost::asio::any_io_executor executor, std::unique_ptr<MqttClient> client, OutputOptions options,
             std::shared_ptr<spdlog::logger> log);

  void start();
  // Publishes OFFLINE (bounded wait) and disconnects; `done` runs on the executor.
  void stop(std::chrono::milliseconds timeout, std::function<void()> done);

  bool ready() const override { return connected_ && !stopping_; }
  void asyncDeliver(std::string payload, std::uint32_t count, std::function<void(core::Outcome)> done) override;
  void setReadyCallback(std::function<void(bool)> cb) override { readyCb_ = std::move(cb); }

  void publishHealth(const citygate::v1::GatewayHealth& health);

  // Destroys the Paho client, waiting for its threads' callbacks to end. Called once the executor
  // has stopped, before it is destroyed: Paho must not post into a dead io_context.
  void release();
  const OutputStats& stats() const { return stats_; }
  const OutputOptions& options() const { return options_; }

 private:
  void connect();
  void onConnect(bool ok, const std::string& error);
  void onLost(const std::string& cause);
  void scheduleReconnect();

  boost::asio::any_io_executor executor_;
  std::unique_ptr<MqttClient> client_;
  OutputOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::steady_timer reconnectTimer_;
  std::function<void(bool)> readyCb_;
  std::string readingsTopic_;
  std::string statusTopic_;
  std::string healthTopic_;
  bool connected_ = false;
  bool connecting_ = false;
  bool stopping_ = false;
  std::uint32_t attempt_ = 0;
  std::optional<SteadyTime> connectedAt_;  // of the current connection
  std::string lastLoggedError_;
  std::minstd_rand rng_;
  OutputStats stats_;
};

}  // namespace citygate::mqtt
