#include "inputs/modbus/transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace citygate::modbus {

const char* errorKindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::None:
      return "ok";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::Exception:
      return "exception";
    case ErrorKind::BadFrame:
      return "bad frame";
    case ErrorKind::Connection:
      return "connection";
  }
  return "?";
}

std::string exceptionName(int code) {
  switch (code) {
    case 1:
      return "01 illegal function";
    case 2:
      return "02 illegal data address";
    case 3:
      return "03 illegal data value";
    case 4:
      return "04 server device failure";
    case 5:
      return "05 acknowledge";
    case 6:
      return "06 server device busy";
    case 7:
      return "07 negative acknowledge";
    case 8:
      return "08 memory parity error";
    case 10:
      return "0A gateway path unavailable";
    case 11:
      return "0B gateway target device failed to respond";
    default:
      return "exception " + std::to_string(code);
  }
}

std::uint16_t crc16(std::span<const std::uint8_t> data) {
  std::uint16_t crc = 0xFFFF;
  for (std::uint8_t b : data) {
    crc ^= b;
    for (int i = 0; i < 8; ++i) crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001) : crc >> 1;
  }
  return crc;
}

namespace {

std::uint8_t functionFor(pb::RegisterTable t) {
  switch (t) {
    case pb::COIL:
      return 0x01;
    case pb::DISCRETE_INPUT:
      return 0x02;
    case pb::HOLDING_REGISTER:
      return 0x03;
    case pb::INPUT_REGISTER:
      return 0x04;
    default:
      return 0x03;
  }
}

ReadError classify(int err) {
  ReadError e;
  if (err > MODBUS_ENOBASE && err <= MODBUS_ENOBASE + 11) {
    e.kind = ErrorKind::Exception;
    e.exception = err - MODBUS_ENOBASE;
    e.message = exceptionName(e.exception);
    return e;
  }
  e.message = modbus_strerror(err);
  switch (err) {
    case ETIMEDOUT:
      e.kind = ErrorKind::Timeout;
      e.message = "timeout";
      break;
    case EMBBADCRC:
    case EMBBADDATA:
    case EMBBADEXC:
    case EMBMDATA:
    case EMBBADSLAVE:
      e.kind = ErrorKind::BadFrame;
      break;
    default:
      e.kind = ErrorKind::Connection;
      break;
  }
  return e;
}

class LibmodbusTransport final : public Transport {
 public:
  explicit LibmodbusTransport(const pb::ModbusBus& bus) : bus_(bus) {}
  ~LibmodbusTransport() override { free(); }

  ReadError connect() override {
    if (open_) return {};
    if (ctx_ == nullptr) {
      if (bus_.has_tcp()) {
        const std::string port = std::to_string(bus_.tcp().port());
        ctx_ = modbus_new_tcp_pi(bus_.tcp().host().c_str(), port.c_str());
      } else {
        const auto& r = bus_.rtu();
        const char parity = r.parity() == pb::SerialRtu::NONE ? 'N' : r.parity() == pb::SerialRtu::ODD ? 'O' : 'E';
        ctx_ = modbus_new_rtu(r.device().c_str(), static_cast<int>(r.baud()), parity, static_cast<int>(r.data_bits()),
                              static_cast<int>(r.stop_bits()));
      }
      if (ctx_ == nullptr)
        return ReadError{ErrorKind::Connection, 0, std::string("cannot create context: ") + std::strerror(errno)};
      modbus_set_error_recovery(ctx_, MODBUS_ERROR_RECOVERY_NONE);
      // The byte timeout bounds a half-received frame; the response timeout is set per read.
      modbus_set_byte_timeout(ctx_, 0, 100000);
    }
    if (modbus_connect(ctx_) != 0) {
      return ReadError{ErrorKind::Connection, 0, std::string("cannot connect: ") + modbus_strerror(errno)};
    }
    if (bus_.has_rtu() && bus_.rtu().rs485()) {
      // Kernel RS-485 direction control where the port supports it; a pty or a plain UART
      // refuses, and the bus still works with an auto-direction transceiver.
      (void)modbus_rtu_set_serial_mode(ctx_, MODBUS_RTU_RS485);
    }
    open_ = true;
    return {};
  }

