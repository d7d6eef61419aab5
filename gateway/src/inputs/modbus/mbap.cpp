#include "inputs/modbus/mbap.hpp"

#include <algorithm>
#include <cstdio>

#include "inputs/modbus/rtu_framing.hpp"

namespace citygate::modbus {

namespace {

std::string hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xFFU);
  return buf;
}

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

}  // namespace

std::array<std::uint8_t, 12> encodeMbapRequest(std::uint16_t transactionId, std::uint8_t unit, std::uint8_t function,
                                               std::uint16_t address, std::uint16_t count) {
  return {static_cast<std::uint8_t>(transactionId >> 8),
          static_cast<std::uint8_t>(transactionId),
          0,
          0,
          0,
          6,
          unit,
          function,
          static_cast<std::uint8_t>(address >> 8),
          static_cast<std::uint8_t>(address),
          static_cast<std::uint8_t>(count >> 8),
          static_cast<std::uint8_t>(count)};
}

MbapTransport::MbapTransport(std::unique_ptr<ByteLink> link) : link_(std::move(link)) {}

MbapTransport::~MbapTransport() {
  close();
}

ReadError MbapTransport::open(ByteLink::Clock::time_point until) {
  if (link_->isOpen()) return {};
  if (auto e = link_->open(until); !e.ok()) return e;
  transactionId_ = 0;
  rx_.clear();
  return {};
}

ReadError MbapTransport::connect() {
  return open(link_->now() + std::chrono::seconds(1));
}

void MbapTransport::close() {
  link_->close();
  rx_.clear();
}

bool MbapTransport::isOpen() const {
  return link_->isOpen();
}

std::string MbapTransport::describe() const {
  return link_->describe();
}

template <typename Check>
ReadError MbapTransport::transact(std::uint8_t unit, std::uint16_t tid, std::span<const std::uint8_t> frame,
                                  std::chrono::milliseconds timeout, Check&& check) {
  if (auto e = link_->send(frame); !e.ok()) {
    close();
    return e;
  }
  const auto deadline = link_->now() + timeout;
  for (;;) {
    while (rx_.size() >= kMbapHeaderBytes) {
      const std::uint16_t frameTid = be16(&rx_[0]);
      const std::uint16_t protocol = be16(&rx_[2]);
      const std::uint16_t length = be16(&rx_[4]);
      if (protocol != 0 || length < 2 || length > 254) {
        // Not an MBAP header where one must start: the stream is out of step and cannot be
        // re-framed. Start over on a new connection.
        addDiscarded(discarded_, unit);
        close();
        return ReadError{ErrorKind::BadFrame, 0,
                         "MBAP header with protocol id " + std::to_string(protocol) + " and length " +
                             std::to_string(length) + ": stream out of step, reconnecting"};
      }
      const std::size_t total = 6 + static_cast<std::size_t>(length);
      if (rx_.size() < total) break;
      if (frameTid != tid) {
        addDiscarded(discarded_, rx_[6]);  // a late answer to an earlier request: skipped
        rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(total));
        continue;
      }
      ReadError verdict = check(std::span<const std::uint8_t>(rx_.data(), total));
      // A bad answer to this request's id came from this device.
      if (verdict.kind == ErrorKind::BadFrame) addDiscarded(discarded_, unit);
      rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(total));
      return verdict;
    }
    if (link_->now() >= deadline) return ReadError{ErrorKind::Timeout, 0, "timeout"};
    if (auto e = link_->receive(rx_, deadline); !e.ok()) {
      close();
      return e;
    }
  }
}

ReadError MbapTransport::read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                              std::chrono::milliseconds timeout, std::span<std::uint16_t> out) {
  const auto start = link_->now();
  if (auto e = open(start + timeout); !e.ok()) return e;
  const RtuRequest req{unit, functionFor(table), address, count};
  const std::uint16_t tid = ++transactionId_;
  const auto frame = encodeMbapRequest(tid, unit, req.function, address, count);
  return transact(unit, tid, frame, timeout, [&](std::span<const std::uint8_t> f) -> ReadError {
    const std::uint16_t length = be16(&f[4]);
    const std::uint8_t fc = f[7];
    ReadError bad{ErrorKind::BadFrame, 0, {}};
    if (f[6] != unit) {
      bad.message = "answer from unit " + std::to_string(f[6]) + " (asked unit " + std::to_string(unit) + ")";
    } else if (fc == (req.function | 0x80U)) {
      if (length == 3) return ReadError{ErrorKind::Exception, f[8], exceptionName(f[8])};
      bad.message = "exception frame of length " + std::to_string(length);
    } else if (fc != req.function) {
      bad.message = "function code " + hex2(fc) + " (asked " + hex2(req.function) + ")";
    } else if (length < 3 || f[8] != answerDataBytes(req)) {
      bad.message = length < 3
                        ? "answer without data"
                        : "byte count " + std::to_string(f[8]) + ", expected " + std::to_string(answerDataBytes(req));
    } else if (length != 3 + answerDataBytes(req)) {
      bad.message = "length " + std::to_string(length) + " does not match byte count " + std::to_string(f[8]);
    } else if (out.size() < count) {
      bad.message = "output too small";
    } else {
      // decodeRtuAnswer reads data from offset 3 of an RTU frame: unit, function, byte count.
      decodeRtuAnswer(f.subspan(6), req, out);
      return {};
    }
    return bad;
  });
}

ReadError MbapTransport::write(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address,
                               std::span<const std::uint16_t> values, std::chrono::milliseconds timeout) {
  const auto pdu = encodeWritePdu(table, address, values);
  if (!pdu) return ReadError{ErrorKind::BadFrame, 0, "not a writable request"};
  const auto start = link_->now();
  if (auto e = open(start + timeout); !e.ok()) return e;
  const std::uint16_t tid = ++transactionId_;
  const std::uint8_t function = pdu->function;
  const auto echo = pdu->echo();
  std::vector<std::uint8_t> frame{static_cast<std::uint8_t>(tid >> 8), static_cast<std::uint8_t>(tid), 0, 0};
  const std::size_t length = 2 + pdu->data.size();
  frame.push_back(static_cast<std::uint8_t>(length >> 8));
  frame.push_back(static_cast<std::uint8_t>(length));
  frame.push_back(unit);
  frame.push_back(function);
  frame.insert(frame.end(), pdu->data.begin(), pdu->data.end());
  return transact(unit, tid, frame, timeout, [&](std::span<const std::uint8_t> f) -> ReadError {
    const std::uint16_t len = be16(&f[4]);
    if (f[6] == unit && f[7] == (function | 0x80U) && len == 3) {
      return ReadError{ErrorKind::Exception, f[8], exceptionName(f[8])};
    }
    if (f[6] == unit && f[7] == function && len == 6 && std::equal(echo.begin(), echo.end(), f.begin() + 8)) {
      return {};
    }
    return ReadError{ErrorKind::BadFrame, 0, "the answer does not echo the write (function " + hex2(f[7]) + ")"};
  });
}

}  // namespace citygate::modbus
