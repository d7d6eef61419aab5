// RTU framing: the pure frame check, and the engine on a scripted link (virtual clock).
#include "inputs/modbus/rtu_framing.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "scripted_link.hpp"

using namespace citygate::modbus;
using namespace citygate::modbus::testing;
using namespace std::chrono_literals;

namespace {

const RtuRequest kReadOne{1, 0x03, 0, 1};

std::vector<std::uint16_t> addresses(std::uint16_t from, std::uint16_t count, std::uint16_t base = 0) {
  std::vector<std::uint16_t> v;
  for (std::uint16_t i = 0; i < count; ++i) v.push_back(static_cast<std::uint16_t>(base + from + i));
  return v;
}

struct Engine {
  std::shared_ptr<LinkScript> script = std::make_shared<LinkScript>();
  RtuTiming timing;
  std::unique_ptr<RtuTransport> transport;

  explicit Engine(RtuTiming t = serialRtuTiming(19200, 11)) : timing(t) {
    transport = std::make_unique<RtuTransport>(std::make_unique<ScriptedLink>(script), timing);
  }
  ReadError read(std::uint8_t unit, std::uint16_t address, std::uint16_t count, std::vector<std::uint16_t>& out,
                 std::chrono::milliseconds timeout = 300ms) {
    out.assign(count, 0xFFFF);
    return transport->read(unit, citygate::v1::HOLDING_REGISTER, address, count, timeout, out);
  }
  std::vector<DiscardedFrames> byUnit;
  std::uint64_t discarded() {
    for (const auto& d : transport->takeDiscarded()) addDiscarded(byUnit, d.unit, d.frames);
    return totalDiscarded(byUnit);
  }
};

// A device that handles requests one at a time, as most do: each takes `service`, the requests
// numbered in `late` (1-based) take `lateBy`; requests that come while it is busy queue behind.
// Register = 1000 * unit + address; a late answer carries poison (60000 + address) instead: it can
// answer no request (its own has timed out), so poison must never come out of the engine.
struct QueueDevice {
  Clock::time_point busyUntil = Clock::time_point::min();
  int served = 0;
  std::set<int> late;
  Clock::duration service = 20ms;
  Clock::duration lateBy = 800ms;

  void operator()(LinkScript& s, const std::vector<std::uint8_t>& req) {
    ++served;
    const std::uint8_t unit = req[0];
    const auto address = static_cast<std::uint16_t>((req[2] << 8) | req[3]);
    const auto count = static_cast<std::uint16_t>((req[4] << 8) | req[5]);
    const bool isLate = late.contains(served);
    const auto start = std::max(s.now, busyUntil);
    busyUntil = start + (isLate ? lateBy : service);
    s.at(busyUntil, rtuAnswer(unit, req[1], addresses(address, count, isLate ? 60000 : 1000 * unit)));
  }
};

void plug(LinkScript& s, const std::shared_ptr<QueueDevice>& d) {
  s.device = [d](LinkScript& script, const std::vector<std::uint8_t>& req) { (*d)(script, req); };
}

struct Block {
  std::uint8_t unit;
  std::uint16_t address;
  std::uint16_t count;
};

// One poll as the bus worker runs it: blocks in order, `retries` more attempts after a timeout
// or a bad frame, the rest skipped after a final timeout. Every value taken is checked against
// the block it was asked for. Returns whether every block was read.
bool poll(Engine& e, const std::vector<Block>& blocks, std::uint32_t retries) {
  bool all = true;
  for (const auto& b : blocks) {
    ReadError err;
    for (std::uint32_t attempt = 0; attempt <= retries; ++attempt) {
      std::vector<std::uint16_t> out;
      err = e.read(b.unit, b.address, b.count, out);
      if (err.ok()) {
        INFO("unit ", int(b.unit), " block at ", b.address);
        CHECK(out == addresses(b.address, b.count, static_cast<std::uint16_t>(1000 * b.unit)));
        break;
      }
      if (err.kind == ErrorKind::Exception) break;
    }
    if (!err.ok()) all = false;
    if (err.kind == ErrorKind::Timeout) return false;  // the worker gives the device up for this poll
  }
  return all;
}

// Polls every `interval` on the virtual clock; returns which polls read every block.
std::vector<bool> run(Engine& e, const std::vector<Block>& blocks, int polls, std::uint32_t retries,
                      std::chrono::milliseconds interval = 1000ms) {
  std::vector<bool> ok;
  const auto origin = e.script->now;
  for (int k = 0; k < polls; ++k) {
    e.script->advanceTo(origin + k * interval);
    ok.push_back(poll(e, blocks, retries));
  }
  return ok;
}

}  // namespace

