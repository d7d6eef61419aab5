// The node's service UART (firmware/core/service_frame.hpp, service_port.hpp) on any bytes, as a
// laptop, line noise or a wrong baud rate would send them:
// - the frame parser, fed byte by byte: a frame it accepts re-encodes to a frame that parses to
//   the same type, seq and payload, and it holds no more than kMaxFrame;
// - the service port of a traffic counter on a fake UART and flash, on the bytes as they are and
//   on the bytes as the payload of a well-formed PROVISION: every reply parses, and the flash
//   changes only when a PROVISION reply says it was written.
#include <cstdint>
#include <cstring>

#include "core/service_frame.hpp"
#include "core/service_port.hpp"
#include "fakes.hpp"

namespace fw = citygate::fw;
namespace svc = citygate::fw::service;

namespace {

void checkParser(const std::uint8_t* data, std::size_t size) {
  svc::FrameParser parser;
  static std::uint8_t encoded[svc::kMaxEncoded];
  for (std::size_t i = 0; i < size; ++i) {
    if (parser.feed(data[i]) != svc::FrameParser::Result::Frame) continue;
    const svc::Frame f = parser.frame();
    if (f.length > svc::kMaxPayload) __builtin_trap();
    const std::size_t n = svc::encodeFrame(f.type, f.seq, f.payload, f.length, encoded, sizeof encoded);
    if (n == 0) __builtin_trap();
    svc::FrameParser again;
    int frames = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (again.feed(encoded[j]) == svc::FrameParser::Result::Frame) {
        ++frames;
        const svc::Frame& g = again.frame();
        if (g.type != f.type || g.seq != f.seq || g.length != f.length ||
            std::memcmp(g.payload, f.payload, f.length) != 0) {
          __builtin_trap();
        }
      }
    }
    if (frames != 1) __builtin_trap();
  }
}

void checkPort(const std::uint8_t* data, std::size_t size) {
  static fw::test::FakeFlash flash(512, 4);
  static fw::test::FakeUart uart;
  flash.reset();
  uart.clear();
  uart.chunk = size % 7 + 1;
  uart.arrive(data, size < sizeof uart.rx ? size : sizeof uart.rx);
  fw::RecordStore store(flash);
  fw::ServicePort port(uart, store, citygate_v1_NodeKind_NODE_TRAFFIC_COUNTER);
  for (int i = 0; i < 64 && uart.rxPos < uart.rxSize; ++i) port.poll();
  // Every reply the node wrote parses; a flash write only with a PROVISION reply.
  svc::FrameParser replies;
  bool written = false;
  for (std::size_t i = 0; i < uart.txSize; ++i) {
    const auto r = replies.feed(uart.tx[i]);
    if (r == svc::FrameParser::Result::Error) __builtin_trap();
    if (r == svc::FrameParser::Result::Frame && replies.frame().type == 0x82) written = true;
  }
  if (!written && flash.erases() != 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  checkParser(data, size);
  checkPort(data, size);
  // The same bytes as the payload of a well-formed PROVISION frame: past the CRC, into nanopb's
  // decoder and the record's rules (random bytes rarely carry a right CRC of their own).
  static std::uint8_t framed[svc::kMaxEncoded];
  if (size <= svc::kMaxPayload) {
    const std::size_t n = svc::encodeFrame(0x02, 1, data, size, framed, sizeof framed);
    checkPort(framed, n);
  }
  return 0;
}
