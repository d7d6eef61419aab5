// The node byte formats (proto/citygate/v1/node_format.hpp) on any bytes: byte 0 picks the format,
// the rest is the payload. The formats are exact, so a payload that decodes must encode back to
// the very same bytes (one meaning per frame, nothing skipped or invented by either side).
#include <cstdint>
#include <cstring>

#include "citygate/v1/node_format.hpp"

namespace nf = citygate::node_format;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t* p = data + 1;
  const std::size_t n = size - 1;
  std::uint8_t out[nf::traffic::kMaxBytes + 1];
  nf::Encoded e;
  if ((data[0] & 1U) == 0) {
    nf::air::Frame f;
    if (nf::air::decode(p, n, f) != nf::Status::Ok) return 0;
    e = nf::air::encode(f, out, sizeof out);
  } else {
    nf::traffic::Frame f;
    if (nf::traffic::decode(p, n, f) != nf::Status::Ok) return 0;
    e = nf::traffic::encode(f, out, sizeof out);
  }
  if (e.status != nf::Status::Ok || e.size != n || std::memcmp(out, p, n) != 0) __builtin_trap();
  return 0;
}