TEST_CASE("checkRtuFrame: complete, partial, exception, damaged") {
  const auto m2 = std::vector<std::uint8_t>{0x01, 0x03, 0x02, 0x00, 0x01, 0x79, 0x84};  // published M2
  auto c = checkRtuFrame(m2, kReadOne);
  CHECK(c.verdict == FrameVerdict::Answer);
  CHECK(c.length == 7);
  std::vector<std::uint16_t> out(1);
  decodeRtuAnswer(m2, kReadOne, out);
  CHECK(out[0] == 1);

  for (std::size_t n = 0; n < m2.size(); ++n) {
    CHECK(checkRtuFrame(std::span(m2).first(n), kReadOne).verdict == FrameVerdict::NeedMore);
  }

  const auto exc = withCrc({0x01, 0x83, 0x02});
  c = checkRtuFrame(exc, kReadOne);
  CHECK(c.verdict == FrameVerdict::Exception);
  CHECK(c.exception == 2);
  CHECK(c.length == 5);

  auto bad = m2;
  bad[4] ^= 0x10;
  c = checkRtuFrame(bad, kReadOne);
  CHECK(c.verdict == FrameVerdict::Damaged);
  CHECK(c.ours);

  c = checkRtuFrame(withCrc({0x01, 0x42, 0x00}), kReadOne);  // a function no master asks for
  CHECK(c.verdict == FrameVerdict::Damaged);
  CHECK_FALSE(c.ours);
}

TEST_CASE("checkRtuFrame: intact frames that answer another request are foreign, with their length") {
  // another unit
  auto c = checkRtuFrame(rtuAnswer(2, 0x03, {7}), kReadOne);
  CHECK(c.verdict == FrameVerdict::Foreign);
  CHECK(c.length == 7);
  CHECK(c.why.find("unit 2") != std::string::npos);
  // another function
  c = checkRtuFrame(rtuAnswer(1, 0x04, {7}), kReadOne);
  CHECK(c.verdict == FrameVerdict::Foreign);
  CHECK(c.why.find("function code 0x04") != std::string::npos);
  // a byte count for another quantity (a lying device, or a late answer to a longer read)
  c = checkRtuFrame(rtuAnswer(1, 0x03, {7, 8}), kReadOne);
  CHECK(c.verdict == FrameVerdict::Foreign);
  CHECK(c.length == 9);
  CHECK(c.why.find("byte count 4, expected 2") != std::string::npos);
  // the exception form of another function
  c = checkRtuFrame(withCrc({0x01, 0x84, 0x02}), kReadOne);
  CHECK(c.verdict == FrameVerdict::Foreign);
  // a write's echo (8 bytes)
  c = checkRtuFrame(withCrc({0x01, 0x06, 0x00, 0x01, 0x00, 0x03}), kReadOne);
  CHECK(c.verdict == FrameVerdict::Foreign);
  CHECK(c.length == 8);
}

TEST_CASE("checkRtuFrame: coils unpack LSB first") {
  const auto f = withCrc({0x05, 0x01, 0x02, 0b10100101, 0b00000001});
  const RtuRequest coils{5, 0x01, 0, 9};
  REQUIRE(checkRtuFrame(f, coils).verdict == FrameVerdict::Answer);
  std::vector<std::uint16_t> out(9);
  decodeRtuAnswer(f, coils, out);
  CHECK(out == std::vector<std::uint16_t>{1, 0, 1, 0, 0, 1, 0, 1, 1});
}

