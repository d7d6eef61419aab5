// MqttClient: the narrow seam over Paho C++ (async). Every callback is posted to the executor
// given at creation; Paho's own threads never touch pipeline state. Paho's persistence is off:
// the spool is the only durable queue, and every session starts clean.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace citygate::mqtt {

struct ClientOptions {
  std::string uri;
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
  std::string willTopic;
  std::string willPayload;
};

class MqttClient {
 public:
  using Done = std::function<void(bool ok, const std::string& error)>;

  virtual ~MqttClient() = default;

  virtual void connect(Done done) = 0;
  virtual void disconnect(std::chrono::milliseconds timeout, std::function<void()> done) = 0;
  virtual void publish(const std::string& topic, std::string payload, int qos, bool retain, Done done) = 0;
  // The broker dropped the link (not called after disconnect()).
  virtual void setConnectionLost(std::function<void(const std::string& cause)> cb) = 0;
};

std::unique_ptr<MqttClient> makePahoClient(boost::asio::any_io_executor executor, ClientOptions options);

}  // namespace citygate::mqtt
