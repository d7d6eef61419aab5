#include "cli/node_link.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cli/client.hpp"

namespace citygate::cli::node {

namespace {

constexpr std::uint8_t kEnd = 0xC0;
constexpr std::uint8_t kEsc = 0xDB;
constexpr std::uint8_t kEscEnd = 0xDC;
constexpr std::uint8_t kEscEsc = 0xDD;
constexpr std::size_t kHeader = 4;
constexpr std::size_t kCrc = 4;

std::uint32_t le32(std::string_view b) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<std::uint8_t>(b[static_cast<std::size_t>(i)]);
  return v;
}

speed_t speedFor(std::uint32_t baud) {
  switch (baud) {
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    case 230400:
      return B230400;
    default:
      return B0;
  }
}

}  // namespace

std::string reasonName(std::uint8_t code) {
  static const char* const kNames[] = {"none",       "bad_crc",    "truncated",    "oversize",
                                       "bad_length", "bad_escape", "unknown_type", "bad_record",
                                       "invalid",    "wrong_kind", "flash_error"};
  if (code < std::size(kNames)) return kNames[code];
  return "reason " + std::to_string(code);
}

std::uint32_t crc32(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int b = 0; b < 8; ++b) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

std::string encodeFrame(std::uint8_t type, std::uint8_t seq, std::string_view payload) {
  std::string frame;
  frame.push_back(static_cast<char>(type));
  frame.push_back(static_cast<char>(seq));
  frame.push_back(static_cast<char>(payload.size() & 0xFF));
  frame.push_back(static_cast<char>(payload.size() >> 8));
  frame.append(payload);
  const std::uint32_t crc = crc32(frame);
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>(crc >> (8 * i)));
  std::string out(1, static_cast<char>(kEnd));
  for (unsigned char c : frame) {
    if (c == kEnd) {
      out += {static_cast<char>(kEsc), static_cast<char>(kEscEnd)};
    } else if (c == kEsc) {
      out += {static_cast<char>(kEsc), static_cast<char>(kEscEsc)};
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back(static_cast<char>(kEnd));
  return out;
}

std::vector<FrameDecoder::Event> FrameDecoder::feed(std::string_view bytes) {
  std::vector<Event> events;
  for (unsigned char c : bytes) {
    if (c == kEnd) {
      if (!buffer_.empty() || escaped_ || badEscape_) events.push_back(finish());
      continue;
    }
    if (escaped_) {
      escaped_ = false;
      if (c == kEscEnd) {
        c = kEnd;
      } else if (c == kEscEsc) {
        c = kEsc;
      } else {
        badEscape_ = true;
      }
    } else if (c == kEsc) {
      escaped_ = true;
      continue;
    }
    // Bounded: a line that never sends END does not grow the buffer without end.
    if (buffer_.size() < kHeader + kMaxPayload + kCrc + 1) buffer_.push_back(static_cast<char>(c));
  }
  return events;
}

FrameDecoder::Event FrameDecoder::finish() {
  Event e;
  const std::string b = std::move(buffer_);
  const bool badEscape = badEscape_ || escaped_;
  buffer_.clear();
  escaped_ = badEscape_ = false;
  if (badEscape) {
    e.error = "bad SLIP escape";
    return e;
  }
  if (b.size() < kHeader + kCrc) {
    e.error = "frame of " + std::to_string(b.size()) + " bytes, shorter than a header and CRC";
    return e;
  }
  const std::size_t length = static_cast<std::uint8_t>(b[2]) | static_cast<std::size_t>(static_cast<std::uint8_t>(b[3]))
                                                                   << 8;
  if (length > kMaxPayload) {
    e.error = "frame announces " + std::to_string(length) + " bytes, over " + std::to_string(kMaxPayload);
    return e;
  }
  if (b.size() != kHeader + length + kCrc) {
    e.error =
        "frame of " + std::to_string(b.size()) + " bytes, its header says " + std::to_string(kHeader + length + kCrc);
    return e;
  }
  if (crc32(std::string_view(b).substr(0, kHeader + length)) != le32(std::string_view(b).substr(kHeader + length))) {
    e.error = "frame CRC does not match";
    return e;
  }
  Frame f;
  f.type = static_cast<std::uint8_t>(b[0]);
  f.seq = static_cast<std::uint8_t>(b[1]);
  f.payload = b.substr(kHeader, length);
  e.frame = std::move(f);
  return e;
}

NodeError parseError(std::string_view payload) {
  NodeError e;
  if (payload.empty()) return e;
  e.reason = static_cast<std::uint8_t>(payload[0]);
  e.text = std::string(payload.substr(1));
  return e;
}

SerialPort::~SerialPort() {
  if (fd_ >= 0) ::close(fd_);
}

bool SerialPort::open(const std::string& path, std::uint32_t baud, std::string& error, int& exitCode) {
  exitCode = kExitFailed;
  const speed_t speed = speedFor(baud);
  if (speed == B0) {
    error = "--baud " + std::to_string(baud) + " is not one of 9600, 19200, 38400, 57600, 115200, 230400";
    exitCode = kExitUsage;
    return false;
  }
  fd_ = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    const int e = errno;
    error = "cannot open " + path + ": " + std::strerror(e);
    if (e == EACCES || e == EPERM) {
      error += " (root, or a member of the port's group, e.g. dialout)";
      exitCode = kExitPermission;
    } else if (e == ENOENT) {
      exitCode = kExitNotFound;
    }
    return false;
  }
  if (::isatty(fd_) != 1) {
    error = path + " is not a serial port (not a terminal device)";
    return false;
  }
  termios tio{};
  if (::tcgetattr(fd_, &tio) != 0) {
    error = "cannot read the settings of " + path + ": " + std::strerror(errno);
    return false;
  }
  ::cfmakeraw(&tio);
  tio.c_cflag &= ~static_cast<tcflag_t>(CSTOPB | PARENB | CRTSCTS);
  tio.c_cflag |= CLOCAL | CREAD | CS8;
  tio.c_iflag &= ~static_cast<tcflag_t>(IXON | IXOFF | IXANY);
  tio.c_cc[VMIN] = 0;
  tio.c_cc[VTIME] = 0;
  ::cfsetispeed(&tio, speed);
  ::cfsetospeed(&tio, speed);
  if (::tcsetattr(fd_, TCSANOW, &tio) != 0) {
    error = "cannot set " + path + " to " + std::to_string(baud) + " baud 8N1: " + std::strerror(errno);
    return false;
  }
  ::tcflush(fd_, TCIOFLUSH);  // what an earlier session left is not our reply
  // A seq that differs from the last run's: a late reply to it is not taken for ours.
  seq_ = static_cast<std::uint8_t>(std::chrono::steady_clock::now().time_since_epoch().count() % 250 + 1);
  return true;
}

