#include "outputs/mqtt/session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cmath>
#include <string_view>
#include <vector>

namespace citygate::mqtt {

namespace pb = citygate::v1;

namespace {
// `mqtt reconnect` of a link that is up: how long the clean close may wait for Paho.
constexpr std::chrono::milliseconds kReconnectCloseTimeout{2000};
}  // namespace

const char* connStateName(ConnState state) {
  switch (state) {
    case ConnState::Idle:
      return "idle";
    case ConnState::Connecting:
      return "connecting";
    case ConnState::Connected:
      return "connected";
    case ConnState::Backoff:
      return "backoff";
    case ConnState::Stopping:
      return "stopping";
    case ConnState::Stopped:
      return "stopped";
  }
  return "?";
}

std::string topicFor(const std::string& prefix, const std::string& gatewayId, const char* leaf) {
  std::string t = prefix;
  if (!t.empty() && t.back() != '/') t += '/';
  return t + gatewayId + "/" + leaf;
}

namespace {
std::vector<std::string_view> levelsOf(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}
}  // namespace

bool topicMatches(const std::string& filter, const std::string& topic) {
  if (filter.empty() || topic.empty()) return false;
  if ((filter[0] == '+' || filter[0] == '#') && topic[0] == '$') return false;
  const auto f = levelsOf(filter);
  const auto t = levelsOf(topic);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // the rest, including the parent level ("a/#" matches "a")
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

std::string statusPayload(const SessionOptions& o, pb::GatewayState state) {
  pb::GatewayStatus s;
  s.set_gateway_id(o.gatewayId);
  s.set_state(state);
  s.set_boot_id(o.bootId);
  s.set_version(o.version);
  s.set_epoch(o.epoch);
  toTimestamp(o.startedAt, s.mutable_started_at());
  if (state == pb::ONLINE && o.birthSpool) o.birthSpool(*s.mutable_spool());
  if (state == pb::ONLINE && o.birthClockUnsynchronised) s.set_clock_unsynchronised(o.birthClockUnsynchronised());
  return s.SerializeAsString();
}

Session::Session(boost::asio::any_io_executor executor, core::Clock& clock, std::unique_ptr<MqttClient> client,
                 SessionOptions options, std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)),
      clock_(clock),
      client_(std::move(client)),
      options_(std::move(options)),
      log_(std::move(log)),
      reconnectTimer_(clock_.makeTimer()),
      statusTopic_(topicFor(options_.topicPrefix, options_.gatewayId, "status")),
      healthTopic_(topicFor(options_.topicPrefix, options_.gatewayId, "health")),
      rng_(options_.jitterSeed ? *options_.jitterSeed : std::random_device{}()) {}

void Session::start() {
  if (state_ != ConnState::Idle || !client_) return;
  auto weak = weak_from_this();
  client_->setConnectionLost([weak](const std::string& cause) {
    if (auto self = weak.lock()) self->onLost(cause);
  });
  client_->setMessageHandler([weak](const InboundMessage& message) {
    if (auto self = weak.lock()) self->onMessage(message);
  });
  stats_.disconnectedSince = clock_.wallNow();
  connect();
}

void Session::release() {
  state_ = ConnState::Stopped;
  reconnectTimer_->cancel();
  client_.reset();
}

void Session::addStateListener(StateListener listener) {
  listeners_.push_back(std::move(listener));
}

void Session::notify(bool up) {
  for (const auto& l : listeners_) l(up);
}

void Session::connect() {
  if ((state_ != ConnState::Idle && state_ != ConnState::Backoff) || !client_) return;
  state_ = ConnState::Connecting;
  stats_.nextAttemptAt.reset();
  ++tried_;
  will_ = options_.will ? options_.will() : Will{statusTopic_, statusPayload(options_, pb::OFFLINE), 1, true};
  client_->setWill(will_);
  client_->connect(server_, std::bind_front(&Session::onConnect, shared_from_this()));
}

std::string Session::brokerName(std::size_t index) const {
  return index < options_.brokers.size() ? options_.brokers[index] : "broker " + std::to_string(index + 1);
}

void Session::onConnect(const Status& result) {
  if (state_ != ConnState::Connecting) return;  // stopped meanwhile
  if (!result) {
    ++stats_.connectFailures;
    stats_.lastError = result.error();
    stats_.lastCause = result.cause();
    const std::string what = brokerName(server_) + ": " + result.error();
    if (what != lastLoggedError_) {
      log_->warn("cannot connect to the broker at {}", what);
      lastLoggedError_ = what;
    }
    const std::size_t n = client_->servers();
    if (tried_ < n) {  // the next broker of the round, at once
      server_ = (server_ + 1) % n;
      state_ = ConnState::Backoff;
      connect();
      return;
    }
    server_ = 0;  // a new round, after the wait, from the first broker
    tried_ = 0;
    scheduleReconnect();
    return;
  }
  tried_ = 0;
  if (everConnected_) ++stats_.reconnects;
  everConnected_ = true;
  state_ = ConnState::Connected;
  stats_.connectedSince = clock_.wallNow();
  stats_.disconnectedSince.reset();
  connectedAt_ = clock_.steadyNow();
  lastLoggedError_.clear();
  stats_.serverUri = brokerName(server_);
  if (options_.will) {
    log_->info("connected to the broker at {}", stats_.serverUri);
  } else {
    log_->info("connected to the broker at {}; birth on {}", stats_.serverUri, statusTopic_);
    client_->publish(statusTopic_, statusPayload(options_, pb::ONLINE), 1, true,
                     std::bind_front(&Session::onBirth, shared_from_this()));
  }
  for (const auto& [id, sub] : subscriptions_) makeSubscription(id, sub);
  notify(true);
}

void Session::onBirth(const Status& result) {
  if (!result) log_->warn("birth not acknowledged: {}", result.error());
}

void Session::makeSubscription(SubscriptionId id, const Subscription& sub) {
  client_->subscribe(sub.filter, sub.qos, std::bind_front(&Session::onSubscribed, shared_from_this(), id));
}

void Session::onSubscribed(SubscriptionId id, const Status& result) {
  const auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;  // unsubscribed meanwhile
  if (result) {
    log_->info("subscribed to {}", it->second.filter);
    return;
  }
  if (result.cause() == ErrorCause::NotConnected) return;  // made again on the next connect
  ++stats_.subscribeFailures;
  log_->warn("subscription to {} failed ({}): {}", it->second.filter, errorCauseName(result.cause()), result.error());
}

void Session::onMessage(const InboundMessage& message) {
  if (state_ == ConnState::Stopped) return;
  bool matched = false;
  // A handler may unsubscribe (itself or another); copy the handlers that match first.
  std::vector<MessageHandler> handlers;
  for (const auto& [id, sub] : subscriptions_) {
    if (topicMatches(sub.filter, message.topic)) handlers.push_back(sub.handler);
  }
  for (const auto& h : handlers) {
    matched = true;
    ++stats_.inbound;
    h(message);
  }
  if (!matched) ++stats_.inboundUnmatched;
}

void Session::onLost(const std::string& cause) {
  if (state_ != ConnState::Connected) return;
  stats_.lastError = cause;
  stats_.lastCause = ErrorCause::NotConnected;
  stats_.connectedSince.reset();
  stats_.disconnectedSince = clock_.wallNow();
  log_->warn("lost the broker at {}: {}", brokerName(server_), cause);
  if (connectedAt_ && clock_.steadyNow() - *connectedAt_ >= options_.stableAfter) attempt_ = 0;
  connectedAt_.reset();
  // The next round starts at the next broker; the lost one comes last.
  server_ = (server_ + 1) % client_->servers();
  tried_ = 0;
  scheduleReconnect();  // state: Backoff before the listeners hear of it
  notify(false);
}

void Session::scheduleReconnect() {
  state_ = ConnState::Backoff;
  // Full jitter: uniform in [0, min(cap, base * 2^attempt)].
  const double ceiling = std::min<double>(
      static_cast<double>(options_.reconnectMax.count()),
      static_cast<double>(options_.reconnectMin.count()) * std::pow(2.0, std::min<std::uint32_t>(attempt_, 30)));
  std::uniform_real_distribution<double> dist(0.0, ceiling);
  const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(dist(rng_)));
  ++attempt_;
  stats_.nextAttemptAt = clock_.wallNow() + wait;
  log_->debug("reconnecting in {} ms (attempt {})", wait.count(), attempt_);
  reconnectTimer_->start(wait, std::bind_front(&Session::onReconnectTimer, shared_from_this()));
}

