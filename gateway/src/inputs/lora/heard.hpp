// HeardTable: the DevAddrs the packet forwarder heard that no configured device has
// (`citygatectl lora heard`), so that a technician commissioning a node sees its DevAddr, signal
// and time instead of an `unknown_dev_addr` count.
//
// Bounded: at most `capacity` entries (default 64), stored in one array allocated at
// construction; a new DevAddr in a full table replaces the one heard least recently, and the
// replacement is counted (evicted()). A flood of random DevAddrs therefore costs a linear search
// of the table per frame and never memory. Nothing in a heard frame is verified (its key is not
// known): the fields are what the air carried. Runs on the executor with the FrameProcessor; time
// comes in as an argument.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/time.hpp"

namespace citygate::lora {

struct HeardEntry {
  std::uint32_t devAddr = 0;
  std::uint64_t frames = 0;  // receptions of data uplinks from it
  double lastRssi = 0.0;
  double lastSnr = 0.0;
  double frequency = 0.0;           // MHz, last reception
  std::array<char, 16> dataRate{};  // NUL-terminated, "SF9BW125" (truncated to 15 characters)
  std::uint16_t lastFcnt16 = 0;
  std::uint64_t gatewayEui = 0;
  WallTime firstHeard{};
  WallTime lastHeard{};
  std::uint64_t stamp = 0;  // order of the last reception: the smallest is evicted first

  std::string_view dataRateText() const { return std::string_view(dataRate.data()); }
};

// What one reception carried.
struct HeardSignal {
  double rssi = 0.0;
  double snr = 0.0;
  double frequency = 0.0;
  std::string_view dataRate;
  std::uint16_t fcnt16 = 0;
  std::uint64_t gatewayEui = 0;
};

class HeardTable {
 public:
  static constexpr std::size_t kDefaultCapacity = 64;

  explicit HeardTable(std::size_t capacity = kDefaultCapacity);

  // A data uplink from `devAddr`, which no configured device has.
  void heard(std::uint32_t devAddr, const HeardSignal& signal, WallTime now);

  // The entries, in no particular order (sorted() for display order).
  std::span<const HeardEntry> entries() const { return {entries_.data(), size_}; }
  // The entries, most recently heard first.
  std::vector<HeardEntry> sorted() const;
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return entries_.size(); }
  std::uint64_t evicted() const { return evicted_; }

 private:
  std::vector<HeardEntry> entries_;  // sized once; the first size_ are in use
  std::size_t size_ = 0;
  std::uint64_t stamp_ = 0;
  std::uint64_t evicted_ = 0;
};

}  // namespace citygate::lora
