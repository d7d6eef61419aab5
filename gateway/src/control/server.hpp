// ControlServer: the daemon's control socket (citygatectl's peer). A Unix stream socket at
// `control { socket }`; its directory is created 0750 when missing, the socket is 0660 and
// belongs to group `citygate` when that group exists. Everything runs on the executor with
// asynchronous operations only: a slow, stuck or hostile client costs a bounded amount of memory
// and never blocks anyone else.
//
// Per connection: frames are decoded as they arrive (control/framing.hpp); a malformed request is
// answered BAD_REQUEST and counted (and logged at most once per `logInterval`), an oversize frame
// is answered, counted and the connection closed. At most `maxInflightPerClient` requests run at
// once (BUSY beyond). Unsent responses wait in a bounded queue: a client whose `tail` stream backs
// up past `maxStreamQueueBytes`, or whose unread replies pass `maxReplyQueueBytes`, is
// disconnected and counted. Closing a connection cancels its requests (Reply::onClose).
//
// Nobody can hold the technician out: a connection without a request in progress is closed after
// `idleTimeout`, a frame must arrive whole within `frameTimeout` of its first byte, and when
// `maxClients` are connected a new client takes the place of the connection that has gone longest
// without a request in progress (told BUSY); only when every connection has a request in progress
// is the new one turned away BUSY. Unfinished frames of all connections together hold at most
// `maxPartialBytes` (their buffers grow as bytes arrive): the connection whose bytes would pass
// it is told so and closed.
//
// Requests go to a RequestHandler (control/handlers.hpp in the daemon, fakes in unit tests), which
// answers through a Reply handle, at once or later.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "control/framing.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"

namespace spdlog {
class logger;
}

namespace citygate::control {

struct ServerOptions {
  std::string path;
  std::string group = "citygate";  // socket group when it exists; empty = leave as created
  std::size_t maxClients = 32;
  std::size_t maxInflightPerClient = 4;
  std::size_t maxStreamQueueBytes = 256 * 1024;
  std::size_t maxReplyQueueBytes = 4U << 20;
  std::uint32_t maxRequestBytes = kMaxRequestBytes;
  std::chrono::milliseconds idleTimeout{30000};   // no request in progress, no frame begun
  std::chrono::milliseconds frameTimeout{10000};  // from a frame's first byte to its last
  std::size_t maxPartialBytes = 4U << 20;         // unfinished frames' buffers, all connections
  std::chrono::milliseconds logInterval{10000};   // one line at most about bad requests
};

struct ServerCounters {
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;  // over maxClients
  std::uint64_t requests = 0;
  std::uint64_t badFrames = 0;    // oversize frames (connection closed)
  std::uint64_t badRequests = 0;  // not a ControlRequest, or an invalid one
  std::uint64_t busy = 0;         // over maxInflightPerClient
  std::uint64_t slowDropped = 0;  // did not read their responses / stream
  std::uint64_t acceptErrors = 0;
  std::uint64_t truncated = 0;  // closed in the middle of a frame
  std::uint64_t evicted = 0;    // closed to make room for a new client
  std::uint64_t idleClosed = 0;
  std::uint64_t frameTimeouts = 0;  // a frame that did not arrive whole in time (slowloris)
  std::uint64_t overBudget = 0;     // closed: unfinished frames past maxPartialBytes
  std::uint64_t logsSuppressed = 0;
};

struct Peer {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

class Session;

// The reply channel of one request. Copyable; harmless after its connection is gone (send()
// returns false, alive() turns false).
class Reply {
 public:
  Reply() = default;

  // Sends `response` with this request's id. `more`: further responses follow; the request ends
  // with the first response sent without it. `stream`: a droppable stream event (tail), held to
  // the stream queue limit. False when the client is gone or was dropped.
  bool send(citygate::v1::ControlResponse response, bool more = false, bool stream = false);
  bool error(citygate::v1::ControlError::Code code, std::string message);
  bool alive() const;
  // `cancel` runs once, on the executor, if the connection closes while this request is still in
  // progress (the client went away or was dropped): it should stop the work done for it. Replaces
  // an earlier one; nothing happens when the connection is already gone (check alive()).
  void onClose(std::function<void()> cancel);
  std::uint64_t requestId() const { return id_; }
  const Peer& peer() const { return peer_; }

