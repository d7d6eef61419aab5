#include "inputs/lora/kind.hpp"

#include <boost/asio/post.hpp>

#include "inputs/lora/source.hpp"
#include "sources/port_check.hpp"

namespace citygate::lora {

namespace {

namespace pb = citygate::v1;

class LoraKind final : public sources::SourceKind {
 public:
  std::string_view name() const override { return kKindName; }

  void validate(const config::LoadedConfig& cfg, config::Diagnostics& diags, sources::SpecList& out) const override {
    auto lora = compile(cfg, diags);
    if (!lora) return;
    const auto& c = cfg.config;
    auto spec = std::make_shared<LoraSourceSpec>();
    spec->kind = kKindName;
    spec->name = kSourceName;
    spec->settings =
        config::canonicalBytes(c.lora()) + '\x1f' + c.state_dir() + '\x1f' + config::canonicalBytes(c.location());
    const std::string transport = "lorawan " + c.lora().packet_forwarder().bind() + ":" +
                                  std::to_string(c.lora().packet_forwarder().port()) + "/udp";
    for (const auto& dev : c.lora().device()) {
      pb::DeviceInfo d;
      d.set_id(dev.id());
      d.set_kind("lorawan");
      d.set_profile(dev.codec());
      d.set_dev_addr(dev.dev_addr());
      d.set_transport(transport);
      spec->devices.push_back(std::move(d));
    }
    spec->lora = std::move(*lora);
    out.push_back(std::move(spec));
  }

  bool unchanged(const sources::SourceSpec& running, const sources::SourceSpec& next) const override {
    const auto& a = static_cast<const LoraSourceSpec&>(running);
    const auto& b = static_cast<const LoraSourceSpec&>(next);
    if (a.settings != b.settings) return false;
    // Keys read from key files: same file names, possibly new content.
    if (a.lora.devices.size() != b.lora.devices.size()) return false;
    for (std::size_t i = 0; i < a.lora.devices.size(); ++i) {
      const auto& da = a.lora.devices[i];
      const auto& db = b.lora.devices[i];
      if (!(da.nwkSKey == db.nwkSKey) || !(da.appSKey == db.appSKey) || !(da.appKey == db.appKey)) return false;
    }
    return true;
  }

  void namedFiles(const config::LoadedConfig& cfg, std::vector<std::string>& out) const override {
    if (!cfg.config.has_lora()) return;
    for (const auto& d : cfg.config.lora().device()) {
      out.push_back(d.nwk_s_key_file());
      out.push_back(d.app_s_key_file());
      out.push_back(d.app_key_file());
    }
  }

  std::string checkPorts(const sources::SourceSpec& next, const sources::SourceSpec* running,
                         const config::ReadPolicy&) const override {
    const LoraSpec& b = static_cast<const LoraSourceSpec&>(next).lora;
    if (running) {
      const LoraSpec& a = static_cast<const LoraSourceSpec&>(*running).lora;
      if (a.bind == b.bind && a.port == b.port) return {};  // the running source holds it
    }
    auto why = sources::checkUdpPort(b.bind, b.port);
    return why.empty() ? why : "lora: " + why;
  }

  std::shared_ptr<sources::Source> make(std::shared_ptr<const sources::SourceSpec> spec,
                                        const sources::SourceContext& context) const override {
    auto loraSpec = std::static_pointer_cast<const LoraSourceSpec>(std::move(spec));
    auto source = std::make_shared<LoraSource>(context.executor, *context.clock, loraSpec->lora, context.submit,
                                               context.logger("lora"));
    return std::make_shared<LoraSourceHandle>(context.executor, std::move(loraSpec), std::move(source));
  }
};

}  // namespace

LoraSourceHandle::LoraSourceHandle(boost::asio::any_io_executor executor, std::shared_ptr<const LoraSourceSpec> spec,
                                   std::shared_ptr<LoraSource> source)
    : spec_(std::move(spec)), source_(std::move(source)), executor_(std::move(executor)) {}

Status LoraSourceHandle::start() {
  return source_->start();
}

void LoraSourceHandle::stop(std::function<void()> done) {
  source_->stop();  // closes the socket, publishes frames in their dedup window, writes the counters
  boost::asio::post(executor_, std::move(done));
}

void LoraSourceHandle::fillHealth(pb::GatewayHealth& health) const {
  source_->fillHealth(health);  // GatewayHealth.lora and the LoRa devices
}

std::unique_ptr<sources::SourceKind> makeSourceKind() {
  return std::make_unique<LoraKind>();
}

}  // namespace citygate::lora
