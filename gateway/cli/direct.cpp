#include "cli/direct.hpp"

#include "config/loader.hpp"

namespace citygate::cli {

bool wantsDirect(const Args& a) {
  return a.has("tcp") || a.has("rtu") || a.has("rtu-over-tcp") || a.has("direct");
}

namespace {

bool hostPort(const std::string& s, pb::TcpEndpoint& out) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) {
    out.set_host(s);
    return !s.empty();
  }
  const auto port = parseUint(s.substr(colon + 1), 65535);
  if (!port || *port == 0) return false;
  out.set_host(s.substr(0, colon));
  out.set_port(*port);
  return !out.host().empty();
}

}  // namespace

std::optional<pb::ModbusBus> directBus(const Ctx& ctx, const Args& a, const std::string& name, int& exitCode) {
  const bool flags = a.has("tcp") || a.has("rtu") || a.has("rtu-over-tcp");
  if (a.has("config") && !flags) {
    // Only the bus settings are needed: a file that parses will do, even when other parts do not
    // validate for this user (LoRa key files are readable by the daemon's user only).
    config::Diagnostics diags;
    config::LoadedConfig loaded;
    config::loadConfigFile(a.value("config"), loaded, diags);
    if (!loaded.syntaxOk) {
      std::fputs(diags.str().c_str(), stderr);
      exitCode = fail(ctx, kExitConfig, a.value("config") + " does not parse; cannot take the bus settings from it");
      return std::nullopt;
    }
    for (const auto& bus : loaded.config.modbus_bus()) {
      if (bus.name() == name) {
        pb::ModbusBus b = bus;  // defaults applied
        b.clear_device();
        if (a.has("timeout")) {
          if (auto t = parseUint(a.value("timeout"), 60000)) b.set_response_timeout_ms(*t);
        }
        return b;
      }
    }
    std::string known;
    for (const auto& bus : loaded.config.modbus_bus()) known += (known.empty() ? "" : ", ") + bus.name();
    exitCode = fail(ctx, kExitNotFound,
                    "no bus '" + name + "' in " + a.value("config") + (known.empty() ? "" : " (buses: " + known + ")"));
    return std::nullopt;
  }
  if (!flags) {
    exitCode = fail(ctx, kExitUsage,
                    "direct access needs the bus settings: --config FILE, or --tcp HOST:PORT, "
                    "--rtu-over-tcp HOST:PORT or --rtu DEVICE [--baud N --parity N|E|O]");
    return std::nullopt;
  }
  pb::GatewayConfig gc;
  auto* bus = gc.add_modbus_bus();
  bus->set_name(name);
  if (a.has("tcp") || a.has("rtu-over-tcp")) {
    const bool rot = a.has("rtu-over-tcp");
    const std::string spec = a.value(rot ? "rtu-over-tcp" : "tcp");
    if (!hostPort(spec, rot ? *bus->mutable_rtu_over_tcp() : *bus->mutable_tcp())) {
      exitCode = usageError(ctx, "modbus",
                            "--" + std::string(rot ? "rtu-over-tcp" : "tcp") + " wants HOST:PORT, not '" + spec + "'");
      return std::nullopt;
    }
  } else {
    auto* r = bus->mutable_rtu();
    r->set_device(a.value("rtu"));
    if (a.has("baud")) {
      auto b = parseUint(a.value("baud"), 4000000);
      if (!b || *b == 0) {
        exitCode = usageError(ctx, "modbus", "--baud wants a number, e.g. 9600");
        return std::nullopt;
      }
      r->set_baud(*b);
    }
    if (a.has("parity")) {
      const std::string p = a.value("parity");
      if (p == "N" || p == "n" || p == "none") {
        r->set_parity(pb::SerialRtu::NONE);
      } else if (p == "E" || p == "e" || p == "even") {
        r->set_parity(pb::SerialRtu::EVEN);
      } else if (p == "O" || p == "o" || p == "odd") {
        r->set_parity(pb::SerialRtu::ODD);
      } else {
        exitCode = usageError(ctx, "modbus", "--parity wants N, E or O");
        return std::nullopt;
      }
    }
    if (a.has("data-bits")) r->set_data_bits(parseUint(a.value("data-bits"), 8).value_or(8));
    if (a.has("stop-bits")) r->set_stop_bits(parseUint(a.value("stop-bits"), 2).value_or(1));
  }
  config::applyDefaults(gc);
  if (a.has("timeout")) {
    if (auto t = parseUint(a.value("timeout"), 60000)) bus->set_response_timeout_ms(*t);
  }
  return *bus;
}

DirectBus::DirectBus(const pb::ModbusBus& bus) : transport_(modbus::makeTransport(bus)) {}

modbus::ReadError DirectBus::open() {
  return transport_->connect();
}

DirectResult DirectBus::read(std::uint8_t unit, pb::RegisterTable table, std::uint16_t address, std::uint16_t count,
                             std::chrono::milliseconds timeout) {
  DirectResult r;
  r.registers.assign(count, 0);
  const auto start = std::chrono::steady_clock::now();
  r.error = transport_->connect();
  if (r.error.ok()) r.error = transport_->read(unit, table, address, count, timeout, r.registers);
  r.rttUs = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
  return r;
}

}  // namespace citygate::cli
