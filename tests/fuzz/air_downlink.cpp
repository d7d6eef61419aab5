// What reaches the air node from the air and its OTAA flash (firmware/nodes/air/): byte 0 picks
// the parser, the rest is its input.
//   0: a join-accept (parseJoinAccept, the L6 AppKey): refused with a reason, or a session whose
//      fields come from a frame whose MIC verified;
//   1: a data downlink (parseDownlink, L1's keys and DevAddr; byte 1 the last FCntDown's low
//      bits) and its FOpts' MAC commands: an accepted one has a counter above the last;
//   2: a PULL_RESP's txpk JSON as the host shim reads it (parseTxpk, base64Decode);
//   3: the OTAA state's sectors 6, 7 (JoinStore) on a flash of any content: DevNonces strictly
//      increasing, a restart above the last one taken.
#include <cstdint>
#include <cstring>

#include "nodes/air/join_store.hpp"
#include "nodes/air/lorawan.hpp"
#include "nodes/air/tests/fakes.hpp"
#include "ports/host/air_udp_radio.hpp"

namespace {

namespace air = citygate::fw::air;

void joinAccept(const std::uint8_t* data, std::size_t size) {
  static const std::uint8_t kAppKey[16] = {0x98, 0x92, 0x9b, 0x92, 0xc4, 0x9e, 0xdb, 0xa9,
                                           0x67, 0x6d, 0x64, 0x6d, 0x3b, 0x61, 0x24, 0x56};
  air::JoinAccept a;
  const air::RxError e = air::parseJoinAccept(kAppKey, 0xf18e, data, size, a);
  if (e == air::RxError::None && ((size != 17 && size != 33) || data[0] != air::kMhdrJoinAccept)) __builtin_trap();
  if (e == air::RxError::None && (a.rxDelay < 1 || a.rxDelay > 15)) __builtin_trap();
  if (e == air::RxError::Count || air::rxErrorName(e) == nullptr) __builtin_trap();
}

void downlink(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return;
  static air::Session session;
  static bool ready = false;
  if (!ready) {
    const std::uint8_t nwk[16] = {0x44, 0x02, 0x42, 0x41, 0xed, 0x4c, 0xe9, 0xa6,
                                  0x8c, 0x6a, 0x8b, 0xc0, 0x55, 0x23, 0x3f, 0xd3};
    const std::uint8_t app[16] = {0xec, 0x92, 0x58, 0x02, 0xae, 0x43, 0x0c, 0xa7,
                                  0x7f, 0xd3, 0xdd, 0x73, 0xcb, 0x2c, 0xc5, 0x88};
    ready = session.init(nwk, app);
    if (!ready) __builtin_trap();
  }
  const bool haveLast = (data[0] & 0x80) != 0;
  const std::uint32_t last = data[0] & 0x7F;
  air::Downlink d;
  const air::RxError e = air::parseDownlink(session, 0x49BE7DF1, haveLast, last, data + 1, size - 1, d);
  if (e != air::RxError::None) return;
  if (haveLast && d.fcnt <= last) __builtin_trap();
  if (d.foptsLen > 15 || d.payloadSize > air::kMaxDownlink) __builtin_trap();
  air::MacResult m;
  air::parseMacCommands(d.fopts, d.foptsLen, m);
  if (m.ignored > 15) __builtin_trap();
}

void txpk(const std::uint8_t* data, std::size_t size) {
  citygate::fw::host::Txpk t;
  if (citygate::fw::host::parseTxpk(reinterpret_cast<const char*>(data), size, t)) {
    if (t.size == 0 || t.size > 255 || (!t.immediate && !t.hasTmst)) __builtin_trap();
  }
}

void store(const std::uint8_t* data, std::size_t size) {
  citygate::fw::test::FakeFlash flash(256, 8);
  const std::size_t area = 2 * 256;
  std::memcpy(flash.bytes() + 6 * 256, data, size < area ? size : area);
  air::JoinStore s(flash);
  if (!s.start()) __builtin_trap();
  const std::uint32_t first = s.nextDevNonce();
  bool any = false;
  std::uint16_t last = 0;
  for (int i = 0; i < 40; ++i) {
    std::uint16_t n = 0;
    if (!s.takeDevNonce(n)) break;  // only when the 16-bit DevNonce is used up
    if (n < first || (any && n <= last)) __builtin_trap();
    any = true;
    last = n;
    if (i == 3) s.saveSession(air::OtaaSession{});
  }
  air::JoinStore again(flash);
  if (!again.start()) __builtin_trap();
  if (any && again.nextDevNonce() <= last) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 4) {
    case 0:
      joinAccept(data + 1, size - 1);
      break;
    case 1:
      downlink(data + 1, size - 1);
      break;
    case 2:
      txpk(data + 1, size - 1);
      break;
    default:
      store(data + 1, size - 1);
      break;
  }
  return 0;
}
