// The only file that includes Paho: its exceptions and snake_case stop here.
#include <mqtt/async_client.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

#include "outputs/mqtt/broker_socket.hpp"
#include "outputs/mqtt/client.hpp"
#include "outputs/mqtt/tls_probe.hpp"

namespace citygate::mqtt {
namespace {

class Listener;

// Shared with Paho's callbacks, which may outlive the client object by a little.
struct Shared {
  boost::asio::any_io_executor executor;
  std::mutex mutex;
  // Listeners Paho holds by reference until their token completes. A client destroyed with a
  // token still open (a connect in flight at shutdown) drops them uncalled: Paho can no longer
  // call them, and nothing else would free them (nor what their callbacks hold).
  std::vector<std::shared_ptr<Listener>> pending;
  std::function<void(const std::string&)> lost;
  std::function<void(InboundMessage)> message;
  bool closing = false;
};

// Paho knows tcp:// and ssl://; the config also allows mqtt:// and mqtts://.
std::string pahoUri(std::string uri) {
  if (uri.rfind("mqtt://", 0) == 0) return "tcp://" + uri.substr(7);
  if (uri.rfind("mqtts://", 0) == 0) return "ssl://" + uri.substr(8);
  return uri;
}

// Paho C's return codes, as the cause a caller acts on.
ErrorCause causeOf(int rc) {
  switch (rc) {
    case MQTTASYNC_DISCONNECTED:
      return ErrorCause::NotConnected;
    case MQTTASYNC_FAILURE:
      return ErrorCause::Unreachable;
    case MQTTASYNC_BAD_UTF8_STRING:
    case MQTTASYNC_NULL_PARAMETER:
    case MQTTASYNC_TOPICNAME_TRUNCATED:
    case MQTTASYNC_BAD_STRUCTURE:
    case MQTTASYNC_BAD_QOS:
      return ErrorCause::Invalid;
    case MQTT_BAD_SUBSCRIBE:
      return ErrorCause::Refused;
    default:
      break;
  }
  if (rc >= 1 && rc <= 5) return ErrorCause::Refused;        // MQTT 3.1.1 CONNACK return codes
  if (rc >= 0x80 && rc <= 0xA2) return ErrorCause::Refused;  // MQTT 5 reason codes
  return ErrorCause::Unspecified;
}

class Listener final : public ::mqtt::iaction_listener {
 public:
  Listener(std::shared_ptr<Shared> shared, MqttClient::Done done)
      : shared_(std::move(shared)), done_(std::move(done)) {}

  // For connects: explains a TLS failure (runs on Paho's thread, bounded).
  std::function<std::string()> probe_;
  // For connects: runs on Paho's thread when the broker accepted, before anything is published.
  std::function<void()> connected_;

  void on_success(const ::mqtt::token&) override {
    if (connected_) connected_();
    finish(Ok{});
  }
  void fail(std::string why, ErrorCause cause) { finish(Error{std::move(why), cause}); }
  // For a listener already taken out of Shared::pending whose client is gone: Paho never calls it.
  void abandon(std::string why, ErrorCause cause) {
    boost::asio::post(shared_->executor,
                      [done = std::move(done_), status = Status(Error{std::move(why), cause})]() { done(status); });
  }

  void on_failure(const ::mqtt::token& tok) override {
    std::string why = "error " + std::to_string(tok.get_return_code());
    if (tok.get_return_code() == MQTTASYNC_FAILURE) why = "connection failed";
    if (tok.get_return_code() == MQTTASYNC_DISCONNECTED) why = "not connected";
    if (tok.get_return_code() == MQTT_BAD_SUBSCRIBE) why = "subscription refused by broker";
    const int rc = tok.get_return_code();
    if (rc >= 1 && rc <= 5) {
      static const char* kConnack[] = {"",
                                       "unacceptable protocol version",
                                       "identifier rejected",
                                       "server unavailable",
                                       "bad user name or password",
                                       "not authorized"};
      why = std::string("refused by broker: ") + kConnack[rc];
    }
    if (probe_ && rc == MQTTASYNC_FAILURE) {
      const std::string tls = probe_();
      if (!tls.empty()) why += " (TLS: " + tls + ")";
    }
    finish(Error{std::move(why), causeOf(rc)});
  }

