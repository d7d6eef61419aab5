// ScriptedLink: a ByteLink on a virtual clock, for the framing engines' unit tests and the
// modbus_rtu_framing fuzz target. The test scripts what arrives and when (or plugs in a scripted
// device that answers each request); every request the engine sends is recorded with its time.
// receive() delivers the next chunk when it is due by the deadline (advancing the clock to it),
// or advances the clock to the deadline: waiting costs no real time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "inputs/modbus/link.hpp"

namespace citygate::modbus::testing {

using Clock = ByteLink::Clock;

struct Chunk {
  Clock::time_point at;  // when it arrived (pending) or was taken by the engine (delivered)
  std::vector<std::uint8_t> bytes;
  Clock::time_point due;  // when the script had it arrive
};

struct LinkScript {
  Clock::time_point now = Clock::time_point(std::chrono::hours(1));  // the virtual clock's origin
  std::vector<Chunk> pending;                                        // kept in time order
  std::vector<Chunk> sent;                                           // every request, when it went
  std::vector<Chunk> delivered;                                      // every chunk the engine took
  bool open = false;
  int opens = 0;
  bool failOpen = false;
  // A scripted device: called with every request just sent (at `now`); schedules its answers.
  std::function<void(LinkScript&, const std::vector<std::uint8_t>&)> device;

  void at(Clock::time_point when, std::vector<std::uint8_t> bytes) {
    auto it = std::upper_bound(pending.begin(), pending.end(), when,
                               [](Clock::time_point t, const Chunk& c) { return t < c.at; });
    pending.insert(it, Chunk{when, std::move(bytes), when});
  }
  void after(Clock::duration d, std::vector<std::uint8_t> bytes) { at(now + d, std::move(bytes)); }
  // Jumps the clock (time passing between polls); what is due meanwhile waits in the "kernel".
  void advanceTo(Clock::time_point t) { now = std::max(now, t); }
  std::chrono::milliseconds elapsedSinceOrigin() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - Clock::time_point(std::chrono::hours(1)));
  }
};

class ScriptedLink final : public ByteLink {
 public:
  explicit ScriptedLink(std::shared_ptr<LinkScript> s) : s_(std::move(s)) {}

  ReadError open(Clock::time_point) override {
    if (s_->failOpen) return ReadError{ErrorKind::Connection, 0, "cannot connect: scripted"};
    s_->open = true;
    ++s_->opens;
    return {};
  }
  void close() override { s_->open = false; }
  bool isOpen() const override { return s_->open; }

  ReadError send(std::span<const std::uint8_t> bytes) override {
    if (!s_->open) return ReadError{ErrorKind::Connection, 0, "send: not open"};
    std::vector<std::uint8_t> copy(bytes.begin(), bytes.end());
    s_->sent.push_back(Chunk{s_->now, copy, s_->now});
    if (s_->device) s_->device(*s_, copy);
    return {};
  }

  ReadError receive(std::vector<std::uint8_t>& out, Clock::time_point until) override {
    if (!s_->open) return ReadError{ErrorKind::Connection, 0, "receive: not open"};
    const auto limit = std::max(until, s_->now);
    if (!s_->pending.empty() && s_->pending.front().at <= limit) {
      s_->now = std::max(s_->now, s_->pending.front().at);
      // Everything due by now arrives in one read, as a kernel buffer would hand it over.
      while (!s_->pending.empty() && s_->pending.front().at <= s_->now) {
        Chunk c = std::move(s_->pending.front());
        s_->pending.erase(s_->pending.begin());
        out.insert(out.end(), c.bytes.begin(), c.bytes.end());
        c.at = s_->now;
        s_->delivered.push_back(std::move(c));
      }
      return {};
    }
    s_->now = limit;
    return {};
  }

  Clock::time_point now() const override { return s_->now; }
  std::string describe() const override { return "scripted"; }

 private:
  std::shared_ptr<LinkScript> s_;
};

// CRC-terminated RTU frame from its body.
inline std::vector<std::uint8_t> withCrc(std::vector<std::uint8_t> body) {
  const std::uint16_t c = crc16(body);
  body.push_back(static_cast<std::uint8_t>(c));
  body.push_back(static_cast<std::uint8_t>(c >> 8));
  return body;
}

// The RTU answer to a register read with the given values.
inline std::vector<std::uint8_t> rtuAnswer(std::uint8_t unit, std::uint8_t function,
                                           const std::vector<std::uint16_t>& values) {
  std::vector<std::uint8_t> f{unit, function, static_cast<std::uint8_t>(2 * values.size())};
  for (auto v : values) {
    f.push_back(static_cast<std::uint8_t>(v >> 8));
    f.push_back(static_cast<std::uint8_t>(v));
  }
  return withCrc(std::move(f));
}

// The MBAP answer to a register read with the given values.
inline std::vector<std::uint8_t> mbapAnswer(std::uint16_t tid, std::uint8_t unit, std::uint8_t function,
                                            const std::vector<std::uint16_t>& values) {
  const auto len = static_cast<std::uint16_t>(3 + 2 * values.size());
  std::vector<std::uint8_t> f{
      static_cast<std::uint8_t>(tid >> 8),         static_cast<std::uint8_t>(tid), 0,    0,
      static_cast<std::uint8_t>(len >> 8),         static_cast<std::uint8_t>(len), unit, function,
      static_cast<std::uint8_t>(2 * values.size())};
  for (auto v : values) {
    f.push_back(static_cast<std::uint8_t>(v >> 8));
    f.push_back(static_cast<std::uint8_t>(v));
  }
  return f;
}

}  // namespace citygate::modbus::testing
