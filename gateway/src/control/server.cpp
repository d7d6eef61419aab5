#include "control/server.hpp"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace citygate::control {

namespace pb = citygate::v1;
using boost::asio::local::stream_protocol;

// ---- one connection -----------------------------------------------------------------------------

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<ControlServer> server, ControlServer::Socket socket, std::uint64_t id)
      : server_(std::move(server)),
        socket_(std::move(socket)),
        id_(id),
        decoder_(server_->options_.maxRequestBytes),
        timer_(server_->clock_.makeTimer()),
        quietSince_(server_->clock_.steadyNow()) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer_.pid = cred.pid;
      peer_.uid = cred.uid;
      peer_.gid = cred.gid;
    }
  }

  void start() {
    read();
    updateDeadline();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_->cancel();
    // The queue stays until a write in progress completes (its buffers point into it).
    if (!writing_) {
      queue_.clear();
      queuedBytes_ = 0;
    }
    decoder_.reset();  // lets go of a partial frame
    account();
    active_.clear();
    server_->forget(id_);
    // The requests still in progress learn that nobody waits for them any more.
    auto hooks = std::move(cancelHooks_);
    cancelHooks_.clear();
    for (auto& [token, cancel] : hooks) cancel();
  }

  // Closed to make room for a new client: told why in one small frame written without waiting
  // (the connection has nothing else queued), then closed.
  void evict(const std::string& why) {
    boost::system::error_code ec;
    const std::string frame = frameMessage(errorResponse(0, pb::ControlError::BUSY, why), kMaxResponseBytes);
    socket_.non_blocking(true, ec);
    if (!ec) socket_.write_some(boost::asio::buffer(frame), ec);
    close();
  }

  bool closed() const { return closed_; }
  // Nothing in progress and nothing being written: may make room for a new client.
  bool evictable() const { return !closed_ && active_.empty() && !writing_ && !closeWhenWritten_; }
  SteadyTime quietSince() const { return quietSince_; }

  bool send(std::uint64_t token, pb::ControlResponse&& response, bool more, bool stream) {
    if (closed_ || !active_.contains(token)) return false;
    response.set_more(more);
    std::string frame = frameMessage(response, kMaxResponseBytes);
    if (frame.empty()) {
      frame = frameMessage(errorResponse(response.id(), pb::ControlError::INTERNAL,
                                         "the response is larger than the protocol's 16 MiB limit"),
                           kMaxResponseBytes);
      more = false;
    }
    if (!more) finish(token);
    return enqueue(std::move(frame), stream);
  }

  void setCancel(std::uint64_t token, std::function<void()> cancel) {
    if (closed_ || !active_.contains(token)) return;
    cancelHooks_[token] = std::move(cancel);
  }

 private:
  enum class Deadline : std::uint8_t { None, Idle, Frame, Linger };
  // How long a refused connection's last words may take to leave (a client that reads nothing
  // does not keep its place).
  static constexpr std::chrono::seconds kLinger{2};

  void finish(std::uint64_t token) {
    active_.erase(token);
    cancelHooks_.erase(token);
    if (active_.empty()) {
      quietSince_ = server_->clock_.steadyNow();
      updateDeadline();
    }
  }

  bool enqueue(std::string frame, bool stream) {
    const auto& o = server_->options_;
    const std::size_t after = queuedBytes_ + frame.size();
    const bool overflow = stream ? after > o.maxStreamQueueBytes : (!queue_.empty() && after > o.maxReplyQueueBytes);
    if (overflow) {
      ++server_->counters_.slowDropped;
      server_->log_->warn("client pid {} does not read its {}: {} bytes unsent; disconnected", peer_.pid,
                          stream ? "stream" : "replies", queuedBytes_);
      close();
      return false;
    }
    queuedBytes_ = after;
    queue_.push_back(std::move(frame));
    if (!writing_) write();
    return true;
  }

  // Everything queued goes out in one gathered write (up to kMaxGather frames), so a burst of
  // events drains at the kernel's pace, not one frame per executor turn.
  void write() {
    writing_ = true;
    gather_.clear();
    for (std::size_t i = 0; i < queue_.size() && i < kMaxGather; ++i)
      gather_.emplace_back(boost::asio::buffer(queue_[i]));
    boost::asio::async_write(socket_, gather_, std::bind_front(&Session::onWrite, shared_from_this()));
  }

  void onWrite(const boost::system::error_code& ec, std::size_t /*n*/) {
    writing_ = false;
    if (closed_) {
      queue_.clear();
      queuedBytes_ = 0;
      gather_.clear();
      return;
    }
    if (ec) {
      close();
      return;
    }
    for (std::size_t i = 0; i < gather_.size(); ++i) {
      queuedBytes_ -= queue_.front().size();
      queue_.pop_front();
    }
    gather_.clear();
    if (!queue_.empty()) {
      write();
    } else if (closeWhenWritten_) {
      close();
    }
  }

  void read() {
    socket_.async_read_some(boost::asio::buffer(buffer_), std::bind_front(&Session::onRead, shared_from_this()));
  }

  void onRead(const boost::system::error_code& ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      if (decoder_.pending() > 0) ++server_->counters_.truncated;
      close();  // EOF or error: the client is gone, and with it its requests
      return;
    }
    std::span<const std::uint8_t> in(buffer_.data(), n);
    while (!in.empty() && !closed_ && !closeWhenWritten_) {
      if (decoder_.pending() == 0) frameStart_ = server_->clock_.steadyNow();
      in = in.subspan(decoder_.feed(in));
      if (!account()) return;
      if (decoder_.state() == FrameDecoder::State::Ready) {
        dispatch(decoder_.frame());
        decoder_.next();
        account();
      } else if (decoder_.state() == FrameDecoder::State::Oversize) {
        ++server_->counters_.badFrames;
        server_->logBad(peer_, "a frame of " + std::to_string(decoder_.announced()) + " bytes");
        refuse("frame of " + std::to_string(decoder_.announced()) + " bytes is larger than the " +
               std::to_string(server_->options_.maxRequestBytes) + "-byte limit; closing");
        return;
      }
    }
    if (!closed_ && !closeWhenWritten_) {
      updateDeadline();
      read();
    }
  }

  // Tells the client why and closes the connection once that is written (no more reading).
  void refuse(std::string why) {
    const std::uint64_t token = nextToken_++;
    active_.insert(token);
    send(token, errorResponse(0, pb::ControlError::BAD_REQUEST, std::move(why)), false, false);
    closeWhenWritten_ = true;
    if (!writing_ && !closed_) {
      close();
      return;
    }
    if (closed_) return;
    armed_ = Deadline::Linger;
    ++deadlineGeneration_;
    timer_->start(kLinger, std::bind_front(&Session::onDeadline, shared_from_this(), deadlineGeneration_));
  }

  // Keeps the server's total of unfinished frames' buffers up to date; false (and the connection
  // refused) when this connection's bytes took it past the budget.
  bool account() {
    const std::size_t now = decoder_.held();
    server_->partialBytes_ = server_->partialBytes_ - held_ + now;
    const bool grew = now > held_;
    held_ = now;
    if (!grew || closed_ || server_->partialBytes_ <= server_->options_.maxPartialBytes) return true;
    ++server_->counters_.overBudget;
    const std::size_t total = server_->partialBytes_;
    server_->logBad(peer_, "unfinished requests past the " + std::to_string(server_->options_.maxPartialBytes) +
                               "-byte budget of all connections");
    decoder_.reset();
    account();
    refuse("citygated holds " + std::to_string(total) + " bytes of unfinished requests (all clients together may " +
           "hold " + std::to_string(server_->options_.maxPartialBytes) + "); this one is dropped; closing");
    return false;
  }

  // One timer per connection, armed for whatever ends it next: the idle timeout (nothing in
  // progress, no frame begun) or the frame deadline (a frame begun); nothing while a request is
  // in progress and no frame is begun.
  void updateDeadline() {
    if (closed_ || closeWhenWritten_) return;
    const auto& o = server_->options_;
    Deadline kind = Deadline::None;
    SteadyTime at{};
    if (decoder_.pending() > 0) {
      kind = Deadline::Frame;
      at = frameStart_ + o.frameTimeout;
    } else if (active_.empty()) {
      kind = Deadline::Idle;
      at = quietSince_ + o.idleTimeout;
    }
    if (kind == armed_ && (kind == Deadline::None || at == armedAt_)) return;
    armed_ = kind;
    armedAt_ = at;
    ++deadlineGeneration_;
    if (kind == Deadline::None) {
      timer_->cancel();
      return;
    }
    timer_->start(at - server_->clock_.steadyNow(),
                  std::bind_front(&Session::onDeadline, shared_from_this(), deadlineGeneration_));
  }

  void onDeadline(std::uint64_t generation) {
    if (closed_ || generation != deadlineGeneration_) return;
    if (armed_ == Deadline::Frame) {
      ++server_->counters_.frameTimeouts;
      server_->logBad(peer_, "a frame not complete " + std::to_string(server_->options_.frameTimeout.count()) +
                                 " ms after its first byte");
      refuse("no complete request within " + std::to_string(server_->options_.frameTimeout.count()) +
             " ms of its first byte; closing");
    } else if (armed_ == Deadline::Idle) {
      ++server_->counters_.idleClosed;
      close();
    } else if (armed_ == Deadline::Linger) {
      close();
    }
  }

  void dispatch(std::string_view frame) {
    ++server_->counters_.requests;
    pb::ControlRequest request;
    std::string error;
    const std::uint64_t token = nextToken_++;
    active_.insert(token);
    if (!parseRequest(frame, request, error) || !(error = checkRequest(request)).empty()) {
      ++server_->counters_.badRequests;
      server_->logBad(peer_, error);
      send(token, errorResponse(request.id(), pb::ControlError::BAD_REQUEST, error), false, false);
      return;
    }
    if (active_.size() > server_->options_.maxInflightPerClient) {
      ++server_->counters_.busy;
      send(token,
           errorResponse(request.id(), pb::ControlError::BUSY,
                         std::to_string(server_->options_.maxInflightPerClient) +
                             " requests already in progress on this connection"),
           false, false);
      return;
    }
    server_->handler_->handle(request, Reply(weak_from_this(), request.id(), token, peer_));
  }

  std::shared_ptr<ControlServer> server_;
  ControlServer::Socket socket_;
  std::uint64_t id_;
  Peer peer_;
  FrameDecoder decoder_;
  std::size_t held_ = 0;  // decoder_.held() as counted in the server's partialBytes_
  std::array<std::uint8_t, 16384> buffer_{};
  static constexpr std::size_t kMaxGather = 64;
  std::deque<std::string> queue_;
  std::vector<boost::asio::const_buffer> gather_;  // the frames of the write in progress
  std::size_t queuedBytes_ = 0;
  std::set<std::uint64_t> active_;  // requests not finished yet (bounded by maxInflightPerClient + 1)
  std::map<std::uint64_t, std::function<void()>> cancelHooks_;  // of requests in active_
  std::uint64_t nextToken_ = 1;
  std::unique_ptr<core::Timer> timer_;
  Deadline armed_ = Deadline::None;
  SteadyTime armedAt_{};
  std::uint64_t deadlineGeneration_ = 0;
  SteadyTime quietSince_;  // since when no request has been in progress
  SteadyTime frameStart_{};
  bool writing_ = false;
  bool closed_ = false;
  bool closeWhenWritten_ = false;
};