 private:
  void finish(Status status) {
    // Paho holds a reference to this listener until the token completes (Shared::pending keeps
    // it); `self` keeps it alive until the executor has run the callback.
    std::shared_ptr<Listener> self;
    {
      std::lock_guard lock(shared_->mutex);
      const auto it = std::find_if(shared_->pending.begin(), shared_->pending.end(),
                                   [this](const std::shared_ptr<Listener>& l) { return l.get() == this; });
      if (it == shared_->pending.end()) return;  // dropped at teardown, or already finished
      self = std::move(*it);
      shared_->pending.erase(it);
    }
    boost::asio::post(shared_->executor,
                      [done = std::move(done_), status = std::move(status), self]() { done(status); });
  }

 private:
  std::shared_ptr<Shared> shared_;
  MqttClient::Done done_;
};

std::string probeTlsFor(const ClientOptions& o, const std::string& uri) {
  // uri is ssl://host:port (or mqtts://); the TLS settings are the same for every server
  const HostPort hp = hostPortOf(uri);
  return probeTls(hp.host, hp.port, o.insecureSkipVerify ? std::string() : o.caFile, o.certFile, o.keyFile,
                  std::chrono::milliseconds(2000));
}

class PahoClient final : public MqttClient {
 public:
  PahoClient(boost::asio::any_io_executor executor, ClientOptions options)
      : shared_(std::make_shared<Shared>()), options_(std::move(options)) {
    shared_->executor = std::move(executor);
    makeClient(0);
  }

  ~PahoClient() override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->closing = true;
    }
    try {
      if (client_->is_connected()) client_->disconnect(0)->wait_for(std::chrono::milliseconds(500));
    } catch (const std::exception&) {  // nothing more to do at teardown
    }
    client_.reset();  // Paho's threads are done with this client: no listener is called after this
    std::vector<std::shared_ptr<Listener>> dropped;
    {
      std::lock_guard lock(shared_->mutex);
      dropped.swap(shared_->pending);
    }
  }

