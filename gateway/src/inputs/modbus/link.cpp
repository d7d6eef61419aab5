#include "inputs/modbus/link.hpp"

#include <fcntl.h>
#include <modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace citygate::modbus {

using Clock = ByteLink::Clock;

std::uint32_t bitsPerCharacter(const pb::SerialRtu& rtu) {
  return 1 + rtu.data_bits() + (rtu.parity() == pb::SerialRtu::NONE ? 0 : 1) + rtu.stop_bits();
}

namespace {

// Waits for `events` on `fd` until `until` (at once when it has passed). Microsecond resolution:
// t3.5 at 38400 baud and above is 1.75 ms. Returns >0 ready, 0 deadline, <0 error (errno).
int waitFor(int fd, short events, Clock::time_point until) {
  for (;;) {
    const auto left = std::max(Clock::duration::zero(), until - Clock::now());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    pollfd p{fd, events, 0};
    const int rc = ::ppoll(&p, 1, &ts, nullptr);
    if (rc < 0 && errno == EINTR) continue;
    if (rc > 0 && (p.revents & (POLLERR | POLLNVAL)) != 0 && (p.revents & events) == 0) {
      errno = EIO;
      return -1;
    }
    return rc;
  }
}

ReadError connectionError(const std::string& what, int err) {
  return ReadError{ErrorKind::Connection, 0, what + ": " + std::strerror(err)};
}

// Reads what is pending on a non-blocking fd into `out`. 0: nothing (EAGAIN); -1: error or end
// of stream (`closed` says which).
ssize_t drainFd(int fd, std::vector<std::uint8_t>& out, bool socket, bool& closed) {
  std::uint8_t tmp[512];
  ssize_t total = 0;
  closed = false;
  for (;;) {
    const ssize_t n = socket ? ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT) : ::read(fd, tmp, sizeof tmp);
    if (n > 0) {
      out.insert(out.end(), tmp, tmp + n);
      total += n;
      if (static_cast<std::size_t>(n) < sizeof tmp) return total;
      continue;
    }
    if (n == 0) {
      if (!socket) return total;  // a tty in non-blocking raw mode: nothing more
      closed = true;
      return total > 0 ? total : -1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return total;
    return total > 0 ? total : -1;
  }
}

ReadError sendAll(int fd, std::span<const std::uint8_t> bytes, bool socket, Clock::time_point until) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = socket ? ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                             : ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int rc = waitFor(fd, POLLOUT, until);
      if (rc > 0) continue;
      if (rc == 0) return ReadError{ErrorKind::Connection, 0, "send: the link did not take the request in time"};
    }
    return connectionError("send", errno);
  }
  return {};
}

ReadError receiveInto(int fd, std::vector<std::uint8_t>& out, Clock::time_point until, bool socket) {
  bool closed = false;
  ssize_t n = 0;
  if (!socket) {
    // A tty: what is pending first (a frame arrives in pieces and the framing asks again at once).
    n = drainFd(fd, out, socket, closed);
    if (n > 0) return {};
    if (n < 0) return connectionError("receive", errno);
  }
  // A socket is asked right after a request, before the answer can be there: a read first would
  // fail with EAGAIN nearly every time (a system call per request for nothing). poll() returns at
  // once when bytes (or the peer's close) are already pending, so the result is the same.
  const int rc = waitFor(fd, POLLIN, until);
  if (rc < 0) return connectionError("receive", errno);
  if (rc == 0) return {};
  n = drainFd(fd, out, socket, closed);
  if (n < 0) return closed ? ReadError{ErrorKind::Connection, 0, "closed by peer"} : connectionError("receive", errno);
  // A tty that polls readable and has nothing to read has hung up (a pty whose other end closed):
  // an error, or the caller would spin until its deadline.
  if (n == 0 && !socket) return ReadError{ErrorKind::Connection, 0, "receive: the port hung up"};
  return {};
}

class TcpLink final : public ByteLink {
 public:
  TcpLink(std::string host, std::uint32_t port, std::string kind)
      : host_(std::move(host)), port_(port), kind_(std::move(kind)) {}
  ~TcpLink() override { close(); }

