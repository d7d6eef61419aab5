// The kinds of source this gateway knows: one line each. A new kind (M-Bus, BACnet) lives in its
// own folder under inputs/, implements sources::SourceKind and is added here.
#include "app/validate.hpp"
#include "inputs/lora/kind.hpp"
#include "inputs/modbus/kind.hpp"

namespace citygate::app {

namespace {

sources::SourceRegistry makeRegistry() {
  sources::SourceRegistry r;
  r.add(modbus::makeSourceKind());
  r.add(lora::makeSourceKind());
  return r;
}

}  // namespace

const sources::SourceRegistry& sourceRegistry() {
  static const sources::SourceRegistry registry = makeRegistry();  // immutable once built
  return registry;
}

}  // namespace citygate::app