  // A Paho client for server `index`. Paho C's connect is asynchronous: its send thread starts a
  // non-blocking TCP connect and wakes the receive thread, which polls for writability once (at
  // once: the handshake is not done yet) and then waits in a read poll of one second before it
  // looks again; every connect after the first took about 1.05 s that way, even on loopback. A
  // fresh client, the process's only one, starts Paho's threads again after the socket exists,
  // and the connect takes the broker's answer time. So every connect after the first gets one.
  // Destroying the old client waits for Paho's threads to stop (about 0.1 s, on the executor):
  // only while the link is down, once per connect attempt, where the wait it saves is ten times longer.
  void makeClient(std::size_t index) {
    if (client_) {
      {
        std::lock_guard lock(shared_->mutex);
        shared_->closing = true;
      }
      client_.reset();  // waits for Paho's threads: none of its callbacks runs after this
      abandonPending();
    }
    ::mqtt::create_options create(options_.mqtt5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    create.set_max_buffered_messages(options_.maxQueued);
    client_ = std::make_unique<::mqtt::async_client>(pahoUri(options_.uris.at(index)), options_.clientId, create);
    auto shared = shared_;
    client_->set_connection_lost_handler([shared](const std::string& cause) {
      std::lock_guard lock(shared->mutex);
      if (shared->closing || !shared->lost) return;
      boost::asio::post(shared->executor, [cb = shared->lost, cause = cause.empty() ? std::string("connection lost")
                                                                                    : cause]() { cb(cause); });
    });
    client_->set_message_callback([shared](const ::mqtt::const_message_ptr& msg) {
      if (!msg) return;
      std::lock_guard lock(shared->mutex);
      if (shared->closing || !shared->message) return;
      InboundMessage in{msg->get_topic(), msg->get_payload_str(), msg->get_qos(), msg->is_retained()};
      boost::asio::post(shared->executor, [cb = shared->message, in = std::move(in)]() mutable { cb(std::move(in)); });
    });
  }

  // The requests of a client that is gone complete as not connected (a batch in flight is sent
  // again from the spool, as after any lost link).
  void abandonPending();

  void hold(const std::shared_ptr<Listener>& listener) {
    std::lock_guard lock(shared_->mutex);
    shared_->pending.push_back(listener);
  }

  std::size_t servers() const override { return options_.uris.size(); }

  void setWill(Will will) override { will_ = std::move(will); }

  void connect(std::size_t server, Done done) override {
    if (used_ || server != current_) makeClient(server);
    used_ = true;
    current_ = server;
    auto builder = ::mqtt::connect_options_builder();
    builder.keep_alive_interval(options_.keepalive).connect_timeout(options_.connectTimeout).automatic_reconnect(false);
    if (options_.mqtt5) {
      // A new session each time, gone when the link goes: the spool is the durable queue.
      builder.mqtt_version(MQTTVERSION_5)
          .clean_start(true)
          .properties(::mqtt::properties{::mqtt::property(::mqtt::property::SESSION_EXPIRY_INTERVAL, 0)});
    } else {
      builder.mqtt_version(MQTTVERSION_3_1_1).clean_session(true);
    }
    auto opts = builder.finalize();
    if (will_) opts.set_will_message(::mqtt::make_message(will_->topic, will_->payload, will_->qos, will_->retain));
    if (!options_.username.empty()) {
      opts.set_user_name(options_.username);
      opts.set_password(options_.password);
    }
    if (options_.tls) {
      ::mqtt::ssl_options ssl;
      if (!options_.caFile.empty()) ssl.set_trust_store(options_.caFile);
      if (!options_.certFile.empty()) ssl.set_key_store(options_.certFile);
      if (!options_.keyFile.empty()) ssl.set_private_key(options_.keyFile);
      ssl.set_enable_server_cert_auth(!options_.insecureSkipVerify);
      ssl.set_verify(!options_.insecureSkipVerify);
      // No Paho error handler: Paho C keeps a pointer into a temporary ssl_options for it and
      // crashes when OpenSSL reports an error. The reason comes from probeTls() instead.
      opts.set_ssl(std::move(ssl));
    }
    auto listener = std::make_shared<Listener>(shared_, std::move(done));
    hold(listener);
    if (options_.tls)
      listener->probe_ = [o = options_, uri = options_.uris.at(server)]() { return probeTlsFor(o, uri); };
    if (const int port = std::atoi(hostPortOf(options_.uris.at(server)).port.c_str()); port > 0 && port < 65536) {
      listener->connected_ = [port] { disableNagleTowards(static_cast<std::uint16_t>(port)); };
    }
    try {
      {
        // A session after disconnect(): its callbacks are wanted again.
        std::lock_guard lock(shared_->mutex);
        shared_->closing = false;
      }
      client_->connect(opts, nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what(), causeOf(e.get_return_code()));
    }
  }

  void disconnect(std::chrono::milliseconds timeout, std::function<void()> done) override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->closing = true;
    }
    auto listener = std::make_shared<Listener>(shared_, [done = std::move(done)](const Status&) { done(); });
    hold(listener);
    try {
      client_->disconnect(static_cast<int>(timeout.count()), nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what(), ErrorCause::NotConnected);  // not connected: nothing to close
    }
  }

  void publish(const std::string& topic, std::string payload, int qos, bool retain, Done done) override {
    auto listener = std::make_shared<Listener>(shared_, std::move(done));
    hold(listener);
    try {
      auto msg = ::mqtt::make_message(topic, std::move(payload), qos, retain);
      client_->publish(msg, nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what(), causeOf(e.get_return_code()));
    }
  }

  void subscribe(const std::string& filter, int qos, Done done) override {
    auto listener = std::make_shared<Listener>(shared_, std::move(done));
    hold(listener);
    try {
      client_->subscribe(filter, qos, nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what(), causeOf(e.get_return_code()));
    }
  }

  void unsubscribe(const std::string& filter, Done done) override {
    auto listener = std::make_shared<Listener>(shared_, std::move(done));
    hold(listener);
    try {
      client_->unsubscribe(filter, nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what(), causeOf(e.get_return_code()));
    }
  }

  void setMessageHandler(std::function<void(InboundMessage)> cb) override {
    std::lock_guard lock(shared_->mutex);
    shared_->message = std::move(cb);
  }

  void setConnectionLost(std::function<void(const std::string&)> cb) override {
    std::lock_guard lock(shared_->mutex);
    shared_->lost = std::move(cb);
  }

 private:
  std::shared_ptr<Shared> shared_;
  ClientOptions options_;
  std::optional<Will> will_;
  std::unique_ptr<::mqtt::async_client> client_;
  std::size_t current_ = 0;
  bool used_ = false;
};

void PahoClient::abandonPending() {
  std::vector<std::shared_ptr<Listener>> dropped;
  {
    std::lock_guard lock(shared_->mutex);
    dropped.swap(shared_->pending);
  }
  for (const auto& l : dropped) l->abandon("the link was replaced", ErrorCause::NotConnected);
}

}  // namespace

std::unique_ptr<MqttClient> makePahoClient(boost::asio::any_io_executor executor, ClientOptions options) {
  return std::make_unique<PahoClient>(std::move(executor), std::move(options));
}

}  // namespace citygate::mqtt
