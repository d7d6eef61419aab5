// FakeClient: the MqttClient seam played by the test. Every call is recorded; completions stay
// pending until the test answers them, and are posted to the executor as Paho's are.
#pragma once

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "outputs/mqtt/client.hpp"
#include "support/manual_clock.hpp"

namespace citygate::mqtt::testing {

struct Published {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  MqttClient::Done done;
};

struct Subscribed {
  std::string filter;
  int qos = 0;
  MqttClient::Done done;
};

// The state the test inspects; it outlives the client, which the session owns.
struct FakeBroker {
  boost::asio::io_context* ioc = nullptr;
  std::deque<MqttClient::Done> connects;
  std::vector<Published> published;
  std::vector<Subscribed> subscribed;
  std::vector<std::string> unsubscribed;
  int disconnects = 0;
  std::function<void(const std::string&)> lost;
  std::function<void(InboundMessage)> message;

  void answerConnect(Status result) {
    auto done = std::move(connects.front());
    connects.pop_front();
    boost::asio::post(*ioc, [done = std::move(done), result = std::move(result)]() { done(result); });
  }
  void answer(const MqttClient::Done& done, Status result) {
    boost::asio::post(*ioc, [done, result = std::move(result)]() { done(result); });
  }
  void dropLink(const std::string& cause) {
    boost::asio::post(*ioc, [cb = lost, cause]() { cb(cause); });
  }
  void deliver(std::string topic, std::string payload) {
    boost::asio::post(*ioc, [cb = message, m = InboundMessage{std::move(topic), std::move(payload), 1,
                                                              false}]() mutable { cb(std::move(m)); });
  }
  std::size_t servers = 1;
  std::vector<std::size_t> connectedTo;  // the server of each connect
  std::vector<Will> wills;               // the will of each connect
  std::optional<Will> will;              // set by the client, taken by its next connect
  std::vector<std::string> subscribedFilters() const {
    std::vector<std::string> out;
    for (const auto& s : subscribed) out.push_back(s.filter);
    return out;
  }
};

class FakeClient final : public MqttClient {
 public:
  explicit FakeClient(std::shared_ptr<FakeBroker> broker) : broker_(std::move(broker)) {}

  std::size_t servers() const override { return broker_->servers; }
  void connect(std::size_t server, Done done) override {
    broker_->connectedTo.push_back(server);
    if (broker_->will) broker_->wills.push_back(*broker_->will);
    broker_->connects.push_back(std::move(done));
  }
  void setWill(Will will) override { broker_->will = std::move(will); }
  void disconnect(std::chrono::milliseconds, std::function<void()> done) override {
    ++broker_->disconnects;
    boost::asio::post(*broker_->ioc, std::move(done));
  }
  void publish(const std::string& topic, std::string payload, int qos, bool retain, Done done) override {
    broker_->published.push_back(Published{topic, std::move(payload), qos, retain, std::move(done)});
  }
  void subscribe(const std::string& filter, int qos, Done done) override {
    broker_->subscribed.push_back(Subscribed{filter, qos, std::move(done)});
  }
  void unsubscribe(const std::string& filter, Done done) override {
    broker_->unsubscribed.push_back(filter);
    broker_->answer(done, Ok{});
  }
  void setConnectionLost(std::function<void(const std::string&)> cb) override { broker_->lost = std::move(cb); }
  void setMessageHandler(std::function<void(InboundMessage)> cb) override { broker_->message = std::move(cb); }

 private:
  std::shared_ptr<FakeBroker> broker_;
};

inline std::shared_ptr<spdlog::logger> nullLogger() {
  return std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// Runs the handlers that are ready now, including timers already due (reconnect waits of 0 ms).
inline void settle(boost::asio::io_context& ioc) {
  for (int i = 0; i < 100; ++i) {
    ioc.restart();
    if (ioc.poll() == 0) {
      ioc.restart();
      if (ioc.run_one_for(std::chrono::milliseconds(1)) == 0) return;
    }
  }
}

// The same on a manual clock: also fires its timers already due (reconnect waits of 0 ms), without
// waiting in real time.
inline void settle(boost::asio::io_context& ioc, citygate::testing::ManualClock& clock) {
  for (;;) {
    ioc.restart();
    const auto ran = ioc.poll();
    if (const auto due = clock.nextDue(); due && *due <= clock.steadyNow()) {
      clock.advance(SteadyClock::duration::zero());
      continue;
    }
    if (ran == 0) return;
  }
}

}  // namespace citygate::mqtt::testing
