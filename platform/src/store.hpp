// Store: the PostgreSQL seam (libpq). Two tables, created when missing (kSchema in store.cpp):
//   readings  one row per (gateway_id, epoch, seq): INSERT ... ON CONFLICT DO NOTHING makes
//             duplicates (QoS 1 redelivery, replays, refills) free, and the row keeps the
//             NGSI-LD entity (jsonb; NULL for a reading with no FIWARE model);
//   gaps      one row per gap the consumer asked a gateway to refill: open, refilled or lost.
// What a restart needs is read back from them (load()).
//
// Blocking calls, one connection, not thread-safe (the caller holds its lock). Every call returns
// false or nullopt with a message on failure; reconnect() after a lost connection. The
// connection string's password is never logged (describe() names host, port, database, user).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gap_tracker.hpp"

struct pg_conn;

namespace citygate::ingest {

struct StoredReading {
  std::uint64_t seq = 0;
  std::string sensorId;
  std::string observedAt;  // ISO 8601
  bool resent = false;
  std::string entityType;  // empty: none
  std::string entity;      // NGSI-LD JSON; empty: NULL
};

struct StreamState {
  StreamKey key;
  std::uint64_t highest = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> holes;
  std::vector<GapTracker::KnownGap> gaps;
};

class Store {
 public:
  // Connects and creates the tables when missing.
  static std::unique_ptr<Store> open(const std::string& conninfo, std::string& error);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  std::string describe() const;
  bool reconnect(std::string& error);

  // One batch in one transaction; per reading whether it was new (false: a duplicate).
  std::optional<std::vector<bool>> insert(const StreamKey& key, const std::string& bootId,
                                          const std::vector<StoredReading>& rows, std::string& error);
  bool record(const std::vector<GapEvent>& events, std::string& error);
  std::optional<std::vector<StreamState>> load(std::string& error);

 private:
  explicit Store(pg_conn* conn) : conn_(conn) {}
  bool exec(const char* sql, std::string& error);
  pg_conn* conn_;
};

}  // namespace citygate::ingest
