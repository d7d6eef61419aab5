#include "inputs/modbus/rtu_framing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace citygate::modbus {

namespace {

std::string hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xFFU);
  return buf;
}

bool isBitFunction(std::uint8_t fc) {
  return fc == 0x01 || fc == 0x02;
}

// The length the header at the start of `in` implies, for the functions a master sees answers
// of; nullopt when the function is unknown (the bytes cannot be framed), 0 when more bytes are
// needed to know.
std::optional<std::size_t> impliedLength(std::span<const std::uint8_t> in) {
  const std::uint8_t fc = in[1];
  if ((fc & 0x80U) != 0) return 5;  // unit, function | 0x80, exception code, CRC
  switch (fc) {
    case 0x01:
    case 0x02:
    case 0x03:
    case 0x04:
    case 0x17:
      if (in.size() < 3) return 0;
      return 5 + static_cast<std::size_t>(in[2]);  // unit, function, byte count, data, CRC
    case 0x05:
    case 0x06:
    case 0x0F:
    case 0x10:
      return 8;  // echo of address and value or quantity
    default:
      return std::nullopt;
  }
}

}  // namespace

std::uint8_t functionFor(pb::RegisterTable table) {
  switch (table) {
    case pb::COIL:
      return 0x01;
    case pb::DISCRETE_INPUT:
      return 0x02;
    case pb::INPUT_REGISTER:
      return 0x04;
    case pb::HOLDING_REGISTER:
    default:
      return 0x03;
  }
}

std::array<std::uint8_t, 8> encodeRtuRequest(const RtuRequest& r) {
  std::array<std::uint8_t, 8> req{r.unit,
                                  r.function,
                                  static_cast<std::uint8_t>(r.address >> 8),
                                  static_cast<std::uint8_t>(r.address),
                                  static_cast<std::uint8_t>(r.count >> 8),
                                  static_cast<std::uint8_t>(r.count),
                                  0,
                                  0};
  const std::uint16_t crc = crc16(std::span<const std::uint8_t>(req.data(), 6));
  req[6] = static_cast<std::uint8_t>(crc);
  req[7] = static_cast<std::uint8_t>(crc >> 8);
  return req;
}

std::size_t answerBytes(const RtuRequest& r) {
  return r.write ? 8 : 5 + answerDataBytes(r);
}

std::vector<std::uint8_t> encodeRtuWrite(std::uint8_t unit, const WritePdu& pdu) {
  std::vector<std::uint8_t> f;
  f.reserve(4 + pdu.data.size());
  f.push_back(unit);
  f.push_back(pdu.function);
  f.insert(f.end(), pdu.data.begin(), pdu.data.end());
  const std::uint16_t crc = crc16(f);
  f.push_back(static_cast<std::uint8_t>(crc));
  f.push_back(static_cast<std::uint8_t>(crc >> 8));
  return f;
}

std::size_t answerDataBytes(const RtuRequest& r) {
  return isBitFunction(r.function) ? (r.count + 7U) / 8U : 2U * r.count;
}

FrameCheck checkRtuFrame(std::span<const std::uint8_t> in, const RtuRequest& req) {
  FrameCheck c;
  if (in.size() < 2) return c;
  const std::uint8_t unit = in[0];
  const std::uint8_t fc = in[1];
  const auto implied = impliedLength(in);
  if (!implied) {
    c.verdict = FrameVerdict::Damaged;
    c.why = "unframeable bytes (unit " + std::to_string(unit) + ", function " + hex2(fc) + ")";
    return c;
  }
  if (*implied == 0 || in.size() < *implied) return c;  // NeedMore
  const std::size_t len = *implied;
  const bool exceptionForm = fc == (req.function | 0x80U);
  const bool oursHeader =
      unit == req.unit && (exceptionForm || (fc == req.function && (req.write || in[2] == answerDataBytes(req))));
  if (crc16(in.first(len)) != 0) {
    c.verdict = FrameVerdict::Damaged;
    c.ours = oursHeader;
    c.why = oursHeader ? "CRC error" : "CRC error in a frame from unit " + std::to_string(unit);
    return c;
  }
  c.length = len;
  if (unit != req.unit) {
    c.verdict = FrameVerdict::Foreign;
    c.why = "answer from unit " + std::to_string(unit) + " (asked unit " + std::to_string(req.unit) + ")";
    return c;
  }
  if (exceptionForm) {
    c.verdict = FrameVerdict::Exception;
    c.exception = in[2];
    return c;
  }
  if (fc != req.function) {
    c.verdict = FrameVerdict::Foreign;
    c.why = "function code " + hex2(fc) + " (asked " + hex2(req.function) + ")";
    return c;
  }
  if (req.write) {
    // An echo of another write (a late answer to an earlier one) is not this write's answer.
    if (!std::equal(req.echo.begin(), req.echo.end(), in.begin() + 2)) {
      c.verdict = FrameVerdict::Foreign;
      c.why = "the answer does not echo the write";
      return c;
    }
  } else if (in[2] != answerDataBytes(req)) {
    c.verdict = FrameVerdict::Foreign;
    c.why = "byte count " + std::to_string(in[2]) + ", expected " + std::to_string(answerDataBytes(req));
    return c;
  }
  c.verdict = FrameVerdict::Answer;
  return c;
}

