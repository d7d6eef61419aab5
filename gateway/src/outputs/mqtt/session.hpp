// Session: the gateway's one connection to the broker, shared by its clients (the readings sink,
// later the command handler of issue 17 and the Sparkplug sink of issue 19).
//
// - Connects with the OFFLINE GatewayStatus as the will and publishes the retained ONLINE status
//   (birth) on every connect; on stop() publishes OFFLINE itself and disconnects.
// - Brokers in failover order (options.brokers, the client's servers): a connect that fails goes
//   on to the next broker at once; only when every broker failed in a round does the session wait.
//   A round starts at the first broker, except after a lost link: then at the next one, the lost
//   broker last (it is the likeliest to be down, and a dead host costs a connect timeout).
// - After a failed round or a lost link, reconnects after a wait drawn with full jitter, uniform
//   in [0, min(reconnectMax, reconnectMin * 2^attempt)] (a fleet must not reconnect in step); the
//   attempt count resets only once a link has held for stableAfter.
// - Subscriptions: a client registers a topic filter and a handler; the session subscribes on every
//   connect (sessions start clean, so the broker forgets them on each reconnect) and hands each
//   inbound message whose topic matches the filter to the handler, on the executor.
// - State is one enum (ConnState). Clients learn of Connected / not Connected through listeners.
// - reconnectNow() (`citygatectl mqtt reconnect`): in backoff, connects at once (and the backoff
//   starts again from reconnectMin); when connected, disconnects cleanly and connects again. The
//   clients hear "not connected" first, so a batch in flight is sent again from the spool: nothing
//   is lost.
//
// Threading: executor only (the client posts its callbacks there). Failures a caller acts on
// carry an ErrorCause (core/result.hpp).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "citygate/v1/status.pb.h"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "core/time.hpp"
#include "outputs/mqtt/client.hpp"

namespace spdlog {
class logger;
}

namespace citygate::mqtt {

enum class ConnState : std::uint8_t {
  Idle,        // built, start() not called yet
  Connecting,  // a CONNECT is in flight
  Connected,   // CONNACK received; birth sent; subscriptions being made
  Backoff,     // waiting for the reconnect timer
  Stopping,    // stop(): OFFLINE sent, disconnect in flight
  Stopped,     // stopped or released: nothing more happens
};
const char* connStateName(ConnState state);

struct SessionOptions {
  std::vector<std::string> brokers;  // the client's servers, for logs and status (uris)
  std::string gatewayId;
  std::string bootId;
  std::string epoch;  // the seq's epoch (core::SeqStore::epoch), in ReadingBatch and GatewayStatus
  std::string version;
  std::string topicPrefix = "citygate/v1";
  WallTime startedAt;
  std::chrono::milliseconds reconnectMin{1000};
  std::chrono::milliseconds reconnectMax{300000};
  std::chrono::milliseconds stableAfter{30000};  // connected this long -> backoff resets
  int healthQos = 1;
  // Fills GatewayStatus.spool in the ONLINE birth (the will carries none).
  std::function<void(citygate::v1::SpoolHealth&)> birthSpool;
  // GatewayStatus.clock_unsynchronised in the ONLINE birth.
  std::function<bool()> birthClockUnsynchronised;
  std::optional<std::uint32_t> jitterSeed;  // unset: random
  // The presence messages. Unset: the native ones (the OFFLINE GatewayStatus on .../status as the
  // will, retained; the ONLINE status published on every connect; health on .../health). Set
  // (Sparkplug B, outputs/sparkplug/): called before every CONNECT for that connect's will; the
  // session publishes no birth and no health of its own, and stop() publishes this will itself
  // before it disconnects (a clean DISCONNECT makes the broker drop the will).
  std::function<Will()> will;
};

struct SessionStats {
  std::uint64_t reconnects = 0;
  std::uint64_t connectFailures = 0;
  std::uint64_t healthPublished = 0;
  std::uint64_t subscribeFailures = 0;
  std::uint64_t inbound = 0;           // messages handed to a handler
  std::uint64_t inboundUnmatched = 0;  // messages no registered filter matched (discarded, counted)
  std::string lastError;
  std::string serverUri;  // the broker of the current (or last) link
  ErrorCause lastCause = ErrorCause::Unspecified;
  std::optional<WallTime> connectedSince;     // of the current link
  std::optional<WallTime> disconnectedSince;  // while not connected: since the link went (or start)
  std::optional<WallTime> nextAttemptAt;      // in backoff: when the reconnect timer fires
};

// <prefix>/<gateway_id>/<leaf>
std::string topicFor(const std::string& prefix, const std::string& gatewayId, const char* leaf);
// MQTT filter matching ('+' one level, '#' the rest, '$' topics not matched by a leading wildcard).
bool topicMatches(const std::string& filter, const std::string& topic);
std::string statusPayload(const SessionOptions& o, citygate::v1::GatewayState state);

class Session final : public std::enable_shared_from_this<Session> {
 public:
  using MessageHandler = std::function<void(const InboundMessage&)>;
  using StateListener = std::function<void(bool connected)>;
  using SubscriptionId = std::uint64_t;