TEST_CASE("serial timing: t3.5 from the baud rate, fixed above 19200") {
  CHECK(serialRtuTiming(9600, 11).gap == 4010us);
  CHECK(serialRtuTiming(19200, 11).gap == 2005us);
  CHECK(serialRtuTiming(115200, 11).gap == 1750us);
  CHECK(serialRtuTiming(1200, 11).charTime == 9167us);
}

TEST_CASE("RTU engine: an answer is taken after the gap, the next request waits t3.5 after it") {
  Engine e;
  auto dev = std::make_shared<QueueDevice>();
  plug(*e.script, dev);
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(1, 10, 3, out).ok());
  CHECK(out == addresses(10, 3, 1000));
  REQUIRE(e.read(1, 20, 2, out).ok());
  CHECK(out == addresses(20, 2, 1000));
  REQUIRE(e.script->sent.size() == 2);
  REQUIRE(e.script->delivered.size() == 2);
  CHECK(e.script->sent[1].at - e.script->delivered[0].at >= e.timing.gap);
  CHECK(e.discarded() == 0);
  CHECK_FALSE(e.transport->unsettled(1, 0x03));
}

TEST_CASE("RTU engine: bytes found on the line before a request are drained and counted") {
  Engine e;
  auto dev = std::make_shared<QueueDevice>();
  plug(*e.script, dev);
  e.script->after(0ms, rtuAnswer(1, 0x03, {60000}));  // left over from before
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(1, 0, 1, out).ok());
  CHECK(out == addresses(0, 1, 1000));
  CHECK(e.discarded() == 1);
  // Stray bytes make the exchange careful: the request waited a settle period (the timeout) of silence.
  CHECK(e.script->sent[0].at - e.script->delivered[0].at >= 300ms);
}

TEST_CASE("RTU engine: a frame followed by more bytes is ambiguous and never taken") {
  Engine e;
  // A stale answer and the real one back to back in one read.
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) {
    auto both = rtuAnswer(1, 0x03, {60000});
    const auto real = rtuAnswer(1, 0x03, {1000});
    both.insert(both.end(), real.begin(), real.end());
    s.after(15ms, both);
  };
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(1, 0, 1, out).ok());
  CHECK(out[0] == 1000);
  CHECK(e.discarded() == 1);
}

TEST_CASE("RTU engine: a link that wakes up with nothing to read does not cut the silence short") {
  Engine e;  // 19200 baud: t3.5 = 2 ms
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) {
    s.after(10ms, rtuAnswer(1, 0x03, {60000}));
    s.after(10500us, {});  // a wake-up with nothing
    s.after(11500us, rtuAnswer(1, 0x03, {1000}));
  };
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(1, 0, 1, out).ok());
  CHECK(out[0] == 1000);  // the first frame had another right behind it: ambiguous
  CHECK(e.discarded() == 1);
}

TEST_CASE("RTU engine: another unit's frame is skipped and the wait goes on for the real answer") {
  Engine e;
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) {
    s.after(10ms, rtuAnswer(2, 0x03, {60000}));
    s.after(60ms, rtuAnswer(1, 0x03, {1000}));
  };
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(1, 0, 1, out).ok());
  CHECK(out[0] == 1000);
  CHECK(e.discarded() == 1);
  REQUIRE(e.byUnit.size() == 1);
  CHECK(e.byUnit[0].unit == 2);  // counted on the unit it came from
  CHECK_FALSE(e.transport->unsettled(1, 0x03));
}

TEST_CASE("RTU engine: wrong function, lying byte count and wrong unit alone fail the request as a bad frame") {
  for (const auto& frame :
       {rtuAnswer(1, 0x04, {60000}), rtuAnswer(1, 0x03, {60000, 60001}), rtuAnswer(9, 0x03, {60000})}) {
    Engine e;
    e.script->device = [frame](LinkScript& s, const std::vector<std::uint8_t>&) { s.after(10ms, frame); };
    std::vector<std::uint16_t> out;
    const auto err = e.read(1, 0, 1, out);
    CHECK(err.kind == ErrorKind::BadFrame);
    CHECK(err.message.find("no matching answer") != std::string::npos);
    CHECK(out[0] == 0xFFFF);  // nothing written
    CHECK(e.discarded() == 1);
    CHECK(e.transport->unsettled(1, 0x03));  // its late answer may still come
  }
}

