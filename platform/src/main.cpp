// citygate-ingest: the reference platform consumer (platform/README.md). The MQTT link lives
// here (Paho's seam); Ingest does the rest. Signals are blocked in every thread and taken by the
// main loop (sigtimedwait), which is also the refill timer's tick.
#include <mqtt/async_client.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "citygate/v1/reading.pb.h"
#include "ingest.hpp"
#include "ngsi_ld.hpp"
#include "options.hpp"
#include "store.hpp"

namespace ci = citygate::ingest;

namespace {

std::string pahoUri(const std::string& uri) {
  if (uri.rfind("mqtt://", 0) == 0) return "tcp://" + uri.substr(7);
  if (uri.rfind("mqtts://", 0) == 0) return "ssl://" + uri.substr(8);
  return uri;
}

// --map: a ReadingBatch file to NGSI-LD JSON lines, for a look at the mapping without a broker.
int mapFile(const std::string& path) {
  std::string bytes;
  if (path == "-") {
    bytes.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "citygate-ingest: cannot read '%s'\n", path.c_str());
      return 1;
    }
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  citygate::v1::ReadingBatch batch;
  if (!batch.ParseFromString(bytes)) {
    std::fprintf(stderr, "citygate-ingest: '%s' is not a citygate.v1.ReadingBatch\n", path.c_str());
    return 1;
  }
  for (const auto& r : batch.readings()) {
    if (auto e = ci::toNgsiLd(r)) std::cout << e->json << '\n';
  }
  return 0;
}

bool readPassword(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path);
  if (!in || !std::getline(in, out)) {
    error = "--password-file: cannot read '" + path + "'";
    return false;
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string error;
  const auto opts = ci::parseOptions(std::vector<std::string>(argv + 1, argv + argc), error);
  if (!opts) {
    std::fprintf(stderr, "citygate-ingest: %s\n", error.c_str());
    return 2;
  }
  if (opts->help) {
    std::fputs(ci::kUsage, stdout);
    return 0;
  }
  if (!opts->mapFile.empty()) return mapFile(opts->mapFile);

  auto log = spdlog::stderr_logger_mt("ingest");
  log->set_level(spdlog::level::from_str(opts->logLevel));
  log->flush_on(spdlog::level::trace);

  std::string password;
  if (!opts->passwordFile.empty() && !readPassword(opts->passwordFile, password, error)) {
    log->error("{}", error);
    return 2;
  }

  // Before any thread starts, so that they all inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto store = ci::Store::open(opts->database, error);
  if (!store) {
    log->error("database: cannot connect: {}", error);
    return 1;
  }
  log->info("database: {}", store->describe());
  ci::Ingest ingest(*opts, std::move(store), log);
  if (!ingest.restore(std::chrono::steady_clock::now(), error)) {
    log->error("cannot resume: {}", error);
    return 1;
  }

  mqtt::async_client client(pahoUri(opts->brokers.front()), opts->clientId, mqtt::create_options(MQTTVERSION_3_1_1));
  const std::string readings = opts->prefix + "/+/readings";
  const std::string results = opts->prefix + "/+/cmd/result";
  // Every connect subscribes again: a broker that lost its sessions has forgotten the subscription.
  client.set_connected_handler([&client, log, readings, results, id = opts->clientId](const std::string&) {
    log->info("mqtt: connected as '{}'; subscribing to {} and {}", id, readings, results);
    try {
      client.subscribe(mqtt::string_collection::create({readings, results}), mqtt::iasync_client::qos_collection{1, 1});
    } catch (const mqtt::exception& e) {
      log->error("mqtt: subscribe failed: {}", e.what());
    }
  });
  client.set_connection_lost_handler(
      [log](const std::string& cause) { log->warn("mqtt: connection lost ({}); reconnecting", cause); });
  client.set_message_callback([&ingest, log](const mqtt::const_message_ptr& m) {
    try {
      ingest.onMessage(m->get_topic(), m->to_string());
    } catch (const std::exception& e) {  // the seam: nothing escapes into Paho's thread
      log->error("a message on {} was not handled: {}", m->get_topic(), e.what());
    }
  });

  auto builder = mqtt::connect_options_builder();
  builder.mqtt_version(MQTTVERSION_3_1_1)
      .clean_session(false)  // the broker queues for us while we are away
      .keep_alive_interval(std::chrono::seconds(20))
      .connect_timeout(std::chrono::seconds(10))
      .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(20));
  if (opts->brokers.size() > 1) {
    auto servers = std::make_shared<mqtt::string_collection>();
    for (const auto& u : opts->brokers) servers->push_back(pahoUri(u));
    builder.servers(servers);
  }
  auto connOpts = builder.finalize();
  if (!opts->username.empty()) connOpts.set_user_name(opts->username);
  if (!password.empty()) connOpts.set_password(password);
  if (!opts->caFile.empty()) {
    mqtt::ssl_options ssl;
    ssl.set_trust_store(opts->caFile);
    connOpts.set_ssl(std::move(ssl));
  }
  std::string brokers;
  for (const auto& u : opts->brokers) brokers += (brokers.empty() ? "" : ", ") + u;
  log->info("mqtt: connecting to {} as '{}'{}", brokers, opts->clientId,
            opts->username.empty() ? std::string() : " (user '" + opts->username + "')");
  try {
    client.connect(connOpts);  // automatic reconnect from here on, also when this first try fails
  } catch (const mqtt::exception& e) {
    log->error("mqtt: cannot start the client: {}", e.what());
    return 1;
  }

  auto nextSummary = std::chrono::steady_clock::now() + opts->summaryInterval;
  const timespec tick{0, 100 * 1000 * 1000};
  for (;;) {
    siginfo_t info{};
    if (sigtimedwait(&signals, &info, &tick) > 0) {
      log->info("signal {}: stopping", info.si_signo);
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto& o : ingest.tick(now)) {
      try {
        client.publish(o.topic, o.payload.data(), o.payload.size(), 1, false);
      } catch (const mqtt::exception& e) {
        log->warn("mqtt: refill command not sent ({}); asked again after the answer timeout", e.what());
      }
    }
    if (now >= nextSummary) {
      ingest.summary();
      nextSummary = now + opts->summaryInterval;
    }
  }
  ingest.stop();
  try {
    client.disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(3));
  } catch (const mqtt::exception& e) {
    log->warn("mqtt: disconnect: {}", e.what());
  }
  ingest.summary();
  return 0;
}
