#include "store.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <map>

namespace citygate::ingest {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS readings (
  gateway_id  text        NOT NULL,
  epoch       text        NOT NULL,  -- ReadingBatch.epoch: a new seq space when the gateway's state is wiped
  seq         bigint      NOT NULL,
  boot_id     text        NOT NULL,
  sensor_id   text        NOT NULL,
  observed_at timestamptz,
  received_at timestamptz NOT NULL DEFAULT now(),
  resent      boolean     NOT NULL DEFAULT false,  -- first stored from a refill
  entity_type text,                                -- AirQualityObserved, TrafficFlowObserved, ParkingSpot
  entity      jsonb,                               -- NGSI-LD, normalized; NULL: no FIWARE model
  PRIMARY KEY (gateway_id, epoch, seq)
);
CREATE TABLE IF NOT EXISTS gaps (
  gateway_id  text        NOT NULL,
  epoch       text        NOT NULL,
  from_seq    bigint      NOT NULL,
  to_seq      bigint      NOT NULL,
  state       text        NOT NULL CHECK (state IN ('open', 'refilled', 'lost')),
  lost_seqs   bigint      NOT NULL DEFAULT 0,
  requests    integer     NOT NULL DEFAULT 0,
  detected_at timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (gateway_id, epoch, from_seq)
);
)sql";

constexpr const char* kInsert =
    "INSERT INTO readings (gateway_id, epoch, seq, boot_id, sensor_id, observed_at, resent, entity_type, entity) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) ON CONFLICT DO NOTHING";

