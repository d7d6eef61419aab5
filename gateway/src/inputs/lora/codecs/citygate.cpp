#include "inputs/lora/codecs/citygate.hpp"

namespace citygate::lora {

namespace nf = node_format;

namespace {

// The node's "sensor fault" value makes the point BAD; any other raw value is the point's value
// before scale (PointSpec::scale is the field's resolution).
void mapField(const nf::FieldLayout& f, std::int32_t raw, std::span<core::RawValue> values, std::size_t point) {
  if (nf::isFault(f, raw)) {
    setBad(values, point);
  } else {
    setValue(values, point, raw);
  }
}

}  // namespace

DecodeResult CitygateAirCodec::decode(std::uint8_t fport, std::span<const std::uint8_t> p,
                                      std::span<core::RawValue> values) const {
  if (fport != kCitygatePort) return {DecodeStatus::UnknownPort, "unknown port", {}};
  nf::air::Frame frame;
  const nf::Status s = nf::air::decode(p.data(), p.size(), frame);
  if (s != nf::Status::Ok) return {DecodeStatus::Malformed, nf::air::describe(s), {}};
  for (std::size_t i = 0; i < nf::air::kFieldCount; ++i) {
    if ((frame.mask >> i) & 1U) mapField(nf::air::kFields[i], frame.raw[i], values, i);
  }
  return {DecodeStatus::Reading, nf::air::describe(s), {}};
}

DecodeResult CitygateTrafficCodec::decode(std::uint8_t fport, std::span<const std::uint8_t> p,
                                          std::span<core::RawValue> values) const {
  if (fport != kCitygatePort) return {DecodeStatus::UnknownPort, "unknown port", {}};
  nf::traffic::Frame frame;
  const nf::Status s = nf::traffic::decode(p.data(), p.size(), frame);
  if (s != nf::Status::Ok) return {DecodeStatus::Malformed, nf::traffic::describe(s), {}};
  for (std::size_t l = 0; l < frame.laneCount; ++l) {
    const nf::traffic::Lane& lane = frame.lanes[l];
    for (std::size_t i = 0; i < nf::traffic::kFieldCount; ++i) {
      if ((lane.mask >> i) & 1U) mapField(nf::traffic::kFields[i], lane.raw[i], values, trafficPoint(lane.id, i));
    }
    setValue(values, trafficPoint(lane.id, kTrafficCongested), lane.congested ? 1 : 0);
  }
  return {DecodeStatus::Reading, nf::traffic::describe(s), std::chrono::seconds(frame.periodS)};
}

}  // namespace citygate::lora