  ReadError open(Clock::time_point until) override {
    if (fd_ >= 0) return {};
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(port_);
    if (const int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); rc != 0) {
      return ReadError{ErrorKind::Connection, 0, "cannot resolve " + host_ + ": " + gai_strerror(rc)};
    }
    std::string why = "no address";
    for (addrinfo* ai = res; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
      const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) {
        why = std::strerror(errno);
        continue;
      }
      int err = 0;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
          const int rc = waitFor(fd, POLLOUT, until);
          if (rc > 0) {
            socklen_t len = sizeof err;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          } else {
            err = rc == 0 ? ETIMEDOUT : errno;
          }
        }
      }
      if (err == 0) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd_ = fd;
        break;
      }
      why = std::strerror(err);
      ::close(fd);
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) return ReadError{ErrorKind::Connection, 0, "cannot connect: " + why};
    return {};
  }

  void close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool isOpen() const override { return fd_ >= 0; }

  ReadError send(std::span<const std::uint8_t> bytes) override {
    return sendAll(fd_, bytes, true, Clock::now() + std::chrono::seconds(1));
  }

  ReadError receive(std::vector<std::uint8_t>& out, Clock::time_point until) override {
    return receiveInto(fd_, out, until, true);
  }

  Clock::time_point now() const override { return Clock::now(); }

  std::string describe() const override { return kind_ + " " + host_ + ":" + std::to_string(port_); }

 private:
  std::string host_;
  std::uint32_t port_;
  std::string kind_;
  int fd_ = -1;
};

class SerialLink final : public ByteLink {
 public:
  explicit SerialLink(const pb::SerialRtu& rtu) : rtu_(rtu) {}
  ~SerialLink() override { free(); }

  ReadError open(Clock::time_point) override {
    if (fd_ >= 0) return {};
    if (ctx_ == nullptr) {
      ctx_ = modbus_new_rtu(rtu_.device().c_str(), static_cast<int>(rtu_.baud()), parityChar(),
                            static_cast<int>(rtu_.data_bits()), static_cast<int>(rtu_.stop_bits()));
      if (ctx_ == nullptr) return connectionError("cannot set up " + rtu_.device(), errno);
    }
    if (modbus_connect(ctx_) != 0) {
      return ReadError{ErrorKind::Connection, 0, "cannot open " + rtu_.device() + ": " + modbus_strerror(errno)};
    }
    if (rtu_.rs485()) {
      // Kernel RS-485 direction control where the port supports it; a pty or a plain UART
      // refuses, and the bus still works with an auto-direction transceiver.
      (void)modbus_rtu_set_serial_mode(ctx_, MODBUS_RTU_RS485);
    }
    fd_ = modbus_get_socket(ctx_);
    if (fd_ < 0) {
      modbus_close(ctx_);
      return ReadError{ErrorKind::Connection, 0, "cannot open " + rtu_.device()};
    }
    // One user of the port at a time: a bus stopped by a config apply may still be finishing its
    // transaction on it (its worker is not waited for) when the new one opens it.
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      modbus_close(ctx_);
      fd_ = -1;
      return ReadError{
          ErrorKind::Connection, 0,
          rtu_.device() + " is in use" + (err == EWOULDBLOCK ? "" : std::string(": ") + std::strerror(err))};
    }
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0) ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
    ::tcflush(fd_, TCIOFLUSH);  // nothing left over from before we opened it
    return {};
  }

  void close() override {
    if (ctx_ != nullptr && fd_ >= 0) modbus_close(ctx_);
    fd_ = -1;
  }

  bool isOpen() const override { return fd_ >= 0; }

  ReadError send(std::span<const std::uint8_t> bytes) override {
    return sendAll(fd_, bytes, false, Clock::now() + std::chrono::seconds(1));
  }

  ReadError receive(std::vector<std::uint8_t>& out, Clock::time_point until) override {
    return receiveInto(fd_, out, until, false);
  }

  Clock::time_point now() const override { return Clock::now(); }

  std::string describe() const override {
    return "rtu " + rtu_.device() + " " + std::to_string(rtu_.baud()) + " " + std::to_string(rtu_.data_bits()) +
           parityChar() + std::to_string(rtu_.stop_bits());
  }

 private:
  char parityChar() const {
    return rtu_.parity() == pb::SerialRtu::NONE ? 'N' : rtu_.parity() == pb::SerialRtu::ODD ? 'O' : 'E';
  }

  void free() {
    close();
    if (ctx_ != nullptr) modbus_free(ctx_);
    ctx_ = nullptr;
  }

  pb::SerialRtu rtu_;
  modbus_t* ctx_ = nullptr;
  int fd_ = -1;
};

}  // namespace

std::unique_ptr<ByteLink> makeTcpLink(std::string host, std::uint32_t port, std::string kind) {
  return std::make_unique<TcpLink>(std::move(host), port, std::move(kind));
}

std::unique_ptr<ByteLink> makeSerialLink(const pb::SerialRtu& rtu) {
  return std::make_unique<SerialLink>(rtu);
}

}  // namespace citygate::modbus