TEST_CASE("RTU engine: a damaged answer fails at once, the next request waits for a settled line") {
  Engine e;
  int n = 0;
  e.script->device = [&n](LinkScript& s, const std::vector<std::uint8_t>&) {
    auto f = rtuAnswer(1, 0x03, {1000});
    if (++n == 1) f.back() ^= 0xFF;
    s.after(10ms, f);
  };
  std::vector<std::uint16_t> out;
  const auto t0 = e.script->now;
  auto err = e.read(1, 0, 1, out);
  CHECK(err.kind == ErrorKind::BadFrame);
  CHECK(err.message == "CRC error");
  CHECK(e.script->now - t0 < 100ms);  // not the whole timeout
  REQUIRE(e.read(1, 0, 1, out).ok());
  CHECK(out[0] == 1000);
  CHECK(e.script->sent[1].at - e.script->delivered[0].at >= 300ms);
}

TEST_CASE("RTU engine: a partial answer at the deadline is a bad frame, and is counted") {
  Engine e;
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) {
    auto f = rtuAnswer(1, 0x03, {1000, 1001});
    f.resize(5);
    s.after(10ms, f);
  };
  std::vector<std::uint16_t> out;
  const auto err = e.read(1, 0, 2, out);
  CHECK(err.kind == ErrorKind::BadFrame);
  CHECK(err.message.find("incomplete answer (5 bytes)") != std::string::npos);
  CHECK(e.discarded() == 1);
}

TEST_CASE("RTU engine: a line that never goes quiet is given up on without sending") {
  Engine e;
  for (int i = 0; i < 400; ++i) e.script->after(i * 5ms, {0x55, 0xAA});  // a babbling device, 2 s
  std::vector<std::uint16_t> out;
  const auto err = e.read(1, 0, 1, out, 100ms);
  CHECK(err.kind == ErrorKind::BadFrame);
  CHECK(err.message.find("did not go quiet") != std::string::npos);
  CHECK(e.script->sent.empty());
}

TEST_CASE("RTU engine: one answer 800 ms late against a 300 ms timeout, a single block per device") {
  for (std::uint32_t retries : {0U, 1U, 2U}) {
    CAPTURE(retries);
    Engine e;
    auto dev = std::make_shared<QueueDevice>();
    dev->late = {3};
    plug(*e.script, dev);
    const auto ok = run(e, {{1, 0, 4}}, 8, retries);
    CHECK(ok[0]);
    CHECK(ok[1]);
    // Recovered by the next poll at the latest (with a retry, often within the late poll).
    CHECK(ok[3]);
    for (std::size_t k = 3; k < ok.size(); ++k) CHECK(ok[k]);
    CHECK(e.discarded() >= 1);
  }
}

TEST_CASE("RTU engine: one late answer among blocks of the same size, two devices, a slow queue") {
  const std::vector<Block> blocks{{1, 0, 4}, {1, 10, 4}, {1, 20, 4}, {2, 0, 4}, {2, 10, 4}};
  for (std::uint32_t retries : {0U, 1U, 2U}) {
    for (auto service : {5ms, 20ms, 150ms}) {
      for (int late : {2, 4, 7, 8}) {
        CAPTURE(retries);
        CAPTURE(service.count());
        CAPTURE(late);
        Engine e;
        auto dev = std::make_shared<QueueDevice>();
        dev->late = {late};
        dev->service = service;
        plug(*e.script, dev);
        const auto ok = run(e, blocks, 6, retries, 2000ms);
        // poll checks every value taken against its block; the device is back within two polls
        const std::size_t latePoll = static_cast<std::size_t>((late - 1) / 5);
        for (std::size_t k = latePoll + 2; k < ok.size(); ++k) CHECK(ok[k]);
        CHECK(e.discarded() >= 1);
      }
    }
  }
}

