// The LoRa kind of source (sources/kind.hpp): the `lora` block is one source named "lora".
// LoraSourceHandle wraps a LoraSource for the gateway and the control socket.
#pragma once

#include <memory>
#include <string>

#include "inputs/lora/spec.hpp"
#include "sources/kind.hpp"

namespace citygate::lora {

class LoraSource;

inline constexpr const char* kKindName = "lora";
inline constexpr const char* kSourceName = "lora";

struct LoraSourceSpec : sources::SourceSpec {
  LoraSpec lora;
  // The settings a running source depends on besides its keys: the lora block, state_dir and the
  // gateway location (serialised deterministically).
  std::string settings;
  void sensors(std::vector<std::shared_ptr<const core::SensorSpec>>& out) const override {
    for (const auto& d : lora.devices) out.push_back(d.sensor);
  }
};

class LoraSourceHandle final : public sources::Source {
 public:
  LoraSourceHandle(boost::asio::any_io_executor executor, std::shared_ptr<const LoraSourceSpec> spec,
                   std::shared_ptr<LoraSource> source);

  const sources::SourceSpec& spec() const override { return *spec_; }
  Status start() override;
  void stop(std::function<void()> done) override;
  void fillHealth(citygate::v1::GatewayHealth& health) const override;

  const LoraSource& source() const { return *source_; }
  LoraSource& source() { return *source_; }

 private:
  std::shared_ptr<const LoraSourceSpec> spec_;
  std::shared_ptr<LoraSource> source_;
  boost::asio::any_io_executor executor_;
};

std::unique_ptr<sources::SourceKind> makeSourceKind();

}  // namespace citygate::lora
