// citygatectl modbus read / probe / scan: through the daemon when it runs (BusSource::adhocRead:
// queued behind the polls, so the bus is not disturbed), directly on the port when it does not.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli/cli.hpp"
#include "cli/direct.hpp"
#include "cli/probe.hpp"
#include "cli/terminal.hpp"

namespace citygate::cli {

namespace {

enum class Route : std::uint8_t { Daemon, Direct, Failed };

// Daemon when it answers; the port itself with --tcp/--rtu/--direct, or when the daemon is not
// running and --config names the bus settings.
Route route(const Ctx& ctx, const Args& a, int& exitCode) {
  if (wantsDirect(a)) return Route::Direct;
  Client probe(ctx.socket);
  ClientError err;
  if (probe.connect(err)) return Route::Daemon;
  if (err.exitCode == kExitNoDaemon && a.has("config")) return Route::Direct;
  std::string hint;
  if (err.exitCode == kExitNoDaemon) {
    hint = "; to use the port without the daemon, pass --config FILE or --tcp HOST:PORT / --rtu DEVICE";
  }
  exitCode = fail(ctx, err.exitCode, err.message + hint);
  return Route::Failed;
}

struct ReadOperands {
  std::string bus;
  std::uint32_t unit = 0;
  pb::RegisterTable table = pb::HOLDING_REGISTER;
  std::uint32_t address = 0;
  std::uint32_t count = 0;
  std::uint32_t timeoutMs = 0;  // 0: the bus's
};

bool bitTable(pb::RegisterTable t) {
  return t == pb::COIL || t == pb::DISCRETE_INPUT;
}

std::string plural(pb::RegisterTable t, std::uint32_t n) {
  const std::string name = tableName(t);
  std::string word = name == "coil" ? "coil" : name == "discrete" ? "discrete input" : name + " register";
  return word + (n == 1 ? "" : "s");
}

// One read, either way. Returns 0 and fills `registers`/`rtt`/`transport`, or an exit code
// (already reported).
// A hint when ADDR looks like Modicon notation (40001 = holding register 1 = PDU address 0), the
// usual cause of "illegal data address" from a technician's first read; "" otherwise.
std::string modiconHint(std::uint32_t address) {
  struct Range {
    std::uint32_t first, last;
    const char* table;
  };
  static constexpr Range kRanges[] = {{400001, 465536, "holding"},  {300001, 365536, "input"},
                                      {100001, 165536, "discrete"}, {40001, 49999, "holding"},
                                      {30001, 39999, "input"},      {10001, 19999, "discrete"}};
  for (const auto& r : kRanges) {
    if (address < r.first || address > r.last) continue;
    return "hint: " + std::to_string(address) + " looks like Modicon notation; " + r.table + " register " +
           std::to_string(address - r.first + 1) + " is PDU address " + std::to_string(address - r.first) +
           " (try: " + r.table + " " + std::to_string(address - r.first) + ")";
  }
  return {};
}

int readRegisters(const Ctx& ctx, const Args& a, const ReadOperands& op, std::vector<std::uint16_t>& registers,
                  std::uint32_t& rttUs, std::string& transport) {
  int rc = 0;
  const Route r = route(ctx, a, rc);
  if (r == Route::Failed) return rc;
  if (r == Route::Daemon) {
    pb::ControlRequest req;
    auto* m = req.mutable_modbus_read();
    m->set_bus(op.bus);
    m->set_unit_id(op.unit);
    m->set_table(op.table);
    m->set_address(op.address);
    m->set_count(op.count);
    m->set_timeout_ms(op.timeoutMs);
    pb::ControlResponse resp;
    if (int code = roundTrip(ctx, req, resp, std::chrono::seconds(90)); code != 0) return code;
    registers.assign(resp.modbus_read().registers().begin(), resp.modbus_read().registers().end());
    rttUs = resp.modbus_read().rtt_us();
    transport = resp.modbus_read().transport() + " via citygated";
    return 0;
  }
  auto bus = directBus(ctx, a, op.bus, rc);
  if (!bus) return rc;
  DirectBus direct(*bus);
  const auto timeout = std::chrono::milliseconds(op.timeoutMs ? op.timeoutMs : bus->response_timeout_ms());
  auto result = direct.read(static_cast<std::uint8_t>(op.unit), op.table, static_cast<std::uint16_t>(op.address),
                            static_cast<std::uint16_t>(op.count), timeout);
  transport = direct.describe() + ", direct";
  if (!result.error.ok()) {
    std::string what;
    switch (result.error.kind) {
      case modbus::ErrorKind::Timeout:
        what = "no answer within " + std::to_string(timeout.count()) + " ms";
        break;
      case modbus::ErrorKind::Exception:
        what = "exception " + result.error.message;
        break;
      case modbus::ErrorKind::BadFrame:
        what = "bad answer: " + result.error.message;
        break;
      default:
        what = "link failed: " + result.error.message;
        break;
    }
    return fail(ctx, kExitFailed, "unit " + std::to_string(op.unit) + " (" + direct.describe() + "): " + what);
  }
  registers = std::move(result.registers);
  rttUs = result.rttUs;
  return 0;
}

// "bus b, unit 3, 4 holding registers 0..3 (tcp 127.0.0.1:502, 1.2 ms)", dimmed: what was read, how.
// readRegisters, with the Modicon hint when the device refused the read.
int readOnce(const Ctx& ctx, const Args& a, const ReadOperands& op, std::vector<std::uint16_t>& registers,
             std::uint32_t& rttUs, std::string& transport) {
  const int code = readRegisters(ctx, a, op, registers, rttUs, transport);
  if (code == kExitFailed) {
    if (const auto hint = modiconHint(op.address); !hint.empty()) std::fprintf(stderr, "%s\n", hint.c_str());
  }
  return code;
}

std::string readHeader(const Ctx& ctx, const ReadOperands& op, const std::string& transport, std::uint32_t rtt) {
  return ctx.out.paint("bus " + op.bus + ", unit " + std::to_string(op.unit) + ", " + plural(op.table, op.count) + " " +
                           std::to_string(op.address) + ".." + std::to_string(op.address + op.count - 1) + " (" +
                           transport + ", " + micros(rtt) + ")",
                       Colour::Dim);
}

bool parseUnit(const Ctx& ctx, const std::string& s, std::uint32_t& out, const char* cmd, int& rc) {
  auto v = parseUint(s, 255);
  if (!v) {
    rc = usageError(ctx, cmd, "UNIT must be a unit id 0..255, not '" + s + "'");
    return false;
  }
  out = *v;
  return true;
}

bool parseAddress(const Ctx& ctx, const std::string& s, std::uint32_t& out, const char* cmd, int& rc) {
  auto v = parseUint(s, 65535);
  if (!v) {
    const auto big = parseUint(s, 999999);
    const std::string hint = big ? modiconHint(*big) : std::string();
    rc = usageError(
        ctx, cmd, "ADDR must be a PDU address 0..65535 (0-based), not '" + s + "'" + (hint.empty() ? "" : "\n" + hint));
    return false;
  }
  out = *v;
  return true;
}

bool parseTimeout(const Ctx& ctx, const Args& a, std::uint32_t& out, const char* cmd, int& rc) {
  if (!a.has("timeout")) return true;
  auto v = parseUint(a.value("timeout"), 60000);
  if (!v || *v < 10) {
    rc = usageError(ctx, cmd, "--timeout wants milliseconds, 10..60000");
    return false;
  }
  out = *v;
  return true;
}

}  // namespace

// ---- read ---------------------------------------------------------------------------------------

int cmdModbusRead(const Ctx& ctx, const Args& a) {
  const char* cmd = "modbus read";
  if (a.positional.size() != 7) return usageError(ctx, cmd, "modbus read wants BUS UNIT TABLE ADDR COUNT");
  ReadOperands op;
  int rc = 0;
  op.bus = a.positional[2];
  if (!parseUnit(ctx, a.positional[3], op.unit, cmd, rc)) return rc;
  auto table = parseTable(a.positional[4]);
  if (!table) return usageError(ctx, cmd, "TABLE is holding, input, coil or discrete, not '" + a.positional[4] + "'");
  op.table = *table;
  if (!parseAddress(ctx, a.positional[5], op.address, cmd, rc)) return rc;
  const std::uint32_t maxCount = bitTable(op.table) ? 2000 : 125;
  auto count = parseUint(a.positional[6], maxCount);
  if (!count || *count == 0) return usageError(ctx, cmd, "COUNT must be 1.." + std::to_string(maxCount));
  if (op.address + *count > 65536) return usageError(ctx, cmd, "ADDR + COUNT runs past address 65535");
  op.count = *count;
  if (!parseTimeout(ctx, a, op.timeoutMs, cmd, rc)) return rc;

  std::vector<std::uint16_t> regs;
  std::uint32_t rtt = 0;
  std::string transport;
  if (int code = readOnce(ctx, a, op, regs, rtt, transport); code != 0) return code;
  if (ctx.json) {
    pb::ModbusReadResponse r;
    r.set_bus(op.bus);
    r.set_unit_id(op.unit);
    r.set_table(op.table);
    r.set_address(op.address);
    r.set_rtt_us(rtt);
    r.set_transport(transport);
    for (auto v : regs) r.add_registers(v);
    std::printf("%s\n", toJson(r, true).c_str());
    return 0;
  }
  std::printf("%s\n", readHeader(ctx, op, transport, rtt).c_str());
  if (bitTable(op.table)) {
    Table t({"ADDR", "VALUE"});
    for (std::size_t i = 0; i < regs.size(); ++i) t.add({std::to_string(op.address + i), regs[i] ? "1" : "0"});
    std::fputs(t.render(ctx.out).c_str(), stdout);
  } else {
    Table t({"ADDR", "HEX", "U16", "I16"});
    for (std::size_t i = 0; i < regs.size(); ++i) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%04X", regs[i]);
      t.add({std::to_string(op.address + i), hex, std::to_string(regs[i]),
             std::to_string(static_cast<std::int16_t>(regs[i]))});
    }
    std::fputs(t.render(ctx.out).c_str(), stdout);
  }
  return 0;
}

