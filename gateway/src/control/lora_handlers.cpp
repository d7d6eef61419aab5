// The LoRa commands of the control socket that need more than health (`lora heard`): the one
// place of control/ besides modbus_handlers.cpp that knows a kind of source. The source is found
// by kind and name among the running sources and cast to lora::LoraSourceHandle.
#include <cstdio>

#include "control/handlers.hpp"
#include "core/time.hpp"
#include "inputs/lora/kind.hpp"
#include "inputs/lora/semtech_udp.hpp"
#include "inputs/lora/source.hpp"

namespace citygate::control {

namespace pb = citygate::v1;

void Handlers::loraHeard(Reply reply) {
  pb::ControlResponse r;
  auto* out = r.mutable_lora_heard();
  const auto& c = gateway_->loadedConfig().config;
  if (c.has_lora()) {
    out->set_bind(c.lora().packet_forwarder().bind() + ":" + std::to_string(c.lora().packet_forwarder().port()));
  }
  const auto source = gateway_->findSource(lora::kKindName, lora::kSourceName);
  const lora::FrameProcessor* p =
      source ? static_cast<const lora::LoraSourceHandle&>(*source).source().processor() : nullptr;
  if (p != nullptr) {
    const lora::HeardTable& t = p->heard();
    out->set_capacity(static_cast<std::uint32_t>(t.capacity()));
    out->set_evicted(t.evicted());
    out->set_unknown_frames(p->counters().rejected[static_cast<std::size_t>(lora::Reason::UnknownDevAddr)]);
    for (const lora::HeardEntry& e : t.sorted()) {
      pb::HeardDevAddr& h = *out->add_heard();
      char addr[9];
      std::snprintf(addr, sizeof addr, "%08X", static_cast<unsigned>(e.devAddr));
      h.set_dev_addr(addr);
      h.set_frames(e.frames);
      h.set_last_rssi(e.lastRssi);
      h.set_last_snr(e.lastSnr);
      toTimestamp(e.firstHeard, h.mutable_first_heard_at());
      toTimestamp(e.lastHeard, h.mutable_last_heard_at());
      h.set_frequency(e.frequency);
      h.set_data_rate(std::string(e.dataRateText()));
      h.set_last_f_cnt(e.lastFcnt16);
      h.set_gateway_eui(lora::formatEui(e.gatewayEui));
    }
  }
  reply.send(std::move(r));
}

void Handlers::loraDevStatus(const std::string& device, Reply reply) {
  const auto source = gateway_->findSource(lora::kKindName, lora::kSourceName);
  if (!source) {
    reply.error(pb::ControlError::NOT_FOUND, "no LoRa source is running");
    return;
  }
  auto& handle = static_cast<lora::LoraSourceHandle&>(*source);
  switch (const lora::EnqueueResult r = handle.source().requestDevStatus(device)) {
    case lora::EnqueueResult::Queued: {
      pb::ControlResponse resp;
      resp.mutable_lora_dev_status()->set_device(device);
      resp.mutable_lora_dev_status()->set_result(std::string(lora::enqueueResultName(r)));
      reply.send(std::move(resp));
      return;
    }
    case lora::EnqueueResult::Disabled:
      reply.error(pb::ControlError::UNAVAILABLE, "LoRa downlinks are off (lora { downlink { enabled: true } })");
      return;
    default:
      reply.error(pb::ControlError::NOT_FOUND, "no LoRa device '" + device + "' (an id, DevEUI or DevAddr)");
      return;
  }
}

}  // namespace citygate::control