  // `clock` (the link's times, the reconnect timer) must outlive the session.
  Session(boost::asio::any_io_executor executor, core::Clock& clock, std::unique_ptr<MqttClient> client,
          SessionOptions options, std::shared_ptr<spdlog::logger> log);

  void start();
  // Publishes OFFLINE (bounded wait) and disconnects; `done` runs on the executor.
  void stop(std::chrono::milliseconds timeout, std::function<void()> done);
  // Destroys the Paho client, waiting for its threads' callbacks to end. Called once the executor
  // has stopped, before it is destroyed: Paho must not post into a dead io_context.
  void release();

  ConnState state() const { return state_; }
  bool connected() const { return state_ == ConnState::Connected; }

  // Called with true on every connect (after the birth is sent), false when the link is lost
  // (not on stop(): the clients stop first). Listeners are called in the order they were added.
  void addStateListener(StateListener listener);

  // Publishes on the current link; without one the client fails it with ErrorCause::NotConnected.
  // After stop()/release(): ErrorCause::Cancelled (posted).
  void publish(const std::string& topic, std::string payload, int qos, bool retain, MqttClient::Done done);

  // Registers `filter` at `qos`; `handler` gets every inbound message matching it, on the executor.
  // Subscribed now if connected and again after every reconnect. A refused subscription is
  // counted and logged; it is tried again on the next connect.
  SubscriptionId subscribe(std::string filter, int qos, MessageHandler handler);
  void unsubscribe(SubscriptionId id);

  void publishHealth(const citygate::v1::GatewayHealth& health);

  // `mqtt reconnect`; see the header comment. Executor only.
  enum class Reconnect : std::uint8_t {
    Connecting,         // was waiting to reconnect: connecting now
    Reconnecting,       // was connected: closing the link cleanly, then connecting
    AlreadyConnecting,  // a connect (or the close before one) is under way
    NotRunning,         // not started, or stopping
  };
  Reconnect reconnectNow();

  WallTime wallNow() const { return clock_.wallNow(); }
  const boost::asio::any_io_executor& executor() const { return executor_; }

  const SessionStats& stats() const { return stats_; }
  const SessionOptions& options() const { return options_; }
  core::Clock& clock() const { return clock_; }
  const std::shared_ptr<spdlog::logger>& logger() const { return log_; }
  std::string topic(const char* leaf) const { return topicFor(options_.topicPrefix, options_.gatewayId, leaf); }

 private:
  struct Subscription {
    std::string filter;
    int qos = 0;
    MessageHandler handler;
  };

  void connect();
  void onConnect(const Status& result);
  void onLost(const std::string& cause);
  void onMessage(const InboundMessage& message);
  void onBirth(const Status& result);
  void onSubscribed(SubscriptionId id, const Status& result);
  void onReconnectTimer();
  void makeSubscription(SubscriptionId id, const Subscription& sub);
  void scheduleReconnect();
  std::string brokerName(std::size_t index) const;
  void onClosedForReconnect();
  void notify(bool up);

  boost::asio::any_io_executor executor_;
  core::Clock& clock_;
  std::unique_ptr<MqttClient> client_;
  SessionOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::Timer> reconnectTimer_;
  std::vector<StateListener> listeners_;
  std::map<SubscriptionId, Subscription> subscriptions_;
  SubscriptionId nextSubscription_ = 1;
  Will will_;  // of the connect in flight or of the link
  std::string statusTopic_;
  std::string healthTopic_;
  ConnState state_ = ConnState::Idle;
  std::uint32_t attempt_ = 0;
  std::size_t server_ = 0;  // the broker of the connect in flight (or of the link)
  std::size_t tried_ = 0;   // brokers tried in this round
  std::optional<SteadyTime> connectedAt_;
  bool everConnected_ = false;
  bool closingForReconnect_ = false;  // reconnectNow() closes the link: state Backoff, no timer
  std::string lastLoggedError_;
  std::minstd_rand rng_;
  SessionStats stats_;
};

}  // namespace citygate::mqtt
