#include "inputs/lora/heard.hpp"

#include <algorithm>

namespace citygate::lora {

HeardTable::HeardTable(std::size_t capacity) : entries_(std::max<std::size_t>(capacity, 1)) {}

void HeardTable::heard(std::uint32_t devAddr, const HeardSignal& signal, WallTime now) {
  HeardEntry* e = nullptr;
  for (std::size_t i = 0; i < size_; ++i) {
    if (entries_[i].devAddr == devAddr) {
      e = &entries_[i];
      break;
    }
  }
  if (e == nullptr) {
    if (size_ < entries_.size()) {
      e = &entries_[size_++];
    } else {
      // Full: the one heard least recently makes room.
      e = &*std::min_element(entries_.begin(), entries_.end(),
                             [](const HeardEntry& a, const HeardEntry& b) { return a.stamp < b.stamp; });
      ++evicted_;
    }
    *e = HeardEntry{};
    e->devAddr = devAddr;
    e->firstHeard = now;
  }
  ++e->frames;
  e->lastRssi = signal.rssi;
  e->lastSnr = signal.snr;
  e->frequency = signal.frequency;
  const std::size_t n = std::min(signal.dataRate.size(), e->dataRate.size() - 1);
  std::copy_n(signal.dataRate.data(), n, e->dataRate.data());
  e->dataRate[n] = '\0';
  e->lastFcnt16 = signal.fcnt16;
  e->gatewayEui = signal.gatewayEui;
  e->lastHeard = now;
  e->stamp = ++stamp_;
}

std::vector<HeardEntry> HeardTable::sorted() const {
  std::vector<HeardEntry> out(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(size_));
  std::sort(out.begin(), out.end(), [](const HeardEntry& a, const HeardEntry& b) { return a.stamp > b.stamp; });
  return out;
}

}  // namespace citygate::lora