  void close() override {
    if (ctx_ != nullptr && open_) modbus_close(ctx_);
    open_ = false;
  }

  bool isOpen() const override { return open_; }

  ReadError read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds timeout, std::span<std::uint16_t> out) override {
    if (auto e = connect(); !e.ok()) return e;
    modbus_set_slave(ctx_, unit);
    const auto ms = timeout.count();
    modbus_set_response_timeout(ctx_, static_cast<std::uint32_t>(ms / 1000),
                                static_cast<std::uint32_t>((ms % 1000) * 1000));
    int rc = -1;
    if (table == pb::COIL || table == pb::DISCRETE_INPUT) {
      bits_.resize(count);
      rc = table == pb::COIL ? modbus_read_bits(ctx_, address, count, bits_.data())
                             : modbus_read_input_bits(ctx_, address, count, bits_.data());
      if (rc == count) {
        for (std::size_t i = 0; i < count; ++i) out[i] = bits_[i];
      }
    } else {
      rc = table == pb::INPUT_REGISTER ? modbus_read_input_registers(ctx_, address, count, out.data())
                                       : modbus_read_registers(ctx_, address, count, out.data());
    }
    if (rc == count) return {};
    if (rc >= 0) return ReadError{ErrorKind::BadFrame, 0, "short answer"};
    ReadError e = classify(errno);
    if (e.kind == ErrorKind::Connection) close();
    return e;
  }

  void flush() override {
    if (ctx_ != nullptr && open_) modbus_flush(ctx_);
  }

  std::string describe() const override {
    if (bus_.has_tcp()) return "tcp " + bus_.tcp().host() + ":" + std::to_string(bus_.tcp().port());
    const auto& r = bus_.rtu();
    const char parity = r.parity() == pb::SerialRtu::NONE ? 'N' : r.parity() == pb::SerialRtu::ODD ? 'O' : 'E';
    return "rtu " + r.device() + " " + std::to_string(r.baud()) + " " + std::to_string(r.data_bits()) + parity +
           std::to_string(r.stop_bits());
  }

 private:
  void free() {
    close();
    if (ctx_ != nullptr) modbus_free(ctx_);
    ctx_ = nullptr;
  }

  pb::ModbusBus bus_;
  modbus_t* ctx_ = nullptr;
  bool open_ = false;
  std::vector<std::uint8_t> bits_;
};

// RTU framing over a TCP stream (serial device servers). One request at a time; a frame that does
// not parse is discarded with everything pending, and the next request starts clean.
class RtuOverTcpTransport final : public Transport {
 public:
  explicit RtuOverTcpTransport(const pb::ModbusBus& bus)
      : host_(bus.rtu_over_tcp().host()), port_(bus.rtu_over_tcp().port()) {}
  ~RtuOverTcpTransport() override { close(); }