// ---- probe --------------------------------------------------------------------------------------

int cmdModbusProbe(const Ctx& ctx, const Args& a) {
  const char* cmd = "modbus probe";
  if (a.positional.size() != 5) return usageError(ctx, cmd, "modbus probe wants BUS UNIT ADDR");
  ReadOperands op;
  int rc = 0;
  op.bus = a.positional[2];
  if (!parseUnit(ctx, a.positional[3], op.unit, cmd, rc)) return rc;
  if (!parseAddress(ctx, a.positional[4], op.address, cmd, rc)) return rc;
  op.table = pb::HOLDING_REGISTER;
  if (a.has("table")) {
    auto t = parseTable(a.value("table"));
    if (!t || bitTable(*t)) return usageError(ctx, cmd, "--table is holding or input");
    op.table = *t;
  }
  op.count = 4;
  if (a.has("count")) {
    auto c = parseUint(a.value("count"), 8);
    if (!c || *c < 2) return usageError(ctx, cmd, "--count wants 2..8 registers");
    op.count = *c;
  }
  if (op.address + op.count > 65536) return usageError(ctx, cmd, "ADDR + COUNT runs past address 65535");
  if (!parseTimeout(ctx, a, op.timeoutMs, cmd, rc)) return rc;

  std::vector<std::uint16_t> regs;
  std::uint32_t rtt = 0;
  std::string transport;
  if (int code = readOnce(ctx, a, op, regs, rtt, transport); code != 0) return code;
  const Probe p = interpret(op.address, regs);
  if (ctx.json) {
    const std::string header = "\"bus\":" + jsonString(op.bus) + ",\"unit_id\":" + std::to_string(op.unit) +
                               ",\"table\":" + jsonString(tableName(op.table)) +
                               ",\"transport\":" + jsonString(transport) + ",\"rtt_us\":" + std::to_string(rtt) + ",";
    std::printf("%s\n", probeJson(p, header).c_str());
    return 0;
  }
  std::printf("%s\n\n", readHeader(ctx, op, transport, rtt).c_str());
  std::fputs(renderProbe(p, ctx.out).c_str(), stdout);
  return 0;
}

