// Fuzz target: the RTU framing engine (serial RTU and RTU over TCP) on a scripted line with a
// virtual clock. The input scripts a series of reads and, for each, what the line carries after
// the request and when: stale answers, frames from other units, partial frames, garbage, split at
// any point and spread over any delays. The engine must never take a frame whose unit, function,
// byte count or CRC does not match the request, never take one that more bytes followed within
// the gap, never send a request while bytes are pending or before the line has been silent, and
// always finish within its bounds.
//
// Input: byte 0 options (bit 0: RTU over TCP timing, else 19200 baud serial; bits 1-2: timeout 50,
// 100, 300 or 1000 ms), then per read:
//   unit, function (low 2 bits: 1..4), count (1 + byte % 125, bits: 1 + byte), pause before the
//   request (byte * 10 ms), chunk count (low 4 bits), and per chunk: delay after the previous one
//   (byte < 128: that many ms, else (byte - 128) * 10 ms), length (low 6 bits), the bytes.
// Chunks are scheduled when the read's request is sent, so long delays land in later reads.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "../unit/inputs/modbus/scripted_link.hpp"
#include "inputs/modbus/rtu_framing.hpp"

using namespace citygate::modbus;
using namespace citygate::modbus::testing;

namespace {

class Input {
 public:
  explicit Input(std::span<const std::uint8_t> d) : d_(d) {}
  bool empty() const { return at_ >= d_.size(); }
  std::uint8_t byte() { return at_ < d_.size() ? d_[at_++] : 0; }
  std::vector<std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, d_.size() - std::min(at_, d_.size()));
    std::vector<std::uint8_t> out(d_.begin() + static_cast<std::ptrdiff_t>(at_),
                                  d_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    at_ += n;
    return out;
  }