void decodeRtuAnswer(std::span<const std::uint8_t> frame, const RtuRequest& req, std::span<std::uint16_t> out) {
  const bool bits = isBitFunction(req.function);
  const std::size_t n = std::min<std::size_t>(req.count, out.size());
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = bits ? static_cast<std::uint16_t>((frame[3 + i / 8] >> (i % 8)) & 1U)
                  : static_cast<std::uint16_t>((frame[3 + 2 * i] << 8) | frame[4 + 2 * i]);
  }
}

RtuTiming serialRtuTiming(std::uint32_t baud, std::uint32_t bitsPerChar) {
  RtuTiming t;
  const double charUs = 1e6 * bitsPerChar / std::max<std::uint32_t>(baud, 1);
  t.charTime = std::chrono::microseconds(std::lround(charUs));
  t.gap = std::chrono::microseconds(baud > 19200 ? 1750 : std::lround(3.5 * charUs));
  return t;
}

RtuTiming rtuOverTcpTiming() {
  RtuTiming t;
  t.gap = std::chrono::milliseconds(10);
  t.charTime = std::chrono::microseconds(0);
  return t;
}

// ---- the engine ----

RtuTransport::RtuTransport(std::unique_ptr<ByteLink> link, RtuTiming timing)
    : link_(std::move(link)), timing_(timing) {}

RtuTransport::~RtuTransport() {
  close();
}

ReadError RtuTransport::connect() {
  if (link_->isOpen()) return {};
  if (auto e = link_->open(link_->now() + std::chrono::seconds(1)); !e.ok()) return e;
  lastActivity_.reset();
  rx_.clear();
  return {};
}

void RtuTransport::close() {
  link_->close();
  rx_.clear();
}

bool RtuTransport::isOpen() const {
  return link_->isOpen();
}

std::string RtuTransport::describe() const {
  return link_->describe();
}

ReadError RtuTransport::linkFailed(ReadError e) {
  close();
  return e;
}

void RtuTransport::discardOne(std::string why, std::uint8_t unit) {
  addDiscarded(discarded_, unit);
  ++discardedInRead_;
  careful_ = true;
  lastDiscard_ = std::move(why);
}

bool RtuTransport::unsettled(std::uint8_t unit, std::uint8_t function) const {
  const auto now = link_->now();
  return std::any_of(unsettled_.begin(), unsettled_.end(), [&](const Unsettled& u) {
    return u.unit == unit && u.function == function && now - u.since < timing_.forgetAfter;
  });
}

namespace {

// The unit an intact frame at the start of `bytes` came from.
std::optional<std::uint8_t> intactFrameUnit(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 4) return std::nullopt;
  const auto len = impliedLength(bytes);
  if (!len || *len == 0 || *len > bytes.size() || crc16(bytes.first(*len)) != 0) return std::nullopt;
  return bytes[0];
}

}  // namespace