 private:
  friend class Session;
  Reply(std::weak_ptr<Session> session, std::uint64_t id, std::uint64_t token, Peer peer)
      : session_(std::move(session)), id_(id), token_(token), peer_(peer) {}

  std::weak_ptr<Session> session_;
  std::uint64_t id_ = 0;
  std::uint64_t token_ = 0;  // the session's handle on this request (client ids may repeat)
  Peer peer_;
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // On the executor. The request has passed checkRequest(). Answer through `reply`.
  virtual void handle(const citygate::v1::ControlRequest& request, Reply reply) = 0;
};

class ControlServer : public std::enable_shared_from_this<ControlServer> {
 public:
  // `clock` (time and timers: idle timeout, frame deadline, accept retry) must outlive the server.
  ControlServer(boost::asio::any_io_executor executor, core::Clock& clock, ServerOptions options,
                std::shared_ptr<RequestHandler> handler, std::shared_ptr<spdlog::logger> log);
  ~ControlServer();

  // Creates the directory, replaces a stale socket, binds, sets mode and group, listens. Fails
  // when another process listens on the path or the path cannot be bound.
  Status start();
  // Stops accepting, closes every connection, removes the socket file.
  void stop();

  const ServerCounters& counters() const { return counters_; }
  std::size_t clients() const { return sessions_.size(); }
  const ServerOptions& options() const { return options_; }
  // GatewayHealth.counters: control_*.
  template <typename Map>
  void fillCounters(Map& out) const {
    out["control_clients"] = sessions_.size();
    out["control_clients_accepted"] = counters_.accepted;
    out["control_clients_rejected"] = counters_.rejected;
    out["control_requests"] = counters_.requests;
    out["control_bad_frames"] = counters_.badFrames;
    out["control_bad_requests"] = counters_.badRequests;
    out["control_busy"] = counters_.busy;
    out["control_slow_clients_dropped"] = counters_.slowDropped;
    out["control_accept_errors"] = counters_.acceptErrors;
    out["control_truncated_frames"] = counters_.truncated;
    out["control_clients_evicted"] = counters_.evicted;
    out["control_idle_closed"] = counters_.idleClosed;
    out["control_frame_timeouts"] = counters_.frameTimeouts;
    out["control_over_budget"] = counters_.overBudget;
    out["control_partial_bytes"] = partialBytes_;
  }
  // Bytes held by unfinished frames of all connections now.
  std::size_t partialBytes() const { return partialBytes_; }

 private:
  friend class Session;
  using Socket = boost::asio::local::stream_protocol::socket;

  void accept();
  void onAccept(const boost::system::error_code& ec, Socket socket);
  void onAcceptRetry();
  void reject(Socket& socket);
  bool evictOne();
  void forget(std::uint64_t sessionId);
  // A malformed request, frame or client: counted by the caller, logged here at most once per
  // logInterval (with the number left unlogged since).
  void logBad(const Peer& peer, const std::string& what);

  boost::asio::any_io_executor executor_;
  core::Clock& clock_;
  ServerOptions options_;
  std::shared_ptr<RequestHandler> handler_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::unique_ptr<core::Timer> retryTimer_;
  std::map<std::uint64_t, std::weak_ptr<Session>> sessions_;
  std::uint64_t nextSessionId_ = 1;
  ServerCounters counters_;
  bool stopped_ = false;
  std::size_t partialBytes_ = 0;
  std::optional<SteadyTime> lastBadLog_;
  std::uint64_t badUnlogged_ = 0;
  dev_t socketDev_ = 0;
  ino_t socketIno_ = 0;
};

}  // namespace citygate::control
