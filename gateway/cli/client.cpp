#include "cli/client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

namespace citygate::cli {

namespace {

volatile std::sig_atomic_t gInterrupted = 0;

extern "C" void onInterrupt(int /*sig*/) {
  gInterrupted = 1;
}

int openAndConnect(const std::string& path, int& error) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = errno;
    return -1;
  }
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) {
    ::close(fd);
    error = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  while (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
    if (errno == EINTR && !gInterrupted) continue;
    error = errno;
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

void installInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() {
  return gInterrupted != 0;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

bool Client::reachable(const std::string& path) {
  int error = 0;
  const int fd = openAndConnect(path, error);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool Client::connect(ClientError& err) {
  int error = 0;
  fd_ = openAndConnect(path_, error);
  if (fd_ >= 0) return true;
  const std::string where = "cannot reach citygated at " + path_ + ": ";
  switch (error) {
    case ENOENT:
      err = {kExitNoDaemon, where + "no such file (is the service running? systemctl status citygated)"};
      break;
    case ECONNREFUSED:
      err = {kExitNoDaemon, where + "connection refused (citygated is not running; systemctl status citygated)"};
      break;
    case EACCES:
    case EPERM:
      err = {kExitPermission,
             where + "permission denied (run as root, or join group citygate: sudo usermod -aG citygate $USER)"};
      break;
    case ENOTDIR:
      err = {kExitNoDaemon, where + "a part of the path is not a directory (check --socket)"};
      break;
    default:
      err = {kExitNoDaemon, where + std::strerror(error)};
      break;
  }
  return false;
}

bool Client::send(const pb::ControlRequest& request, ClientError& err) {
  const std::string frame = control::frameMessage(request, control::kMaxRequestBytes);
  if (frame.empty()) {
    err = {kExitUsage, "the request is larger than the control protocol's 1 MiB limit"};
    return false;
  }
  std::size_t off = 0;
  while (off < frame.size()) {
    const ssize_t n = ::send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR && !gInterrupted) continue;
      err = {errno == EINTR ? kExitInterrupted : kExitFailed,
             std::string("lost the connection to citygated while sending: ") + std::strerror(errno)};
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool Client::receive(pb::ControlResponse& response, std::chrono::milliseconds timeout, ClientError& err) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Bytes already read first.
    while (!pending_.empty()) {
      const auto used =
          decoder_.feed(std::span(reinterpret_cast<const std::uint8_t*>(pending_.data()), pending_.size()));
      pending_.erase(0, used);
      if (decoder_.state() != control::FrameDecoder::State::NeedMore) break;
    }
    if (decoder_.state() == control::FrameDecoder::State::Oversize) {
      err = {kExitFailed, "citygated sent a frame of " + std::to_string(decoder_.announced()) +
                              " bytes, beyond the protocol's limit (a different citygate version?)"};
      return false;
    }
    if (decoder_.state() == control::FrameDecoder::State::Ready) {
      const auto frame = decoder_.frame();
      const bool ok = response.ParseFromArray(frame.data(), static_cast<int>(frame.size()));
      decoder_.next();
      if (!ok) {
        err = {kExitFailed, "citygated sent a response this citygatectl cannot parse (version mismatch?)"};
        return false;
      }
      return true;
    }
    if (gInterrupted) {
      err = {kExitInterrupted, "interrupted"};
      return false;
    }
    int wait = 250;  // slices: a signal that lands just before poll() is seen at the next check
    if (timeout.count() > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        err = {kExitFailed, "citygated did not answer within " + std::to_string(timeout.count() / 1000) +
                                " s (is it overloaded? journalctl -u citygated)"};
        return false;
      }
      wait = std::min(wait, static_cast<int>(left.count()));
    }
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, wait);
    if (r < 0) {
      if (errno == EINTR) {
        if (gInterrupted) {
          err = {kExitInterrupted, "interrupted"};
          return false;
        }
        continue;
      }
      err = {kExitFailed, std::string("poll: ") + std::strerror(errno)};
      return false;
    }
    if (r == 0) continue;  // the deadline check above reports it
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = {kExitFailed, std::string("lost the connection to citygated: ") + std::strerror(errno)};
      return false;
    }
    if (n == 0) {
      err = {kExitFailed, "citygated closed the connection (it is stopping, or dropped a client that read too slowly)"};
      return false;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

int exitCodeFor(const pb::ControlError& e) {
  switch (e.code()) {
    case pb::ControlError::BAD_REQUEST:
      return kExitUsage;
    case pb::ControlError::NOT_FOUND:
      return kExitNotFound;
    case pb::ControlError::INVALID_CONFIG:
      return kExitConfig;
    case pb::ControlError::BUSY:
      return kExitTempFail;
    case pb::ControlError::UNAVAILABLE:
      return kExitNoDaemon;
    default:
      return kExitFailed;
  }
}

}  // namespace citygate::cli
