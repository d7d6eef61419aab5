// Fuzz target: everything citygate does with bytes a Modbus device sends back. The first three
// bytes choose the request (unit, function, quantity); the rest is the device's answer, parsed
// by the RTU frame check and then decoded as every type in every order.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "inputs/modbus/decode.hpp"
#include "inputs/modbus/rtu_framing.hpp"

namespace pb = citygate::v1;
using namespace citygate::modbus;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t unit = data[0];
  static constexpr std::uint8_t kFunctions[] = {0x01, 0x02, 0x03, 0x04};
  const std::uint8_t function = kFunctions[data[1] & 3];
  const bool bits = function <= 0x02;
  const std::uint16_t count = static_cast<std::uint16_t>(1 + data[2] % (bits ? 255 : 125));
  std::span<const std::uint8_t> answer(data + 3, size - 3);
  std::vector<std::uint16_t> regs(count);
  const RtuRequest request{unit, function, 0, count};
  // Look at the answer as it might arrive: in pieces, like reads from a socket.
  FrameCheck check;
  for (std::size_t n = 0; n <= answer.size(); n += 7) {
    check = checkRtuFrame(answer.first(n), request);
    if (check.verdict != FrameVerdict::NeedMore) break;
  }
  check = checkRtuFrame(answer, request);
  if (check.verdict == FrameVerdict::Answer) {
    if (check.length > answer.size() || answer[0] != unit || answer[1] != function ||
        answer[2] != answerDataBytes(request) || crc16(answer.first(check.length)) != 0) {
      __builtin_trap();  // an answer that does not match its request
    }
    decodeRtuAnswer(answer.first(check.length), request, regs);
  }
  // Decode whatever registers came out, as every type and order a profile may ask for.
  for (auto order : {pb::ABCD, pb::CDAB, pb::BADC, pb::DCBA}) {
    for (auto type : {pb::INT16, pb::UINT16, pb::INT32, pb::UINT32, pb::INT64, pb::UINT64, pb::FLOAT32, pb::FLOAT64}) {
      for (std::size_t at = 0; at < regs.size(); ++at) {
        (void)decodeNumber(type, order, std::span<const std::uint16_t>(regs).subspan(at));
      }
    }
    (void)decodeString(order, regs);
  }
  return 0;
}