TEST_CASE("RTU engine: a late answer arriving right behind the next request's answer is ambiguous") {
  // Requests queue: the late answer lands, then the real one 150 ms later, inside the settle period.
  Engine e;
  auto dev = std::make_shared<QueueDevice>();
  dev->late = {1};
  dev->service = 150ms;
  plug(*e.script, dev);
  std::vector<std::uint16_t> out;
  CHECK(e.read(1, 0, 4, out).kind == ErrorKind::Timeout);
  // The retry goes after 300 ms of quiet (at 600 ms); the late answer comes at 800, the real one
  // at 950: neither is taken alone.
  const auto err = e.read(1, 0, 4, out);
  if (err.ok()) CHECK(out == addresses(0, 4, 1000));
  CHECK(e.discarded() >= 1);
}

TEST_CASE("RTU engine: a dead unit costs its own requests a settle period, not the other units'") {
  Engine e;
  auto dev = std::make_shared<QueueDevice>();
  dev->service = 5ms;
  plug(*e.script, dev);
  // only units 1 and 2 exist
  e.script->device = [dev](LinkScript& s, const std::vector<std::uint8_t>& req) {
    if (req[0] <= 2) (*dev)(s, req);
  };
  std::vector<std::uint16_t> out;
  CHECK(e.read(9, 0, 1, out).kind == ErrorKind::Timeout);
  CHECK(e.transport->unsettled(9, 0x03));
  const auto timedOutAt = e.script->now;
  REQUIRE(e.read(1, 0, 1, out).ok());  // another unit: after t3.5, not after a settle period
  CHECK(e.script->sent[1].at - timedOutAt < 10ms);
  CHECK(e.read(9, 0, 1, out).kind == ErrorKind::Timeout);  // the dead one waits for a quiet line
  CHECK(e.script->sent[2].at - e.script->delivered[0].at >= 300ms);
  // A scan: 20 units that do not exist cost their timeouts and nothing more.
  const auto scanStart = e.script->now;
  for (std::uint8_t u = 20; u < 40; ++u) CHECK(e.read(u, 0, 1, out, 100ms).kind == ErrorKind::Timeout);
  CHECK(e.script->now - scanStart < 20 * 115ms);  // timeout + wire time + t3.5 each; a settle period would double it
}

TEST_CASE("RTU engine: an unsettled unit is forgotten after a while") {
  Engine e;
  std::vector<std::uint16_t> out;
  CHECK(e.read(9, 0, 1, out).kind == ErrorKind::Timeout);
  CHECK(e.transport->unsettled(9, 0x03));
  e.script->advanceTo(e.script->now + 61s);
  CHECK_FALSE(e.transport->unsettled(9, 0x03));
}

TEST_CASE("RTU over TCP: the fixed guard replaces t3.5") {
  Engine e(rtuOverTcpTiming());
  auto dev = std::make_shared<QueueDevice>();
  plug(*e.script, dev);
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(7, 100, 2, out).ok());
  CHECK(out == addresses(100, 2, 7000));
  REQUIRE(e.read(7, 100, 2, out).ok());
  CHECK(e.script->sent[1].at - e.script->delivered[0].at >= 10ms);
}

// ---- writes ----

namespace {

// The device's echo of a write request: unit, function, address, value or quantity, CRC.
std::vector<std::uint8_t> rtuEcho(const std::vector<std::uint8_t>& req) {
  return withCrc(std::vector<std::uint8_t>(req.begin(), req.begin() + 6));
}

ReadError writeRegs(Engine& e, std::uint8_t unit, std::uint16_t address, std::vector<std::uint16_t> values,
                    citygate::v1::RegisterTable table = citygate::v1::HOLDING_REGISTER) {
  return e.transport->write(unit, table, address, values, 300ms);
}

}  // namespace

