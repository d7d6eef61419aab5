#include "outputs/mqtt/output.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cmath>

namespace citygate::mqtt {

namespace pb = citygate::v1;

std::string topicFor(const std::string& prefix, const std::string& gatewayId, const char* leaf) {
  std::string t = prefix;
  if (!t.empty() && t.back() != '/') t += '/';
  return t + gatewayId + "/" + leaf;
}

std::string statusPayload(const OutputOptions& o, pb::GatewayState state) {
  pb::GatewayStatus s;
  s.set_gateway_id(o.gatewayId);
  s.set_state(state);
  s.set_boot_id(o.bootId);
  s.set_version(o.version);
  toTimestamp(o.startedAt, s.mutable_started_at());
  if (state == pb::ONLINE && o.birthSpool) o.birthSpool(*s.mutable_spool());
  return s.SerializeAsString();
}

MqttOutput::MqttOutput(boost::asio::any_io_executor executor, std::unique_ptr<MqttClient> client, OutputOptions options,
                       std::shared_ptr<spdlog::logger> log)
    : executor_(executor),
      client_(std::move(client)),
      options_(std::move(options)),
      log_(std::move(log)),
      reconnectTimer_(executor),
      readingsTopic_(topicFor(options_.topicPrefix, options_.gatewayId, "readings")),
      statusTopic_(topicFor(options_.topicPrefix, options_.gatewayId, "status")),
      healthTopic_(topicFor(options_.topicPrefix, options_.gatewayId, "health")),
      rng_(std::random_device{}()) {}

void MqttOutput::start() {
  auto weak = weak_from_this();
  client_->setConnectionLost([weak](const std::string& cause) {
    if (auto self = weak.lock()) self->onLost(cause);
  });
  connect();
}

void MqttOutput::release() {
  stopping_ = true;
  reconnectTimer_.cancel();
  client_.reset();
}

void MqttOutput::connect() {
  if (stopping_ || connecting_ || connected_ || !client_) return;
  connecting_ = true;
  client_->connect([self = shared_from_this()](bool ok, const std::string& err) { self->onConnect(ok, err); });
}

void MqttOutput::onConnect(bool ok, const std::string& error) {
  connecting_ = false;
  if (stopping_) return;
  if (!ok) {
    ++stats_.connectFailures;
    stats_.lastError = error;
    if (error != lastLoggedError_) {
      log_->warn("cannot connect to the broker: {}", error);
      lastLoggedError_ = error;
    }
    scheduleReconnect();
    return;
  }
  if (stats_.connectedSince) ++stats_.reconnects;
  connected_ = true;
  stats_.connected = true;
  stats_.connectedSince = WallClock::now();
  connectedAt_ = SteadyClock::now();
  lastLoggedError_.clear();
  log_->info("connected to the broker; birth on {}", statusTopic_);
  client_->publish(statusTopic_, statusPayload(options_, pb::ONLINE), 1, true,
                   [self = shared_from_this()](bool okBirth, const std::string& err) {
                     if (!okBirth) self->log_->warn("birth not acknowledged: {}", err);
                   });
  if (readyCb_) readyCb_(true);
}

void MqttOutput::onLost(const std::string& cause) {
  if (!connected_ || stopping_) return;
  connected_ = false;
  stats_.connected = false;
  stats_.lastError = cause;
  log_->warn("lost the broker: {}", cause);
  if (connectedAt_ && SteadyClock::now() - *connectedAt_ >= options_.stableAfter) attempt_ = 0;
  if (readyCb_) readyCb_(false);
  scheduleReconnect();
}

void MqttOutput::scheduleReconnect() {
  // Full jitter: uniform in [0, min(cap, base * 2^attempt)].
  const double ceiling = std::min<double>(
      static_cast<double>(options_.reconnectMax.count()),
      static_cast<double>(options_.reconnectMin.count()) * std::pow(2.0, std::min<std::uint32_t>(attempt_, 30)));
  std::uniform_real_distribution<double> dist(0.0, ceiling);
  const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(dist(rng_)));
  ++attempt_;
  log_->debug("reconnecting in {} ms (attempt {})", wait.count(), attempt_);
  reconnectTimer_.expires_after(wait);
  reconnectTimer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->connect();
  });
}

void MqttOutput::asyncDeliver(std::string payload, std::uint32_t count, std::function<void(core::Outcome)> done) {
  ++stats_.batchesPublished;
  stats_.published += count;
  client_->publish(readingsTopic_, std::move(payload), 1, false,
                   [self = shared_from_this(), count, done = std::move(done)](bool ok, const std::string& err) {
                     if (ok) {
                       ++self->stats_.batchesAcked;
                       self->stats_.acked += count;
                       done(core::Outcome::Delivered);
                     } else {
                       self->log_->debug("batch of {} not acknowledged: {}", count, err);
                       done(core::Outcome::Retry);
                     }
                   });
}

void MqttOutput::publishHealth(const pb::GatewayHealth& health) {
  if (!connected_ || stopping_ || !client_) return;
  ++stats_.healthPublished;
  client_->publish(healthTopic_, health.SerializeAsString(), options_.healthQos, false,
                   [](bool, const std::string&) {});
}

void MqttOutput::stop(std::chrono::milliseconds timeout, std::function<void()> done) {
  reconnectTimer_.cancel();
  if (!connected_ || stopping_ || !client_) {
    stopping_ = true;
    boost::asio::post(executor_, std::move(done));
    return;
  }
  stopping_ = true;
  auto self = shared_from_this();
  client_->publish(statusTopic_, statusPayload(options_, pb::OFFLINE), 1, true,
                   [self, timeout, done = std::move(done)](bool, const std::string&) mutable {
                     self->client_->disconnect(timeout, [self, done = std::move(done)]() {
                       self->connected_ = false;
                       self->stats_.connected = false;
                       done();
                     });
                   });
}

}  // namespace citygate::mqtt