// Waits until nothing has arrived for the gap (or, in a careful exchange, the settle period),
// dropping whatever comes meanwhile. Bytes found here make the exchange careful.
ReadError RtuTransport::waitForQuiet(Clock::duration settle, std::uint8_t asked) {
  const auto start = link_->now();
  const auto limit = start + 3 * settle + timing_.gap;
  std::optional<Clock::time_point> burstAt;  // the last bytes dropped here
  std::vector<std::uint8_t> burst;           // one frame per burst: bytes after a gap start another
  auto endBurst = [&] {
    if (burst.empty()) return;
    discardOne("late or unsolicited bytes before the request", intactFrameUnit(burst).value_or(asked));
    burst.clear();
  };
  for (;;) {
    const Clock::duration quiet = careful_ ? settle : Clock::duration(timing_.gap);
    const auto from = lastActivity_.value_or(start - quiet);
    const auto quietAt = from + quiet;
    const auto now = link_->now();
    scratch_.clear();
    if (auto e = link_->receive(scratch_, std::min(std::max(quietAt, now), limit)); !e.ok()) return linkFailed(e);
    const auto after = link_->now();
    if (!scratch_.empty()) {
      if (burstAt && after - *burstAt >= timing_.gap) endBurst();
      burst.insert(burst.end(), scratch_.begin(), scratch_.end());
      burstAt = after;
      lastActivity_ = after;
      careful_ = true;
      continue;
    }
    if (after >= quietAt) {
      endBurst();
      return {};
    }
    if (after >= limit) {
      endBurst();
      return ReadError{ErrorKind::BadFrame, 0, "the line did not go quiet (" + lastDiscard_ + ")"};
    }
  }
}

// Waits for bytes until `until`; returns with nothing only when it has really passed (a link may
// wake up early with nothing to read), so "nothing" always means silence until then.
ReadError RtuTransport::receiveOrSilence(std::vector<std::uint8_t>& into, Clock::time_point until) {
  const std::size_t had = into.size();
  for (;;) {
    if (auto e = link_->receive(into, until); !e.ok()) return linkFailed(e);
    if (into.size() != had || link_->now() >= until) return {};
  }
}

// Drops bytes until the line has been silent for the gap (the rest of a frame that cannot be
// framed), or the hard deadline.
ReadError RtuTransport::skipToSilence(Clock::time_point hardDeadline) {
  for (;;) {
    scratch_.clear();
    const auto now = link_->now();
    if (auto e = receiveOrSilence(scratch_, std::min(now + timing_.gap, hardDeadline)); !e.ok()) return e;
    if (scratch_.empty() || link_->now() >= hardDeadline) {
      if (!scratch_.empty()) lastActivity_ = link_->now();
      return {};
    }
    lastActivity_ = link_->now();
  }
}

ReadError RtuTransport::read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                             std::chrono::milliseconds timeout, std::span<std::uint16_t> out) {
  const RtuRequest req{unit, functionFor(table), address, count};
  const auto frame = encodeRtuRequest(req);
  return transact(req, frame, timeout, out);
}

ReadError RtuTransport::write(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address,
                              std::span<const std::uint16_t> values, std::chrono::milliseconds timeout) {
  const auto pdu = encodeWritePdu(table, address, values);
  if (!pdu) return ReadError{ErrorKind::BadFrame, 0, "not a writable request"};
  RtuRequest req{unit, pdu->function, address, static_cast<std::uint16_t>(values.size())};
  req.write = true;
  req.echo = pdu->echo();
  const auto frame = encodeRtuWrite(unit, *pdu);
  return transact(req, frame, timeout, {});
}

ReadError RtuTransport::transact(const RtuRequest& req, std::span<const std::uint8_t> frame,
                                 std::chrono::milliseconds timeout, std::span<std::uint16_t> out) {
  if (auto e = connect(); !e.ok()) return e;
  const std::uint8_t unit = req.unit;
  const auto now = link_->now();
  std::erase_if(unsettled_, [&](const Unsettled& u) { return now - u.since >= timing_.forgetAfter; });
  auto entry = std::find_if(unsettled_.begin(), unsettled_.end(),
                            [&](const Unsettled& u) { return u.unit == unit && u.function == req.function; });
  careful_ = entry != unsettled_.end();
  ReadError e = exchange(req, frame, timeout, out);
  entry = std::find_if(unsettled_.begin(), unsettled_.end(),
                       [&](const Unsettled& u) { return u.unit == unit && u.function == req.function; });
  if (e.ok() || e.kind == ErrorKind::Exception) {
    // Taken: when this exchange was careful, its answer was confirmed by a settle period.
    if (careful_ && entry != unsettled_.end()) unsettled_.erase(entry);
  } else if (entry != unsettled_.end()) {
    entry->since = link_->now();
  } else {
    // The answer may still come, late: the unit and function stay unsettled for a while.
    if (unsettled_.size() >= 1024) unsettled_.erase(unsettled_.begin());  // the oldest
    unsettled_.push_back(Unsettled{unit, req.function, link_->now()});
  }
  return e;
}