// ---- scan ---------------------------------------------------------------------------------------

namespace {

struct ScanView {
  ScanView(const Ctx& c, std::string b) : ctx(c), bus(std::move(b)) {}

  const Ctx& ctx;
  std::string bus;
  std::vector<std::uint32_t> found;
  Table table{{"UNIT", "ANSWER", "RTT"}};
  bool progressShown = false;

  void progress(const pb::ModbusScanProgress& p) {
    if (p.answered()) found.push_back(p.unit_id());
    if (ctx.json) {
      std::printf("%s\n", toJson(p, false).c_str());
      std::fflush(stdout);
      return;
    }
    if (p.answered()) {
      table.add({std::to_string(p.unit_id()), p.detail(), micros(p.rtt_us())});
      if (!ctx.stderrTty) {
        std::printf("unit %u answers (%s)\n", p.unit_id(), p.detail().c_str());
        std::fflush(stdout);
      }
    }
    if (ctx.stderrTty) {
      std::string ids;
      for (auto u : found) ids += (ids.empty() ? "" : ", ") + std::to_string(u);
      std::string line = "scanning bus " + bus + ": unit " + std::to_string(p.unit_id()) + " (" +
                         std::to_string(p.done()) + " of " + std::to_string(p.total()) +
                         ") · found: " + (ids.empty() ? "none yet" : ids);
      // One terminal line, redrawn in place: what does not fit is cut ("..."), the final line has all.
      if (ctx.err.width != 0 && displayWidth(line) >= ctx.err.width)
        line = wrapLine(line, ctx.err.width - 4, 0)[0] + "...";
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
      progressShown = true;
    }
  }

