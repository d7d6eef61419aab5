// MqttClient: the narrow seam over Paho C++ (async). Every callback (completions, a lost link, an
// inbound message) is posted to the executor given at creation; Paho's own threads never touch
// gateway state. Paho's persistence is off: the spool is the only durable queue, and every session
// starts clean, so subscriptions do not survive a reconnect (the Session makes them again).
//
// Failures carry their cause as a value (core/result.hpp's ErrorCause): NotConnected, Unreachable
// (network or TLS), Refused (CONNACK refusal, a subscription the broker refused), Invalid (a request
// that can never succeed: bad topic or filter, message too large), Timeout; the message is for logs.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace citygate::mqtt {

struct ClientOptions {
  // Brokers in failover order (a cluster's nodes); the Session picks the one for each connect.
  std::vector<std::string> uris;
  bool mqtt5 = false;  // MQTT 5 (clean start, session expiry 0) instead of 3.1.1
  std::string clientId;
  std::chrono::seconds keepalive{30};
  std::chrono::seconds connectTimeout{10};
  std::string username;
  std::string password;  // never logged
  bool tls = false;
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  bool insecureSkipVerify = false;
  // Publishes the client may hold queued, sent or not (Paho's maxBufferedMessages, which counts
  // them while connected too: a publish beyond it fails at once). The native sink has one per
  // batch in flight; Sparkplug up to one per reading of a batch, so the gateway sizes it.
  int maxQueued = 100;
};

// The message the broker publishes for the client when its link is lost (the Session sets it
// before every connect: the native OFFLINE status, or Sparkplug's NDEATH with that connect's bdSeq).
struct Will {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = true;
};

struct InboundMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retained = false;
};

class MqttClient {
 public:
  using Done = std::function<void(Status)>;

  virtual ~MqttClient() = default;

  // The number of brokers in ClientOptions::uris (at least 1).
  virtual std::size_t servers() const = 0;
  // Connects to broker `server` (an index into ClientOptions::uris).
  virtual void connect(std::size_t server, Done done) = 0;
  // The will of the connects from now on (none until set).
  virtual void setWill(Will will) = 0;
  virtual void disconnect(std::chrono::milliseconds timeout, std::function<void()> done) = 0;
  virtual void publish(const std::string& topic, std::string payload, int qos, bool retain, Done done) = 0;
  // Completes when the broker has answered SUBACK/UNSUBACK; a filter the broker refuses fails with
  // ErrorCause::Refused.
  virtual void subscribe(const std::string& filter, int qos, Done done) = 0;
  virtual void unsubscribe(const std::string& filter, Done done) = 0;
  // The broker dropped the link (not called after disconnect()).
  virtual void setConnectionLost(std::function<void(const std::string& cause)> cb) = 0;
  // Every message the broker delivers on a subscription.
  virtual void setMessageHandler(std::function<void(InboundMessage)> cb) = 0;
};

std::unique_ptr<MqttClient> makePahoClient(boost::asio::any_io_executor executor, ClientOptions options);

}  // namespace citygate::mqtt
