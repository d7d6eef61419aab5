// The only file that includes Paho: its exceptions and snake_case stop here.
#include <mqtt/async_client.h>

#include <boost/asio/post.hpp>
#include <mutex>

#include "outputs/mqtt/client.hpp"

namespace citygate::mqtt {
namespace {

// Shared with Paho's callbacks, which may outlive the client object by a little.
struct Shared {
  boost::asio::any_io_executor executor;
  std::mutex mutex;
  std::function<void(const std::string&)> lost;
  std::string lastTlsError;
  bool closing = false;
};

class Listener final : public ::mqtt::iaction_listener {
 public:
  Listener(std::shared_ptr<Shared> shared, MqttClient::Done done) : shared_(std::move(shared)), done_(std::move(done)) {}

  void on_success(const ::mqtt::token&) override { finish(true, {}); }
  void fail(std::string why) { finish(false, std::move(why)); }

  void on_failure(const ::mqtt::token& tok) override {
    std::string why = "error " + std::to_string(tok.get_return_code());
    if (tok.get_return_code() == MQTTASYNC_FAILURE) why = "connection failed";
    if (tok.get_return_code() == -1 || tok.get_return_code() == MQTTASYNC_DISCONNECTED) why = "not connected";
    const int rc = tok.get_return_code();
    if (rc >= 1 && rc <= 5) {
      static const char* kConnack[] = {"", "unacceptable protocol version", "identifier rejected",
                                       "server unavailable", "bad user name or password", "not authorized"};
      why = std::string("refused by broker: ") + kConnack[rc];
    }
    {
      std::lock_guard lock(shared_->mutex);
      if (!shared_->lastTlsError.empty()) {
        why += " (TLS: " + shared_->lastTlsError + ")";
        shared_->lastTlsError.clear();
      }
    }
    finish(false, why);
  }

 private:
  void finish(bool ok, std::string why) {
    // Paho holds a reference to this listener until the token completes; `self` keeps it alive
    // until the executor has run the callback.
    auto self = self_;
    self_.reset();
    boost::asio::post(shared_->executor, [done = std::move(done_), ok, why = std::move(why), self]() { done(ok, why); });
  }

 public:
  std::shared_ptr<Listener> self_;

 private:
  std::shared_ptr<Shared> shared_;
  MqttClient::Done done_;
};

class PahoClient final : public MqttClient {
 public:
  PahoClient(boost::asio::any_io_executor executor, ClientOptions options)
      : shared_(std::make_shared<Shared>()), options_(std::move(options)) {
    shared_->executor = std::move(executor);
    std::string uri = options_.uri;
    if (uri.rfind("mqtt://", 0) == 0) uri = "tcp://" + uri.substr(7);
    if (uri.rfind("mqtts://", 0) == 0) uri = "ssl://" + uri.substr(8);
    client_ = std::make_unique<::mqtt::async_client>(uri, options_.clientId, nullptr);
    auto shared = shared_;
    client_->set_connection_lost_handler([shared](const std::string& cause) {
      std::lock_guard lock(shared->mutex);
      if (shared->closing || !shared->lost) return;
      boost::asio::post(shared->executor, [cb = shared->lost, cause = cause.empty() ? std::string("connection lost") : cause]() {
        cb(cause);
      });
    });
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
  }

  void connect(Done done) override {
    auto opts = ::mqtt::connect_options_builder()
                    .keep_alive_interval(options_.keepalive)
                    .connect_timeout(options_.connectTimeout)
                    .clean_session(true)
                    .automatic_reconnect(false)
                    .finalize();
    if (!options_.willTopic.empty()) {
      opts.set_will_message(::mqtt::make_message(options_.willTopic, options_.willPayload, 1, true));
    }
    if (!options_.username.empty()) {
      opts.set_user_name(options_.username);
      opts.set_password(options_.password);
    }
    if (options_.tls) {
      auto shared = shared_;
      ::mqtt::ssl_options ssl;
      if (!options_.caFile.empty()) ssl.set_trust_store(options_.caFile);
      if (!options_.certFile.empty()) ssl.set_key_store(options_.certFile);
      if (!options_.keyFile.empty()) ssl.set_private_key(options_.keyFile);
      ssl.set_enable_server_cert_auth(!options_.insecureSkipVerify);
      ssl.set_verify(!options_.insecureSkipVerify);
      ssl.set_error_handler([shared](const std::string& msg) {
        std::lock_guard lock(shared->mutex);
        shared->lastTlsError = msg;
      });
      opts.set_ssl(std::move(ssl));
    }
    auto listener = std::make_shared<Listener>(shared_, std::move(done));
    listener->self_ = listener;
    try {
      client_->connect(opts, nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what());
    }
  }

  void disconnect(std::chrono::milliseconds timeout, std::function<void()> done) override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->closing = true;
    }
    auto listener = std::make_shared<Listener>(shared_, [done = std::move(done)](bool, const std::string&) { done(); });
    listener->self_ = listener;
    try {
      client_->disconnect(static_cast<int>(timeout.count()), nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what());  // not connected: nothing to close
    }
  }

  void publish(const std::string& topic, std::string payload, int qos, bool retain, Done done) override {
    auto listener = std::make_shared<Listener>(shared_, std::move(done));
    listener->self_ = listener;
    try {
      auto msg = ::mqtt::make_message(topic, std::move(payload), qos, retain);
      client_->publish(msg, nullptr, *listener);
    } catch (const ::mqtt::exception& e) {
      listener->fail(e.what());
    }
  }

  void setConnectionLost(std::function<void(const std::string&)> cb) override {
    std::lock_guard lock(shared_->mutex);
    shared_->lost = std::move(cb);
  }

 private:
  std::shared_ptr<Shared> shared_;
  ClientOptions options_;
  std::unique_ptr<::mqtt::async_client> client_;
};

}  // namespace

std::unique_ptr<MqttClient> makePahoClient(boost::asio::any_io_executor executor, ClientOptions options) {
  return std::make_unique<PahoClient>(std::move(executor), std::move(options));
}

}  // namespace citygate::mqtt