  ReadError connect() override {
    if (fd_ >= 0) return {};
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(port_);
    if (const int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); rc != 0) {
      return ReadError{ErrorKind::Connection, 0, std::string("cannot resolve ") + host_ + ": " + gai_strerror(rc)};
    }
    std::string why = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd_ = fd;
        break;
      }
      why = std::strerror(errno);
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

  ReadError read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                 std::chrono::milliseconds timeout, std::span<std::uint16_t> out) override {
    if (auto e = connect(); !e.ok()) return e;
    const std::uint8_t fc = functionFor(table);
    std::uint8_t req[8] = {unit,
                           fc,
                           static_cast<std::uint8_t>(address >> 8),
                           static_cast<std::uint8_t>(address),
                           static_cast<std::uint8_t>(count >> 8),
                           static_cast<std::uint8_t>(count),
                           0,
                           0};
    const std::uint16_t crc = crc16(std::span<const std::uint8_t>(req, 6));
    req[6] = static_cast<std::uint8_t>(crc);
    req[7] = static_cast<std::uint8_t>(crc >> 8);
    if (::send(fd_, req, sizeof req, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof req)) {
      const std::string why = std::strerror(errno);
      close();
      return ReadError{ErrorKind::Connection, 0, "send: " + why};
    }
    buf_.clear();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      ReadError err;
      const std::size_t used = parseRtuReadResponse(buf_, unit, fc, count, out, err);
      if (!err.ok()) {
        flush();
        return err;
      }
      if (used > 0) return {};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        flush();
        return ReadError{ErrorKind::Timeout, 0, "timeout"};
      }
      pollfd p{fd_, POLLIN, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) continue;
      std::uint8_t tmp[512];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) {
        close();
        return ReadError{ErrorKind::Connection, 0, n == 0 ? "closed by peer" : std::strerror(errno)};
      }
      buf_.insert(buf_.end(), tmp, tmp + n);
    }
  }

  void flush() override {
    if (fd_ < 0) return;
    std::uint8_t tmp[512];
    while (::recv(fd_, tmp, sizeof tmp, MSG_DONTWAIT) > 0) {
    }
  }

  std::string describe() const override { return "rtu-over-tcp " + host_ + ":" + std::to_string(port_); }

 private:
  std::string host_;
  std::uint32_t port_;
  int fd_ = -1;
  std::vector<std::uint8_t> buf_;
};

}  // namespace

std::size_t parseRtuReadResponse(std::span<const std::uint8_t> in, std::uint8_t unit, std::uint8_t function,
                                 std::uint16_t count, std::span<std::uint16_t> out, ReadError& err) {
  if (in.size() < 2) return 0;
  if (in[0] != unit) {
    err = ReadError{ErrorKind::BadFrame, 0, "answer from unit " + std::to_string(in[0])};
    return 0;
  }
  if (in[1] == (function | 0x80)) {
    if (in.size() < 5) return 0;
    if (crc16(in.first(5)) != 0) {
      err = ReadError{ErrorKind::BadFrame, 0, "CRC error"};
      return 0;
    }
    err = ReadError{ErrorKind::Exception, in[2], exceptionName(in[2])};
    return 0;
  }
  if (in[1] != function) {
    err = ReadError{ErrorKind::BadFrame, 0, "unexpected function code " + std::to_string(in[1])};
    return 0;
  }
  const bool bits = function == 0x01 || function == 0x02;
  const std::size_t dataBytes = bits ? (count + 7U) / 8U : 2U * count;
  if (in.size() < 3) return 0;
  if (in[2] != dataBytes) {
    err = ReadError{ErrorKind::BadFrame, 0,
                    "byte count " + std::to_string(in[2]) + ", expected " + std::to_string(dataBytes)};
    return 0;
  }
  const std::size_t total = 3 + dataBytes + 2;
  if (in.size() < total) return 0;
  if (crc16(in.first(total)) != 0) {
    err = ReadError{ErrorKind::BadFrame, 0, "CRC error"};
    return 0;
  }
  if (out.size() < count) {
    err = ReadError{ErrorKind::BadFrame, 0, "output too small"};
    return 0;
  }
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = bits ? static_cast<std::uint16_t>((in[3 + i / 8] >> (i % 8)) & 1U)
                  : static_cast<std::uint16_t>((in[3 + 2 * i] << 8) | in[4 + 2 * i]);
  }
  return total;
}

std::unique_ptr<Transport> makeTransport(const pb::ModbusBus& bus) {
  if (bus.has_rtu_over_tcp()) return std::make_unique<RtuOverTcpTransport>(bus);
  return std::make_unique<LibmodbusTransport>(bus);
}

}  // namespace citygate::modbus