  int finish(std::uint32_t total) {
    if (progressShown) std::fprintf(stderr, "\r\033[K");
    if (ctx.json) return found.empty() ? kExitNotFound : 0;
    if (!table.empty() && ctx.stderrTty) std::fputs(table.render(ctx.out).c_str(), stdout);
    std::string ids;
    for (auto u : found) ids += (ids.empty() ? "" : ", ") + std::to_string(u);
    std::printf("%zu of %u unit id(s) answered on bus %s%s\n", found.size(), total, bus.c_str(),
                ids.empty() ? "" : (": " + ids).c_str());
    return found.empty() ? kExitNotFound : 0;
  }
};

}  // namespace

int cmdModbusScan(const Ctx& ctx, const Args& a) {
  const char* cmd = "modbus scan";
  if (a.positional.size() != 3 && a.positional.size() != 5)
    return usageError(ctx, cmd, "modbus scan wants BUS [FROM TO]");
  const std::string bus = a.positional[2];
  std::uint32_t from = 1;
  std::uint32_t to = 247;
  int rc = 0;
  if (a.positional.size() == 5) {
    if (!parseUnit(ctx, a.positional[3], from, cmd, rc) || !parseUnit(ctx, a.positional[4], to, cmd, rc)) return rc;
    if (to < from) return usageError(ctx, cmd, "FROM is above TO");
  }
  std::uint32_t timeoutMs = 200;
  if (!parseTimeout(ctx, a, timeoutMs, cmd, rc)) return rc;
  if (timeoutMs > 10000) return usageError(ctx, cmd, "--timeout is at most 10000 ms per unit");

  ScanView view{ctx, bus};
  const Route r = route(ctx, a, rc);
  if (r == Route::Failed) return rc;
  if (r == Route::Daemon) {
    Client client(ctx.socket);
    pb::ControlRequest req;
    auto* s = req.mutable_modbus_scan();
    s->set_bus(bus);
    s->set_from(from);
    s->set_to(to);
    s->set_timeout_ms(timeoutMs);
    pb::ControlResponse resp;
    if (int code = roundTrip(ctx, client, req, resp, std::chrono::seconds(60)); code != 0) return code;
    std::uint32_t total = resp.modbus_scan().total();
    view.progress(resp.modbus_scan());
    while (resp.more()) {
      ClientError err;
      // Each unit costs at most its timeout, behind the bus's polls.
      if (!client.receive(resp, std::chrono::milliseconds(timeoutMs) + std::chrono::seconds(60), err)) {
        if (view.progressShown) std::fprintf(stderr, "\n");
        return fail(ctx, err.exitCode, err.message);
      }
      if (resp.has_error() && resp.error().code() != pb::ControlError::CODE_UNSPECIFIED) {
        if (view.progressShown) std::fprintf(stderr, "\n");
        return reportError(ctx, resp);
      }
      total = resp.modbus_scan().total();
      view.progress(resp.modbus_scan());
    }
    return view.finish(total);
  }
  auto settings = directBus(ctx, a, bus, rc);
  if (!settings) return rc;
  DirectBus direct(*settings);
  const bool serial = settings->has_rtu();
  if (serial) {
    from = std::max<std::uint32_t>(from, 1);
    to = std::min<std::uint32_t>(to, 247);
  }
  const std::uint32_t total = to >= from ? to - from + 1 : 0;
  if (auto e = direct.open(); !e.ok()) return fail(ctx, kExitFailed, direct.describe() + ": " + e.message);
  for (std::uint32_t unit = from, done = 1; unit <= to; ++unit, ++done) {
    if (interrupted()) {
      if (view.progressShown) std::fprintf(stderr, "\n");
      return kExitInterrupted;
    }
    auto res =
        direct.read(static_cast<std::uint8_t>(unit), pb::HOLDING_REGISTER, 0, 1, std::chrono::milliseconds(timeoutMs));
    pb::ModbusScanProgress p;
    p.set_unit_id(unit);
    p.set_answered(res.error.ok() || res.error.kind == modbus::ErrorKind::Exception);
    p.set_detail(res.error.ok()                                   ? "ok"
                 : res.error.kind == modbus::ErrorKind::Exception ? "exception " + res.error.message
                                                                  : std::string(modbus::errorKindName(res.error.kind)));
    p.set_done(done);
    p.set_total(total);
    p.set_rtt_us(res.rttUs);
    view.progress(p);
  }
  return view.finish(total);
}

