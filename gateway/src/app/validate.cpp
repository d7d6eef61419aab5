#include "app/validate.hpp"

namespace citygate::app {

std::unique_ptr<ValidatedConfig> validateText(const std::string& path, const std::string& text,
                                              config::Diagnostics& diags) {
  auto v = std::make_unique<ValidatedConfig>();
  const std::size_t before = diags.size();
  config::loadConfigText(path, text, v->loaded, diags);
  if (!v->loaded.syntaxOk) return nullptr;
  // Keep checking after gateway-wide errors so the technician sees every problem at once.
  v->buses = modbus::compileBuses(v->loaded, diags);
  v->lora = lora::compile(v->loaded, diags);
  if (diags.size() != before) return nullptr;
  return v;
}

std::unique_ptr<ValidatedConfig> validateFile(const std::string& path, config::Diagnostics& diags) {
  std::string text;
  if (!config::readFile(path, text, diags)) return nullptr;
  return validateText(path, text, diags);
}

}  // namespace citygate::app