void Session::onReconnectTimer() {
  connect();
}

Session::Reconnect Session::reconnectNow() {
  if (!client_) return Reconnect::NotRunning;
  switch (state_) {
    case ConnState::Backoff:
      if (closingForReconnect_) return Reconnect::AlreadyConnecting;
      log_->info("reconnect asked: connecting now");
      reconnectTimer_->cancel();
      attempt_ = 0;
      tried_ = 0;
      connect();
      return Reconnect::Connecting;
    case ConnState::Connecting:
      return Reconnect::AlreadyConnecting;
    case ConnState::Connected: {
      log_->info("reconnect asked: closing the link, then connecting again");
      // As a lost link for the clients (a batch in flight is sent again), without a wait.
      state_ = ConnState::Backoff;
      closingForReconnect_ = true;
      stats_.connectedSince.reset();
      stats_.disconnectedSince = clock_.wallNow();
      connectedAt_.reset();
      attempt_ = 0;
      tried_ = 0;
      notify(false);
      client_->disconnect(kReconnectCloseTimeout, std::bind_front(&Session::onClosedForReconnect, shared_from_this()));
      return Reconnect::Reconnecting;
    }
    case ConnState::Idle:
    case ConnState::Stopping:
    case ConnState::Stopped:
      break;
  }
  return Reconnect::NotRunning;
}