// ---- write --------------------------------------------------------------------------------------

namespace {

std::string formatValue(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string hexRegisters(const google::protobuf::RepeatedField<std::uint32_t>& regs) {
  std::string s;
  for (auto r : regs) {
    char buf[12];
    std::snprintf(buf, sizeof buf, "%s0x%04X", s.empty() ? "" : " ", r & 0xFFFFU);
    s += buf;
  }
  return s;
}

// The refusal as the technician reads it: the reason's name and the daemon's sentence.
int printRefusal(const Ctx& ctx, const pb::WriteOutcome& o) {
  return fail(ctx, kExitFailed,
              "refused (" + pb::WriteRefusal_Name(o.refusal()) + "): " + o.detail() +
                  (o.refusal() == pb::COMMANDS_DISABLED
                       ? "\nhint: writes need commands { enabled: true allow { device: \"ID\" } } in the config"
                       : ""));
}

bool confirmed(const std::string& question) {
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::fflush(stderr);
  char line[16] = {};
  if (std::fgets(line, sizeof line, stdin) == nullptr) return false;
  return line[0] == 'y' || line[0] == 'Y';
}

}  // namespace

int cmdModbusWrite(const Ctx& ctx, const Args& a) {
  const char* cmd = "modbus write";
  if (a.positional.size() != 7) return usageError(ctx, cmd, "modbus write wants BUS UNIT TABLE ADDR VALUE");
  pb::ControlRequest req;
  auto* m = req.mutable_modbus_write();
  int rc = 0;
  m->set_bus(a.positional[2]);
  std::uint32_t unit = 0;
  if (!parseUnit(ctx, a.positional[3], unit, cmd, rc)) return rc;
  m->set_unit_id(unit);
  auto table = parseTable(a.positional[4]);
  if (!table || (*table != pb::COIL && *table != pb::HOLDING_REGISTER)) {
    return usageError(ctx, cmd,
                      "TABLE is holding or coil (the tables a device lets write), not '" + a.positional[4] + "'");
  }
  m->set_table(*table);
  std::uint32_t address = 0;
  if (!parseAddress(ctx, a.positional[5], address, cmd, rc)) return rc;
  m->set_address(address);
  const std::string& text = a.positional[6];
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
    return usageError(ctx, cmd, "VALUE must be a number in the point's unit, not '" + text + "'");
  }
  m->set_value(value);
  if (a.has("type")) {
    std::string t = a.value("type");
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::toupper(c); });
    pb::DataType dt{};
    if (!pb::DataType_Parse(t, &dt) || dt == pb::DATA_TYPE_UNSPECIFIED) {
      return usageError(ctx, cmd, "--type is BOOL, INT16, UINT16, INT32, UINT32, FLOAT32, INT64, UINT64 or FLOAT64");
    }
    m->set_type(dt);
  }
  if (a.has("order")) {
    std::string o = a.value("order");
    std::transform(o.begin(), o.end(), o.begin(), [](unsigned char c) { return std::toupper(c); });
    pb::WordOrder wo{};
    if (!pb::WordOrder_Parse(o, &wo) || wo == pb::WORD_ORDER_UNSPECIFIED) {
      return usageError(ctx, cmd, "--order is ABCD, CDAB, BADC or DCBA");
    }
    m->set_order(wo);
  }
  const char* user = std::getenv("SUDO_USER") ? std::getenv("SUDO_USER") : std::getenv("USER");
  m->set_origin(std::string("cli:") + (user ? user : "?"));

  const std::string where =
      "bus " + m->bus() + ", unit " + std::to_string(unit) + ", " + tableName(*table) + " " + std::to_string(address);
  if (!a.has("yes")) {
    // What will be written where, as the daemon will write it: checked, nothing written yet.
    pb::ControlRequest dry = req;
    dry.mutable_modbus_write()->set_dry_run(true);
    pb::ControlResponse resp;
    if (int code = roundTrip(ctx, dry, resp, std::chrono::seconds(30)); code != 0) return code;
    const auto& o = resp.modbus_write();
    if (o.refusal() != pb::WRITE_REFUSAL_UNSPECIFIED) return printRefusal(ctx, o);
    if (::isatty(STDIN_FILENO) != 1) {
      return usageError(ctx, cmd, "stdin is not a terminal: pass --yes to write without the confirmation");
    }
    std::fprintf(stderr, "%s\n  %s\n  registers: %s\n", where.c_str(), o.detail().c_str(),
                 hexRegisters(o.registers()).c_str());
    if (!confirmed("Write " + formatValue(value) + " to '" + o.point() + "' of " + o.device_id() + "?")) {
      std::fprintf(stderr, "nothing written\n");
      return kExitFailed;
    }
  }
  pb::ControlResponse resp;
  if (int code = roundTrip(ctx, req, resp, std::chrono::seconds(90)); code != 0) return code;
  const auto& o = resp.modbus_write();
  if (ctx.json) {
    std::printf("%s\n", toJson(o, true).c_str());
    return o.refusal() == pb::WRITE_REFUSAL_UNSPECIFIED && o.holds() ? 0 : kExitFailed;
  }
  if (o.refusal() != pb::WRITE_REFUSAL_UNSPECIFIED) return printRefusal(ctx, o);
  std::printf("%s\n", ctx.out.paint(where + " (" + o.device_id() + " '" + o.point() + "')", Colour::Dim).c_str());
  std::printf("written:   %s (%s)\n", formatValue(o.requested()).c_str(), hexRegisters(o.registers()).c_str());
  if (o.read_back_registers_size() != 0) {
    std::printf("read back: %s (%s)\n", formatValue(o.read_back()).c_str(),
                hexRegisters(o.read_back_registers()).c_str());
  }
  if (!o.written() || !o.holds()) return fail(ctx, kExitFailed, o.detail());
  std::printf("%s\n", o.detail().c_str());
  return 0;
}

}  // namespace citygate::cli