ReadError RtuTransport::exchange(const RtuRequest& req, std::span<const std::uint8_t> frame,
                                 std::chrono::milliseconds timeout, std::span<std::uint16_t> out) {
  const std::uint8_t unit = req.unit;
  const std::uint16_t count = req.count;
  const Clock::duration settle = std::clamp<Clock::duration>(timeout, timing_.gap, timing_.maxSettle);
  lastDiscard_.clear();
  discardedInRead_ = 0;

  // 1. Silence before the request.
  if (auto e = waitForQuiet(settle, unit); !e.ok()) return e;
  discardedInRead_ = 0;  // what is drained before the request does not make its answer bad

  // 2. The request. Its wire time and the answer's count on top of the timeout (a 125-register
  // answer takes 2.3 s at 1200 baud).
  if (auto e = link_->send(frame); !e.ok()) return linkFailed(e);
  const auto sentAt = link_->now();
  const auto wire = timing_.charTime * static_cast<std::int64_t>(frame.size() + answerBytes(req));
  lastActivity_ = sentAt + timing_.charTime * static_cast<std::int64_t>(frame.size());
  const auto deadline = sentAt + wire + timeout;
  // A frame that matches gets its window of silence even when it completes after the deadline,
  // as long as it completed within a settle period of it: the wait is bounded by deadline + 2
  // settle periods whatever the line does.
  const auto hardDeadline = deadline + settle;
  rx_.clear();

  // 3. The answer.
  for (;;) {
    const FrameCheck c = checkRtuFrame(rx_, req);
    switch (c.verdict) {
      case FrameVerdict::NeedMore: {
        const auto now = link_->now();
        if (now >= deadline) {
          const bool partial = !rx_.empty();
          if (partial) discardOne("incomplete answer (" + std::to_string(rx_.size()) + " bytes)", unit);
          rx_.clear();
          // The device may still answer: the next careful request's settle period counts from here.
          lastActivity_ = now;
          if (discardedInRead_ != 0) {
            return ReadError{ErrorKind::BadFrame, 0, "no matching answer: " + lastDiscard_};
          }
          return ReadError{ErrorKind::Timeout, 0, "timeout"};
        }
        const std::size_t had = rx_.size();
        if (auto e = link_->receive(rx_, deadline); !e.ok()) return linkFailed(e);
        if (rx_.size() != had) lastActivity_ = link_->now();
        continue;
      }
      case FrameVerdict::Foreign:
        discardOne(c.why, rx_[0]);
        rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(c.length));
        continue;
      case FrameVerdict::Damaged: {
        discardOne(c.why, unit);
        rx_.clear();
        if (auto e = skipToSilence(hardDeadline); !e.ok()) return e;
        if (c.ours) return ReadError{ErrorKind::BadFrame, 0, c.why};
        if (link_->now() >= deadline) return ReadError{ErrorKind::BadFrame, 0, "no matching answer: " + c.why};
        continue;
      }
      case FrameVerdict::Answer:
      case FrameVerdict::Exception:
        break;
    }
    // A frame that matches. Taken only when the line stays silent behind it.
    if (rx_.size() > c.length) {
      discardOne("ambiguous answer: another frame followed within the inter-frame gap", unit);
      rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(c.length));
      continue;
    }
    const auto frameEnd = link_->now();
    if (frameEnd >= hardDeadline) {
      discardOne("answer completed after the deadline", unit);
      rx_.clear();
      return ReadError{ErrorKind::BadFrame, 0, "no matching answer: " + lastDiscard_};
    }
    const Clock::duration window = careful_ ? settle : Clock::duration(timing_.gap);
    if (auto e = receiveOrSilence(rx_, frameEnd + window); !e.ok()) return e;
    if (rx_.size() > c.length) {
      lastActivity_ = link_->now();
      discardOne(careful_ ? "ambiguous answer: another frame followed within the settle period"
                          : "ambiguous answer: another frame followed within the inter-frame gap",
                 unit);
      rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(c.length));
      continue;
    }
    if (c.verdict == FrameVerdict::Exception) {
      rx_.clear();
      return ReadError{ErrorKind::Exception, c.exception, exceptionName(c.exception)};
    }
    if (req.write) {
      rx_.clear();
      return {};
    }
    if (out.size() < count) {
      rx_.clear();
      return ReadError{ErrorKind::BadFrame, 0, "output too small"};
    }
    decodeRtuAnswer(rx_, req, out);
    rx_.clear();
    return {};
  }
}

}  // namespace citygate::modbus