TEST_CASE("RTU writes: 06, 16 and 05 frames as the spec lays them out, the echo taken after the gap") {
  Engine e;
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>& req) { s.after(15ms, rtuEcho(req)); };
  REQUIRE(writeRegs(e, 1, 10, {905}).ok());
  REQUIRE(writeRegs(e, 1, 20, {0x0000, 0xC144}).ok());
  REQUIRE(writeRegs(e, 1, 4, {1}, citygate::v1::COIL).ok());
  REQUIRE(e.script->sent.size() == 3);
  CHECK(e.script->sent[0].bytes == withCrc({0x01, 0x06, 0x00, 0x0A, 0x03, 0x89}));
  CHECK(e.script->sent[1].bytes == withCrc({0x01, 0x10, 0x00, 0x14, 0x00, 0x02, 0x04, 0x00, 0x00, 0xC1, 0x44}));
  CHECK(e.script->sent[2].bytes == withCrc({0x01, 0x05, 0x00, 0x04, 0xFF, 0x00}));
  CHECK(e.script->sent[1].at - e.script->delivered[0].at >= e.timing.gap);
  CHECK(e.discarded() == 0);
  // Reads and writes share the line: a read right after a write waits its gap too.
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) { s.after(15ms, rtuAnswer(1, 0x03, {905})); };
  std::vector<std::uint16_t> out;
  REQUIRE(e.read(1, 10, 1, out).ok());
  CHECK(out[0] == 905);
}

TEST_CASE("RTU writes: an echo of another value is foreign, an exception is the device's refusal") {
  Engine e;
  // A late echo of an earlier write (another value), then the real one.
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>& req) {
    s.after(10ms, withCrc({0x01, 0x06, 0x00, 0x0A, 0x00, 0x01}));
    s.after(60ms, rtuEcho(req));
  };
  REQUIRE(writeRegs(e, 1, 10, {905}).ok());
  CHECK(e.discarded() == 1);
  // Only echoes of other values: no matching answer, and the unit's writes are unsettled.
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) {
    s.after(10ms, withCrc({0x01, 0x06, 0x00, 0x0A, 0x00, 0x01}));
  };
  auto err = writeRegs(e, 1, 10, {906});
  CHECK(err.kind == ErrorKind::BadFrame);
  CHECK(err.message.find("does not echo the write") != std::string::npos);
  CHECK(e.transport->unsettled(1, 0x06));
  // Exception 02 (illegal data address): the device refused.
  e.script->device = [](LinkScript& s, const std::vector<std::uint8_t>&) {
    s.after(10ms, withCrc({0x01, 0x86, 0x02}));
  };
  err = writeRegs(e, 1, 10, {907});
  CHECK(err.kind == ErrorKind::Exception);
  CHECK(err.exception == 2);
  // Nothing that can be written: refused before anything is sent.
  const auto sent = e.script->sent.size();
  CHECK(writeRegs(e, 1, 10, {}).kind == ErrorKind::BadFrame);
  CHECK(writeRegs(e, 1, 0, {1}, citygate::v1::INPUT_REGISTER).kind == ErrorKind::BadFrame);
  CHECK(e.script->sent.size() == sent);
}

TEST_CASE("checkRtuFrame: a write's echo is 8 bytes and must repeat the request's four") {
  RtuRequest w{1, 0x06, 10, 1};
  w.write = true;
  w.echo = {0x00, 0x0A, 0x03, 0x89};
  const auto echo = withCrc({0x01, 0x06, 0x00, 0x0A, 0x03, 0x89});
  CHECK(checkRtuFrame(echo, w).verdict == FrameVerdict::Answer);
  CHECK(checkRtuFrame(echo, w).length == 8);
  CHECK(checkRtuFrame(std::span(echo).first(7), w).verdict == FrameVerdict::NeedMore);
  CHECK(checkRtuFrame(withCrc({0x01, 0x06, 0x00, 0x0A, 0x03, 0x88}), w).verdict == FrameVerdict::Foreign);
  auto damaged = echo;
  damaged[5] ^= 1;
  const auto d = checkRtuFrame(damaged, w);
  CHECK(d.verdict == FrameVerdict::Damaged);
  CHECK(d.ours);
  CHECK(answerBytes(w) == 8);
  CHECK(answerBytes(kReadOne) == 7);
}
