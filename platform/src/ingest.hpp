// Ingest: what citygate-ingest does with each message, without the MQTT link (main.cpp owns
// it). A ReadingBatch is decoded, its readings mapped to NGSI-LD and stored in one transaction
// (duplicates dropped by the primary key), then the gap tracker sees the stored seqs; a
// CommandResult for one of its refills goes to the tracker; tick() returns the refill Commands to
// publish and records the gaps' changes.
//
// Thread-safe: one mutex around everything (Paho's callback thread calls onMessage, the main
// thread calls tick and summary). onMessage blocks while the database is unreachable, retrying
// with backoff until it stores the batch or stop() is called: the MQTT client then stops reading,
// so the broker, not this process, holds the backlog (no unbounded queue here). A batch given up
// at stop is not lost for good: its seqs are holes after a restart and are refilled.
#pragma once

#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "gap_tracker.hpp"
#include "options.hpp"
#include "store.hpp"

namespace spdlog {
class logger;
}

namespace citygate::ingest {

struct Outgoing {
  std::string topic;
  std::string payload;
};

struct GatewayCounts {
  std::uint64_t stored = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t resent = 0;  // readings that came in resent batches
  std::uint64_t batches = 0;
};

class Ingest {
 public:
  Ingest(const Options& opts, std::unique_ptr<Store> store, std::shared_ptr<spdlog::logger> log);

  // Rebuilds the gap state from the database (restart); false with a message on failure.
  bool restore(SteadyTime now, std::string& error);

  void onMessage(const std::string& topic, const std::string& payload);
  std::vector<Outgoing> tick(SteadyTime now);
  void summary();
  void stop() { stopping_ = true; }

  std::uint64_t badPayloads() const { return bad_; }

 private:
  void onReadings(const std::string& topicGateway, const std::string& payload);
  void onResult(const std::string& payload);
  bool withStore(std::unique_lock<std::mutex>& lock, const char* what, const std::function<bool(std::string&)>& op);
  void recordEvents();
  std::string newRequestId();

  Options opts_;
  std::unique_ptr<Store> store_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mutex_;
  GapTracker tracker_;
  std::map<std::string, GatewayCounts> counts_;
  std::atomic<std::uint64_t> bad_{0};
  std::atomic<bool> stopping_{false};
  std::ofstream ngsiOut_;
  std::vector<GapEvent> pendingEvents_;  // not yet recorded (the database was away); bounded
  std::string idPrefix_;
  std::uint64_t nextId_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace citygate::ingest
