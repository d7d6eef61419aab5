// Shared set-up of the LoRa fuzz targets: the five devices of tests/data/lora/devices.json (one per
// codec), so corpus frames built with their keys reach MIC verification, decryption and codecs.
#pragma once

#include <google/protobuf/text_format.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "citygate/v1/config.pb.h"
#include "config/diagnostics.hpp"
#include "inputs/lora/codecs/registry.hpp"
#include "inputs/lora/frame_processor.hpp"

namespace lora_fuzz {

namespace pb = citygate::v1;

struct Device {
  const char* id;
  std::uint32_t addr;
  const char* nwk;
  const char* app;
  const char* textproto;  // codec settings
};

inline const std::vector<Device>& devices() {
  static const std::vector<Device> d{
      {"parking-bay-0042", 0x26011F42, "44024241ed4ce9a68c6a8bc055233fd3", "ec925802ae430ca77fd3dd73cb2cc588",
       "codec: \"nwave-nps405\""},
      {"parking-bay-0043", 0x26011F43, "2b7e151628aed2a6abf7158809cf4f3c", "000102030405060708090a0b0c0d0e0f",
       "codec: \"bosch-tps110\""},
      {"air-node-01", 0x26011A01, "a1a2a3a4a5a6a7a8a9aaabacadaeafb0", "b1b2b3b4b5b6b7b8b9babbbcbdbebfc0",
       "codec: \"citygate-air\""},
      {"traffic-node-01", 0x26011B01, "c1c2c3c4c5c6c7c8c9cacbcccdcecfd0", "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0",
       "codec: \"citygate-traffic\""},
      {"lpp-air-01", 0x26011C01, "e1e2e3e4e5e6e7e8e9eaebecedeeeff0", "f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
       "codec: \"cayenne-lpp\" kind: \"AIR_QUALITY\" lpp_channel { channel: 3 field: \"temperature\" } "
       "lpp_channel { channel: 5 field: \"pm25\" }"},
      // Shares the DevAddr of the first device (resolved by MIC).
      {"parking-bay-0042b", 0x26011F42, "000102030405060708090a0b0c0d0e0f", "44024241ed4ce9a68c6a8bc055233fd3",
       "codec: \"bosch-tps110\" relax_fcnt: true"},
  };
  return d;
}

inline std::vector<citygate::lora::DeviceSpec> deviceSpecs() {
  std::vector<citygate::lora::DeviceSpec> out;
  for (const auto& d : devices()) {
    pb::LoraDevice dev;
    google::protobuf::TextFormat::ParseFromString(d.textproto, &dev);
    dev.set_id(d.id);
    citygate::config::Diagnostics diags;
    auto built = citygate::lora::buildCodec(dev, citygate::config::Location(), diags);
    if (!built) std::abort();
    auto sensor = std::make_shared<citygate::core::SensorSpec>();
    sensor->id = d.id;
    sensor->kind = built->kind;
    sensor->points = built->points;
    citygate::core::buildGroups(*sensor);
    citygate::lora::DeviceSpec s;
    s.sensor = sensor;
    s.codec = built->codec;
    s.devAddr = d.addr;
    s.nwkSKey = *citygate::lora::Key::fromHex(d.nwk);
    s.appSKey = *citygate::lora::Key::fromHex(d.app);
    s.relaxFcnt = dev.relax_fcnt();
    out.push_back(std::move(s));
  }
  return out;
}

// A fresh processor per input: every run starts from the same state, so a crash reproduces.
inline std::unique_ptr<citygate::lora::FrameProcessor> makeProcessor(std::size_t* samples) {
  static const auto specs = deviceSpecs();
  static const auto log = std::make_shared<spdlog::logger>("lora", std::make_shared<spdlog::sinks::null_sink_st>());
  citygate::lora::ProcessorOptions o;
  o.maxPending = 16;
  o.maxFcntGap = 1000;
  return std::make_unique<citygate::lora::FrameProcessor>(
      specs, o, citygate::lora::Crypto::create(nullptr),
      [samples](const citygate::core::SensorSpec& spec, citygate::core::SensorMemory& mem,
                citygate::core::RawSample&& s) {
        // Normalise too: the codecs' values must make valid readings.
        std::vector<pb::Reading> out;
        citygate::core::Normaliser::normalise(spec, s, mem, out);
        *samples += out.size();
      },
      log);
}

}  // namespace lora_fuzz