Exchange SerialPort::exchange(Type type, std::string_view payload, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  Exchange x;
  const std::uint8_t seq = seq_;
  seq_ = static_cast<std::uint8_t>(seq_ % 250 + 1);
  const std::string frame = encodeFrame(static_cast<std::uint8_t>(type), seq, payload);
  auto deadline = Clock::now() + timeout;
  for (std::size_t sent = 0; sent < frame.size();) {
    const ssize_t n = ::write(fd_, frame.data() + sent, frame.size() - sent);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      x.outcome = Exchange::Outcome::IoError;
      x.detail = std::string("write: ") + std::strerror(errno);
      return x;
    }
    if (Clock::now() >= deadline) return x;  // the line does not take our bytes: Timeout
    pollfd p{fd_, POLLOUT, 0};
    ::poll(&p, 1, 50);
  }
  ::tcdrain(fd_);
  // After a refusal of our frame (seq 0) or a damaged reply, a little longer for the real reply:
  // line noise before our frame draws a refusal of its own ahead of our answer.
  constexpr auto kGrace = std::chrono::milliseconds(300);
  FrameDecoder decoder;
  std::optional<Exchange> fallback;
  while (true) {
    if (interrupted()) {
      x.outcome = Exchange::Outcome::Interrupted;
      return x;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return fallback ? *fallback : x;
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      x.outcome = Exchange::Outcome::IoError;
      x.detail = std::string("read: ") + std::strerror(errno);
      return x;
    }
    if (n == 0) {
      // A pty whose other side is gone reads 0 (or EIO): nothing more will come.
      pollfd q{fd_, 0, 0};
      ::poll(&q, 1, 0);
      if ((q.revents & POLLHUP) != 0) return fallback ? *fallback : x;
      continue;
    }
    for (auto& e : decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)))) {
      if (!e.frame) {
        if (!fallback) {
          Exchange bad;
          bad.outcome = Exchange::Outcome::BadReply;
          bad.detail = e.error;
          fallback = bad;
          deadline = std::min(deadline, Clock::now() + kGrace);
        }
        continue;
      }
      if (e.frame->seq == seq) {
        x.outcome = Exchange::Outcome::Reply;
        x.reply = std::move(*e.frame);
        return x;
      }
      if (e.frame->seq == 0 && e.frame->type == static_cast<std::uint8_t>(Type::Error)) {
        Exchange refused;
        refused.outcome = Exchange::Outcome::FrameRefused;
        refused.reply = std::move(*e.frame);
        fallback = refused;
        deadline = std::min(deadline, Clock::now() + kGrace);
      }
    }
  }
}

}  // namespace citygate::cli::node
