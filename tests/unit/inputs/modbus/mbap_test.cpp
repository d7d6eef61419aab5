// Modbus TCP (MBAP framing) on a scripted link: stale transaction ids are skipped, headers and
// answers are checked against the request.
#include "inputs/modbus/mbap.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "scripted_link.hpp"

using namespace citygate::modbus;
using namespace citygate::modbus::testing;
using namespace std::chrono_literals;

namespace {

std::uint16_t tidOf(const std::vector<std::uint8_t>& req) {
  return static_cast<std::uint16_t>((req[0] << 8) | req[1]);
}

struct Tcp {
  std::shared_ptr<LinkScript> script = std::make_shared<LinkScript>();
  std::unique_ptr<MbapTransport> transport = std::make_unique<MbapTransport>(std::make_unique<ScriptedLink>(script));

  ReadError read(std::uint8_t unit, std::uint16_t address, std::uint16_t count, std::vector<std::uint16_t>& out,
                 std::chrono::milliseconds timeout = 300ms) {
    out.assign(count, 0xFFFF);
    return transport->read(unit, citygate::v1::HOLDING_REGISTER, address, count, timeout, out);
  }
  std::uint64_t total = 0;
  std::uint64_t discarded() {
    total += totalDiscarded(transport->takeDiscarded());
    return total;
  }
};

}  // namespace

TEST_CASE("MBAP: the request carries a new transaction id each time") {
  Tcp t;
  t.script->device = [](LinkScript& s, const std::vector<std::uint8_t>& req) {
    s.after(5ms, mbapAnswer(tidOf(req), req[6], req[7], {static_cast<std::uint16_t>(tidOf(req) * 10)}));
  };
  std::vector<std::uint16_t> out;
  REQUIRE(t.read(1, 0, 1, out).ok());
  CHECK(out[0] == 10);
  REQUIRE(t.read(1, 0, 1, out).ok());
  CHECK(out[0] == 20);
  CHECK(t.script->sent[0].bytes == std::vector<std::uint8_t>{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1});
}

TEST_CASE("MBAP: one late answer is skipped by the next request, which gets its own") {
  Tcp t;
  int n = 0;
  t.script->device = [&n](LinkScript& s, const std::vector<std::uint8_t>& req) {
    // the first answer is 800 ms late (timeout 300); the server takes requests one at a time
    const auto delay = ++n == 1 ? 800ms : 5ms;
    const auto at = std::max(s.now, s.pending.empty() ? s.now : s.pending.back().at) + delay;
    s.at(at, mbapAnswer(tidOf(req), req[6], req[7], {static_cast<std::uint16_t>(100 * n)}));
  };
  std::vector<std::uint16_t> out;
  const auto origin = t.script->now;
  CHECK(t.read(1, 0, 1, out).kind == ErrorKind::Timeout);
  for (int k = 2; k <= 4; ++k) {
    t.script->advanceTo(origin + (k - 1) * 1000ms);  // the next poll; the late answer came meanwhile
    REQUIRE(t.read(1, 0, 1, out).ok());
    CHECK(out[0] == 100 * k);
  }
  CHECK(t.discarded() == 1);
  CHECK(t.script->opens == 1);  // the connection was kept
}

TEST_CASE("MBAP: a stale frame in front of the answer, in the same read or split anywhere") {
  for (std::size_t split = 0; split <= 24; ++split) {
    CAPTURE(split);
    Tcp t;
    t.script->device = [split](LinkScript& s, const std::vector<std::uint8_t>& req) {
      auto bytes = mbapAnswer(static_cast<std::uint16_t>(tidOf(req) - 1), req[6], req[7], {60000, 60001});
      const auto good = mbapAnswer(tidOf(req), req[6], req[7], {7, 8});
      bytes.insert(bytes.end(), good.begin(), good.end());
      const auto cut = std::min(split, bytes.size());
      s.after(5ms, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
      s.after(20ms, std::vector<std::uint8_t>(bytes.begin() + static_cast<std::ptrdiff_t>(cut), bytes.end()));
    };
    std::vector<std::uint16_t> out;
    REQUIRE(t.read(1, 0, 2, out).ok());
    CHECK(out == std::vector<std::uint16_t>{7, 8});
    CHECK(t.discarded() == 1);
  }
}

TEST_CASE("MBAP: wrong unit, function, byte count or length with the right id fail the request, counted") {
  struct Case {
    const char* name;
    std::function<std::vector<std::uint8_t>(std::uint16_t)> frame;
    const char* why;
  };
  const std::vector<Case> cases{
      {"unit", [](std::uint16_t tid) { return mbapAnswer(tid, 2, 0x03, {60000}); }, "answer from unit 2"},
      {"function", [](std::uint16_t tid) { return mbapAnswer(tid, 1, 0x04, {60000}); }, "function code 0x04"},
      {"byte count",
       [](std::uint16_t tid) {
         return mbapAnswer(tid, 1, 0x03, {60000, 60001});
       },
       "byte count 4, expected 2"},
      {"length",
       [](std::uint16_t tid) {
         auto f = mbapAnswer(tid, 1, 0x03, {60000});
         f[8] = 4;  // says two registers, carries one
         return f;
       },
       "byte count 4, expected 2"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    Tcp t;
    t.script->device = [&c](LinkScript& s, const std::vector<std::uint8_t>& req) { s.after(5ms, c.frame(tidOf(req))); };
    std::vector<std::uint16_t> out;
    const auto err = t.read(1, 0, 1, out);
    CHECK(err.kind == ErrorKind::BadFrame);
    CHECK(err.message.find(c.why) != std::string::npos);
    CHECK(out[0] == 0xFFFF);
    CHECK(t.discarded() == 1);
  }
}

TEST_CASE("MBAP: an exception answer") {
  Tcp t;
  t.script->device = [](LinkScript& s, const std::vector<std::uint8_t>& req) {
    s.after(5ms, {req[0], req[1], 0, 0, 0, 3, req[6], 0x83, 0x02});
  };
  std::vector<std::uint16_t> out;
  const auto err = t.read(1, 0, 1, out);
  CHECK(err.kind == ErrorKind::Exception);
  CHECK(err.exception == 2);
}

TEST_CASE("MBAP: a header with a protocol id other than 0 or an insane length closes the connection") {
  for (const auto& header : {std::vector<std::uint8_t>{0, 1, 0x0B, 0x0B, 0, 5, 1, 3, 2, 0, 1},
                             std::vector<std::uint8_t>{0, 1, 0, 0, 0x10, 0, 1, 3, 2, 0, 1},
                             std::vector<std::uint8_t>{0, 1, 0, 0, 0, 1, 1}}) {
    Tcp t;
    int n = 0;
    t.script->device = [&n, header](LinkScript& s, const std::vector<std::uint8_t>& req) {
      if (++n == 1) {
        s.after(5ms, header);
      } else {
        s.after(5ms, mbapAnswer(tidOf(req), req[6], req[7], {42}));
      }
    };
    std::vector<std::uint16_t> out;
    const auto err = t.read(1, 0, 1, out);
    CHECK(err.kind == ErrorKind::BadFrame);
    CHECK(err.message.find("out of step") != std::string::npos);
    CHECK_FALSE(t.transport->isOpen());
    REQUIRE(t.read(1, 0, 1, out).ok());  // reconnects, and the new connection starts at id 1
    CHECK(out[0] == 42);
    CHECK(t.script->opens == 2);
    CHECK(tidOf(t.script->sent[1].bytes) == 1);
  }
}