struct Result {
  PGresult* r;
  explicit Result(PGresult* p) : r(p) {}
  ~Result() { PQclear(r); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  bool ok() const {
    const auto s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
};

std::string errorOf(pg_conn* c) {
  std::string e = PQerrorMessage(c);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

std::uint64_t toU64(const char* s) {
  std::uint64_t v = 0;
  std::from_chars(s, s + std::char_traits<char>::length(s), v);
  return v;
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& conninfo, std::string& error) {
  pg_conn* c = PQconnectdb(conninfo.c_str());
  if (c == nullptr) {
    error = "out of memory";
    return nullptr;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    error = errorOf(c);
    PQfinish(c);
    return nullptr;
  }
  std::unique_ptr<Store> s(new Store(c));
  if (!s->exec(kSchema, error)) return nullptr;
  return s;
}

Store::~Store() {
  PQfinish(conn_);
}

std::string Store::describe() const {
  const char* host = PQhost(conn_);
  return std::string("database '") + PQdb(conn_) + "' as '" + PQuser(conn_) + "' on " +
         (host != nullptr && *host != '\0' ? host : "the local socket") + ":" + PQport(conn_);
}

bool Store::reconnect(std::string& error) {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    error = errorOf(conn_);
    return false;
  }
  return exec(kSchema, error);
}

bool Store::exec(const char* sql, std::string& error) {
  Result r(PQexec(conn_, sql));
  if (r.ok()) return true;
  error = errorOf(conn_);
  return false;
}

std::optional<std::vector<bool>> Store::insert(const StreamKey& key, const std::string& bootId,
                                               const std::vector<StoredReading>& rows, std::string& error) {
  if (!exec("BEGIN", error)) return std::nullopt;
  std::vector<bool> fresh;
  fresh.reserve(rows.size());
  for (const auto& row : rows) {
    const std::string seq = std::to_string(row.seq);
    const char* values[9] = {key.gatewayId.c_str(),
                             key.epoch.c_str(),
                             seq.c_str(),
                             bootId.c_str(),
                             row.sensorId.c_str(),
                             row.observedAt.empty() ? nullptr : row.observedAt.c_str(),
                             row.resent ? "true" : "false",
                             row.entityType.empty() ? nullptr : row.entityType.c_str(),
                             row.entity.empty() ? nullptr : row.entity.c_str()};
    Result r(PQexecParams(conn_, kInsert, 9, nullptr, values, nullptr, nullptr, 0));
    if (!r.ok()) {
      error = errorOf(conn_);
      std::string ignored;
      exec("ROLLBACK", ignored);
      return std::nullopt;
    }
    fresh.push_back(toU64(PQcmdTuples(r.r)) == 1);
  }
  if (!exec("COMMIT", error)) return std::nullopt;
  return fresh;
}

bool Store::record(const std::vector<GapEvent>& events, std::string& error) {
  if (events.empty()) return true;
  if (!exec("BEGIN", error)) return false;
  for (const auto& e : events) {
    const std::string from = std::to_string(e.fromSeq);
    const std::string to = std::to_string(e.toSeq);
    const std::string lost = std::to_string(e.lostSeqs);
    const char* sql = nullptr;
    std::vector<const char*> v = {e.key.gatewayId.c_str(), e.key.epoch.c_str(), from.c_str()};
    switch (e.kind) {
      case GapEvent::Kind::Opened:
        sql =
            "INSERT INTO gaps (gateway_id, epoch, from_seq, to_seq, state) VALUES ($1, $2, $3, $4, 'open') "
            "ON CONFLICT (gateway_id, epoch, from_seq) DO UPDATE SET to_seq = EXCLUDED.to_seq, state = 'open', "
            "lost_seqs = 0, updated_at = now()";
        v.push_back(to.c_str());
        break;
      case GapEvent::Kind::Closed:
        sql =
            "UPDATE gaps SET state = $4, lost_seqs = $5, updated_at = now() "
            "WHERE gateway_id = $1 AND epoch = $2 AND from_seq = $3";
        v.push_back(gapStateName(e.state));
        v.push_back(lost.c_str());
        break;
      case GapEvent::Kind::Asked:
        sql =
            "UPDATE gaps SET requests = requests + 1, updated_at = now() "
            "WHERE gateway_id = $1 AND epoch = $2 AND from_seq = $3";
        break;
    }
    Result r(PQexecParams(conn_, sql, static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0));
    if (!r.ok()) {
      error = errorOf(conn_);
      std::string ignored;
      exec("ROLLBACK", ignored);
      return false;
    }
  }
  return exec("COMMIT", error);
}

std::optional<std::vector<StreamState>> Store::load(std::string& error) {
  std::map<StreamKey, StreamState> streams;
  {
    Result r(PQexec(conn_, "SELECT gateway_id, epoch, max(seq) FROM readings GROUP BY gateway_id, epoch"));
    if (!r.ok()) {
      error = errorOf(conn_);
      return std::nullopt;
    }
    for (int i = 0; i < PQntuples(r.r); ++i) {
      StreamKey k{PQgetvalue(r.r, i, 0), PQgetvalue(r.r, i, 1)};
      auto& s = streams[k];
      s.key = k;
      s.highest = toU64(PQgetvalue(r.r, i, 2));
    }
  }
  {
    // The holes below each stream's highest seq (the seq starts at 1 in every epoch).
    Result r(PQexec(conn_,
                    "SELECT gateway_id, epoch, prev + 1, seq - 1 FROM (SELECT gateway_id, epoch, seq, "
                    "lag(seq, 1, 0::bigint) OVER (PARTITION BY gateway_id, epoch ORDER BY seq) AS prev "
                    "FROM readings) t WHERE seq > prev + 1 ORDER BY gateway_id, epoch, seq"));
    if (!r.ok()) {
      error = errorOf(conn_);
      return std::nullopt;
    }
    for (int i = 0; i < PQntuples(r.r); ++i) {
      StreamKey k{PQgetvalue(r.r, i, 0), PQgetvalue(r.r, i, 1)};
      streams[k].holes.emplace_back(toU64(PQgetvalue(r.r, i, 2)), toU64(PQgetvalue(r.r, i, 3)));
    }
  }
  {
    Result r(PQexec(conn_, "SELECT gateway_id, epoch, from_seq, to_seq, state FROM gaps WHERE state <> 'refilled'"));
    if (!r.ok()) {
      error = errorOf(conn_);
      return std::nullopt;
    }
    for (int i = 0; i < PQntuples(r.r); ++i) {
      StreamKey k{PQgetvalue(r.r, i, 0), PQgetvalue(r.r, i, 1)};
      const std::string state = PQgetvalue(r.r, i, 4);
      streams[k].gaps.push_back({toU64(PQgetvalue(r.r, i, 2)), toU64(PQgetvalue(r.r, i, 3)),
                                 state == "lost" ? GapState::Lost : GapState::Open});
    }
  }
  std::vector<StreamState> out;
  for (auto& [k, s] : streams) {
    s.key = k;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace citygate::ingest
