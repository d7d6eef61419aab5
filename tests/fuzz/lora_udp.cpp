// A UDP datagram as the packet forwarder server receives it: header, PUSH_DATA JSON, rxpk (base64,
// sizes), and every valid rxpk through the frame processor (MIC, decryption, codecs, normaliser).
#include <cstdint>

#include "inputs/lora/semtech_udp.hpp"
#include "lora_harness.hpp"

namespace {

struct Visitor final : citygate::lora::PushVisitor {
  citygate::lora::FrameProcessor* p;
  citygate::SteadyTime now = citygate::SteadyClock::now();
  void onRxpk(const citygate::lora::RxPacket& rx) override {
    if (rx.size > citygate::lora::kMaxPhyPayload) __builtin_trap();
    (void)p->onRxpk(rx, 0xAA555A0000000000ULL, now, citygate::WallClock::now());
    now += std::chrono::milliseconds(30);
  }
  void onRxpkRejected(citygate::lora::Reason r) override { p->count(r); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static citygate::lora::json::Document doc;
  std::size_t samples = 0;
  auto proc = lora_fuzz::makeProcessor(&samples);
  citygate::lora::UdpPacket pkt;
  if (auto why = citygate::lora::parseDatagram({data, size}, pkt)) {
    proc->count(*why);
    return 0;
  }
  const auto ack = citygate::lora::makeAck(pkt);
  if (ack[1] != data[1] || ack[2] != data[2]) __builtin_trap();  // the token is echoed
  if (pkt.type != citygate::lora::PacketType::PushData) return 0;
  Visitor v;
  v.p = proc.get();
  citygate::lora::StatReport stat;
  if (auto why = citygate::lora::parsePushData(pkt.body, doc, v, stat)) proc->count(*why);
  proc->flushDue(v.now + std::chrono::seconds(1));
  proc->flushAll();
  return 0;
}