 private:
  std::span<const std::uint8_t> d_;
  std::size_t at_ = 0;
};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Is there, among the chunks delivered from `first` on, an intact frame equal to `expect`'s shape
// whose last byte ends a chunk, with nothing due within `gap` after that chunk was taken?
bool framedAnswer(const LinkScript& s, std::size_t first, const RtuRequest& req, ErrorKind kind, int exception,
                  const std::vector<std::uint16_t>& out, Clock::duration gap) {
  std::vector<std::uint8_t> stream;
  std::vector<std::size_t> chunkOf;
  for (std::size_t c = first; c < s.delivered.size(); ++c) {
    for (auto b : s.delivered[c].bytes) {
      stream.push_back(b);
      chunkOf.push_back(c);
    }
  }
  const bool bits = req.function <= 0x02;
  const std::size_t dataBytes = answerDataBytes(req);
  const std::size_t len = kind == ErrorKind::Exception ? 5 : 5 + dataBytes;
  for (std::size_t p = 0; p + len <= stream.size(); ++p) {
    const auto f = std::span<const std::uint8_t>(stream).subspan(p, len);
    if (f[0] != req.unit || crc16(f) != 0) continue;
    if (kind == ErrorKind::Exception) {
      if (f[1] != (req.function | 0x80) || f[2] != exception) continue;
    } else {
      if (f[1] != req.function || f[2] != dataBytes) continue;
      bool same = true;
      for (std::size_t i = 0; i < req.count && same; ++i) {
        const std::uint16_t v = bits ? static_cast<std::uint16_t>((f[3 + i / 8] >> (i % 8)) & 1U)
                                     : static_cast<std::uint16_t>((f[3 + 2 * i] << 8) | f[4 + 2 * i]);
        same = v == out[i];
      }
      if (!same) continue;
    }
    const std::size_t end = p + len - 1;
    if (end + 1 < stream.size() && chunkOf[end + 1] == chunkOf[end]) continue;  // more bytes in the same read
    const auto takenAt = s.delivered[chunkOf[end]].at;
    bool silent = true;
    for (std::size_t c = chunkOf[end] + 1; c < s.delivered.size(); ++c) {
      silent = silent && (s.delivered[c].bytes.empty() || s.delivered[c].due >= takenAt + gap);
    }
    for (const auto& c : s.pending) silent = silent && (c.bytes.empty() || c.due >= takenAt + gap);
    if (silent) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool trace = std::getenv("CITYGATE_FUZZ_TRACE") != nullptr;  // what each read did
  Input in(std::span<const std::uint8_t>(data, size));
  const std::uint8_t options = in.byte();
  const RtuTiming timing = (options & 1) != 0 ? rtuOverTcpTiming() : serialRtuTiming(19200, 11);
  static constexpr int kTimeoutsMs[] = {50, 100, 300, 1000};
  const std::chrono::milliseconds timeout(kTimeoutsMs[(options >> 1) & 3]);
  const Clock::duration settle = std::clamp<Clock::duration>(timeout, timing.gap, timing.maxSettle);

  auto script = std::make_shared<LinkScript>();
  RtuTransport engine(std::make_unique<ScriptedLink>(script), timing);
  struct Planned {
    Clock::duration after;  // the request
    std::vector<std::uint8_t> bytes;
  };
  std::vector<Planned> planned;  // the chunks of the read in progress
  script->device = [&planned](LinkScript& s, const std::vector<std::uint8_t>&) {
    for (auto& c : planned) s.at(s.now + c.after, std::move(c.bytes));
    planned.clear();
  };

  for (int reads = 0; reads < 8 && !in.empty(); ++reads) {
    RtuRequest req;
    req.unit = in.byte();
    req.function = static_cast<std::uint8_t>(1 + (in.byte() & 3));
    const std::uint8_t c = in.byte();
    req.count = req.function <= 0x02 ? static_cast<std::uint16_t>(1 + c) : static_cast<std::uint16_t>(1 + c % 125);
    script->advanceTo(script->now + std::chrono::milliseconds(10 * in.byte()));
    const int chunks = in.byte() & 15;
    Clock::duration offset{0};
    planned.clear();
    for (int k = 0; k < chunks && !in.empty(); ++k) {
      const std::uint8_t d = in.byte();
      offset += d < 128 ? std::chrono::milliseconds(d) : std::chrono::milliseconds(10 * (d - 128));
      const auto bytes = in.bytes(in.byte() & 63);
      planned.push_back(Planned{offset, bytes});
    }

    const bool unsettledBefore = engine.unsettled(req.unit, req.function);
    const std::size_t sentBefore = script->sent.size();
    const std::size_t deliveredBefore = script->delivered.size();
    const auto start = script->now;
    std::vector<std::uint16_t> out(req.count, 0xFFFF);
    const pb::RegisterTable table = req.function == 0x01   ? pb::COIL
                                    : req.function == 0x02 ? pb::DISCRETE_INPUT
                                    : req.function == 0x04 ? pb::INPUT_REGISTER
                                                           : pb::HOLDING_REGISTER;
    const ReadError err = engine.read(req.unit, table, 0, req.count, timeout, out);
    const auto discarded = totalDiscarded(engine.takeDiscarded());
    if (trace) {
      std::fprintf(
          stderr, "read %d: unit %u fc %u count %u -> %s %s (%llu discarded, %lld ms)\n", reads, unsigned{req.unit},
          unsigned{req.function}, unsigned{req.count}, errorKindName(err.kind), err.message.c_str(),
          static_cast<unsigned long long>(discarded),
          static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(script->now - start).count()));
    }

    // Bounded: the quiet wait, the answer's deadline, and a settle period to confirm it.
    const auto wire = timing.charTime * static_cast<std::int64_t>(13 + answerDataBytes(req));
    check(script->now - start <= 3 * settle + timing.gap + wire + timeout + 2 * settle + timing.gap);

    if (script->sent.size() > sentBefore) {
      const auto sentAt = script->sent.back().at;
      // Nothing unread on the line, and silence before the request (a settle period when the unit
      // and function are unsettled).
      // (An empty chunk is a link waking up with nothing to read: no bytes, no constraint.)
      for (const auto& p : script->pending) check(p.bytes.empty() || p.due > sentAt);
      const Clock::duration quiet = unsettledBefore ? settle : Clock::duration(timing.gap);
      for (std::size_t k = 0; k < script->delivered.size(); ++k) {
        const Chunk& chunk = script->delivered[k];
        if (chunk.bytes.empty() || chunk.at >= sentAt) continue;
        check(chunk.at + (k < deliveredBefore ? Clock::duration(timing.gap) : quiet) <= sentAt);
      }
    } else {
      check(!err.ok() && err.kind != ErrorKind::Exception);  // nothing sent, nothing answered
    }
    if (err.ok() || err.kind == ErrorKind::Exception) {
      std::size_t first = deliveredBefore;
      while (first < script->delivered.size() && script->delivered[first].at < script->sent.back().at) ++first;
      check(framedAnswer(*script, first, req, err.kind, err.exception, out, timing.gap));
      check(!engine.unsettled(req.unit, req.function));
    } else {
      for (auto v : out) check(v == 0xFFFF);            // a failed read writes nothing
      check(engine.unsettled(req.unit, req.function));  // its answer may still come
    }
  }
  return 0;
}