// ---- Reply ------------------------------------------------------------------------------------------

bool Reply::send(pb::ControlResponse response, bool more, bool stream) {
  auto s = session_.lock();
  if (!s) return false;
  response.set_id(id_);
  return s->send(token_, std::move(response), more, stream);
}

bool Reply::error(pb::ControlError::Code code, std::string message) {
  return send(errorResponse(id_, code, std::move(message)));
}

bool Reply::alive() const {
  auto s = session_.lock();
  return s && !s->closed();
}

void Reply::onClose(std::function<void()> cancel) {
  if (auto s = session_.lock()) s->setCancel(token_, std::move(cancel));
}

// ---- the listening socket -------------------------------------------------------------------------

namespace {

Status makeDirs(const std::string& dir, mode_t mode, gid_t gid) {
  if (dir.empty()) return Ok{};
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string cur = dir.substr(0, i);
    if (::mkdir(cur.c_str(), mode) == 0) {
      ::chmod(cur.c_str(), mode);  // the umask does not narrow what we asked for
      if (gid != static_cast<gid_t>(-1) && ::chown(cur.c_str(), static_cast<uid_t>(-1), gid) != 0) {
        // Not fatal: the directory keeps the daemon's group.
      }
    } else if (errno != EEXIST) {
      return Error{"cannot create " + cur + ": " + std::strerror(errno)};
    }
  }
  return Ok{};
}