void Session::onClosedForReconnect() {
  closingForReconnect_ = false;
  if (state_ != ConnState::Backoff) return;  // stopped meanwhile
  connect();
}

void Session::publish(const std::string& topic, std::string payload, int qos, bool retain, MqttClient::Done done) {
  if (!client_ || state_ == ConnState::Stopped) {
    boost::asio::post(executor_, [done = std::move(done)]() { done(Error{"session stopped", ErrorCause::Cancelled}); });
    return;
  }
  // Not refused locally while connecting or in backoff: the client answers NotConnected itself,
  // as it did before the split (a batch sent just as the link drops completes with its cause).
  client_->publish(topic, std::move(payload), qos, retain, std::move(done));
}

Session::SubscriptionId Session::subscribe(std::string filter, int qos, MessageHandler handler) {
  const SubscriptionId id = nextSubscription_++;
  auto& sub = subscriptions_[id] = Subscription{std::move(filter), qos, std::move(handler)};
  if (state_ == ConnState::Connected) makeSubscription(id, sub);
  return id;
}

void Session::unsubscribe(SubscriptionId id) {
  const auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  const std::string filter = it->second.filter;
  subscriptions_.erase(it);
  const bool stillWanted = std::any_of(subscriptions_.begin(), subscriptions_.end(),
                                       [&filter](const auto& entry) { return entry.second.filter == filter; });
  if (state_ == ConnState::Connected && !stillWanted) client_->unsubscribe(filter, [](const Status&) {});
}

void Session::publishHealth(const pb::GatewayHealth& health) {
  if (state_ != ConnState::Connected || !client_ || options_.will) return;
  ++stats_.healthPublished;
  client_->publish(healthTopic_, health.SerializeAsString(), options_.healthQos, false, [](const Status&) {});
}

void Session::stop(std::chrono::milliseconds timeout, std::function<void()> done) {
  reconnectTimer_->cancel();
  if (state_ != ConnState::Connected || !client_) {
    state_ = ConnState::Stopped;
    boost::asio::post(executor_, std::move(done));
    return;
  }
  state_ = ConnState::Stopping;
  auto self = shared_from_this();
  client_->publish(will_.topic, will_.payload, will_.qos, will_.retain,
                   [self, timeout, done = std::move(done)](const Status&) mutable {
                     if (!self->client_) {  // released meanwhile
                       done();
                       return;
                     }
                     self->client_->disconnect(timeout, [self, done = std::move(done)]() {
                       self->state_ = ConnState::Stopped;
                       self->stats_.connectedSince.reset();
                       done();
                     });
                   });
}

}  // namespace citygate::mqtt