std::optional<gid_t> lookupGroup(const std::string& name) {
  if (name.empty()) return std::nullopt;
  group gr{};
  group* result = nullptr;
  std::vector<char> buf(16384);
  if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result) != 0 || result == nullptr) return std::nullopt;
  return gr.gr_gid;
}

}  // namespace

ControlServer::ControlServer(boost::asio::any_io_executor executor, core::Clock& clock, ServerOptions options,
                             std::shared_ptr<RequestHandler> handler, std::shared_ptr<spdlog::logger> log)
    : executor_(executor),
      clock_(clock),
      options_(std::move(options)),
      handler_(std::move(handler)),
      log_(std::move(log)),
      acceptor_(executor),
      retryTimer_(clock_.makeTimer()) {}

ControlServer::~ControlServer() = default;

Status ControlServer::start() {
  const std::string& path = options_.path;
  if (path.empty()) return Error{"control socket: no path"};
  if (path.size() >= sizeof(sockaddr_un::sun_path)) return Error{"control socket path is too long: " + path};
  const auto gid = lookupGroup(options_.group);
  const auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto st = makeDirs(path.substr(0, slash), 0750, gid.value_or(static_cast<gid_t>(-1))); !st) {
      return Error{"control socket: " + st.error()};
    }
  }

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error{"control socket: " + path + " exists and is not a socket"};
    // A socket file: another daemon's, or left behind by a crash. Only a live listener keeps it.
    stream_protocol::socket probe(executor_);
    boost::system::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) return Error{"control socket: another process listens on " + path + " (is citygated already running?)"};
    if (::unlink(path.c_str()) != 0) {
      return Error{"control socket: cannot remove the stale " + path + ": " + std::strerror(errno)};
    }
    log_->info("removed a stale control socket {}", path);
  }

  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(path), ec);
  if (ec) return Error{"control socket: cannot bind " + path + ": " + ec.message()};
  if (::chmod(path.c_str(), 0660) != 0) {
    return Error{"control socket: cannot set mode 0660 on " + path + ": " + std::strerror(errno)};
  }
  if (::stat(path.c_str(), &st) == 0) {
    socketDev_ = st.st_dev;
    socketIno_ = st.st_ino;
    // Only when needed: under the systemd unit the daemon's own group is already `citygate`
    // (and chown is filtered there).
    if (gid && st.st_gid != *gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      log_->warn("control socket {}: cannot give it to group '{}': {}", path, options_.group, std::strerror(errno));
    }
  }
  acceptor_.listen(static_cast<int>(options_.maxClients), ec);
  if (ec) return Error{"control socket: cannot listen on " + path + ": " + ec.message()};
  log_->info("control socket {}", path);
  accept();
  return Ok{};
}

void ControlServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retryTimer_->cancel();
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (auto& [id, weak] : sessions) {
    if (auto s = weak.lock()) s->close();
  }
  struct stat st {};
  if (::lstat(options_.path.c_str(), &st) == 0 && st.st_dev == socketDev_ && st.st_ino == socketIno_) {
    ::unlink(options_.path.c_str());
  }
}

void ControlServer::accept() {
  acceptor_.async_accept(std::bind_front(&ControlServer::onAccept, shared_from_this()));
}

void ControlServer::onAccept(const boost::system::error_code& ec, Socket socket) {
  if (stopped_ || ec == boost::asio::error::operation_aborted) return;
  if (ec) {
    // EMFILE and friends: wait a little instead of spinning on the error.
    ++counters_.acceptErrors;
    if (counters_.acceptErrors == 1 || counters_.acceptErrors % 100 == 0) {
      log_->warn("control socket: accept failed: {} ({} so far)", ec.message(), counters_.acceptErrors);
    }
    retryTimer_->start(std::chrono::milliseconds(100),
                       std::bind_front(&ControlServer::onAcceptRetry, shared_from_this()));
    return;
  }
  if (sessions_.size() >= options_.maxClients && !evictOne()) {
    ++counters_.rejected;
    reject(socket);
  } else {
    ++counters_.accepted;
    const std::uint64_t id = nextSessionId_++;
    auto session = std::make_shared<Session>(shared_from_this(), std::move(socket), id);
    sessions_.emplace(id, session);
    session->start();
  }
  accept();
}

void ControlServer::onAcceptRetry() {
  if (stopped_) return;
  accept();
}

void ControlServer::reject(Socket& socket) {
  // One small frame into an empty socket buffer: a non-blocking write that cannot block.
  const std::string frame = frameMessage(
      errorResponse(0, pb::ControlError::BUSY,
                    "citygated serves " + std::to_string(options_.maxClients) + " clients at once; try again"),
      kMaxResponseBytes);
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  if (!ec) socket.write_some(boost::asio::buffer(frame), ec);
  socket.close(ec);
}

// The connection that has gone longest without a request in progress makes room: idle ones and
// slow senders go before anyone who waits for an answer or follows a stream.
bool ControlServer::evictOne() {
  std::shared_ptr<Session> victim;
  for (auto& [id, weak] : sessions_) {
    auto s = weak.lock();
    if (!s || !s->evictable()) continue;
    if (!victim || s->quietSince() < victim->quietSince()) victim = std::move(s);
  }
  if (!victim) return false;
  ++counters_.evicted;
  victim->evict("closed to make room for another client: citygated serves " + std::to_string(options_.maxClients) +
                " at once, and this connection had gone longest without a request");
  return true;
}

void ControlServer::forget(std::uint64_t sessionId) {
  sessions_.erase(sessionId);
}

void ControlServer::logBad(const Peer& peer, const std::string& what) {
  const auto now = clock_.steadyNow();
  if (lastBadLog_ && now - *lastBadLog_ < options_.logInterval) {
    ++badUnlogged_;
    ++counters_.logsSuppressed;
    return;
  }
  lastBadLog_ = now;
  if (badUnlogged_ > 0) {
    log_->warn("control client uid {} pid {}: {} ({} more since the last such line; counters: control_bad_*)", peer.uid,
               peer.pid, what, badUnlogged_);
  } else {
    log_->warn("control client uid {} pid {}: {}", peer.uid, peer.pid, what);
  }
  badUnlogged_ = 0;
}

}  // namespace citygate::control
