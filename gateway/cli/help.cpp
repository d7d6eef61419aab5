// citygatectl's commands and their help texts (`citygatectl --help`, `citygatectl help CMD`,
// `citygatectl CMD --help`).
#include <algorithm>
#include <string>

#include "cli/cli.hpp"

namespace citygate::cli {

namespace {

const std::vector<std::string> kBusOptions{"config", "tcp",       "rtu",       "rtu-over-tcp", "baud",
                                           "parity", "data-bits", "stop-bits", "timeout",      "direct"};

std::vector<std::string> with(std::vector<std::string> v, std::initializer_list<const char*> more) {
  for (const char* m : more) v.emplace_back(m);
  return v;
}

constexpr const char* kBusHelp =
    "Through citygated when it runs: the read is queued behind the gateway's own polls, so the bus\n"
    "is not disturbed. When citygated does not run (or with --tcp/--rtu/--direct), citygatectl opens\n"
    "the port itself and needs the bus settings:\n"
    "  --config FILE          take bus BUS from this configuration file\n"
    "  --tcp HOST:PORT        Modbus TCP\n"
    "  --rtu-over-tcp HOST:PORT  RTU frames over TCP (serial device servers)\n"
    "  --rtu DEVICE           Modbus RTU on a serial port, with --baud N (19200), --parity N|E|O (E),\n"
    "                         --data-bits 7|8 (8), --stop-bits 1|2 (1)\n"
    "  --direct               use the port even if citygated runs (an RTU bus then has two masters!)\n"
    "  --timeout MS           response timeout (default: the bus's response_timeout_ms)\n";

}  // namespace

const std::vector<CommandInfo>& commands() {
  static const std::vector<CommandInfo> kCommands = {
      {"status",
       "",
       "gateway, MQTT link, spool, and every device: state, last good read, errors, round-trip time",
       "One screen for a first look: the gateway and its uptime, the configuration in force, the MQTT\n"
       "link, the spool, and per device its state (OK, DEGRADED, DOWN), when it last delivered, its\n"
       "error counts and round-trip time.\n",
       {},
       cmdStatus,
       0,
       0},
      {"devices",
       "",
       "configured devices and their latest values",
       "Every configured device (Modbus and LoRaWAN) with its profile or codec, where it is (bus and\n"
       "unit, or DevAddr), its poll interval, state and latest values.\n",
       {},
       cmdDevices,
       0,
       0},
      {"device",
       "ID",
       "one device in detail: health, counters and every latest value",
       "Health counters, the last error, and every value of the newest observation (all lanes or\n"
       "bays of a multi-part device) with units and quality.\n",
       {},
       cmdDevice,
       1,
       1},
      {"tail",
       "[--device ID] [--count N]",
       "live readings as the gateway publishes them, decoded",
       "Prints every reading as the gateway numbers it (seq, device, quality, values with units) until\n"
       "Ctrl-C, or until N readings with --count. With --json: one JSON object a line.\n"
       "  --device ID   only this device's readings\n"
       "  --count N     stop after N readings\n",
       {"device", "count"},
       cmdTail,
       0,
       0},
      {"config validate",
       "FILE",
       "check a configuration file offline (the same diagnostics as start-up)",
       "Validates FILE and its profiles exactly as citygated does at start-up, without a daemon, and\n"
       "prints every problem as FILE:LINE:COL: message. Exit 0 when valid, 78 when not.\n"
       "Then opens its serial ports as `config diff` and `config apply` do:\n"
       "one that does not open is the same FILE:LINE:COL message, exit 1.\n"
       "  --no-port-check  the file alone (checked on another machine)\n",
       {"no-port-check"},
       cmdConfigValidate,
       1,
       1},
      {"config show",
       "",
       "the configuration citygated runs (secrets redacted)",
       "Prints the running configuration's text as it was loaded or applied; session keys and\n"
       "passwords are shown as <redacted>.\n",
       {},
       cmdConfigShow,
       0,
       0},
      {"config diff",
       "FILE",
       "what `config apply FILE` would change",
       "Validates FILE in citygated (with the daemon's view of profiles and key files), prints a\n"
       "unified diff against the running configuration and which buses and sources an apply would\n"
       "start, restart, stop or keep. Exit 1 when the apply would be refused.\n",
       {},
       cmdConfigDiff,
       1,
       1},
      {"config apply",
       "FILE [--save | --runtime-only]",
       "swap FILE in without a restart; --save keeps it",
       "Sends FILE to citygated, which validates it, then swaps it in: buses whose settings and devices\n"
       "are unchanged keep running untouched, changed and added buses start, removed ones stop; the\n"
       "LoRa source is replaced only when it changed. The spool, the seq numbering and the MQTT session\n"
       "are kept. When the new configuration cannot start (a serial port that does not open, a LoRa\n"
       "port in use), the running one stays and the reason is printed. Changes to gateway_id, mqtt,\n"
       "spool, state_dir or control.socket need a restart and are refused.\n"
       "SIGHUP (systemctl reload citygated) applies the file on disk the same way.\n\n"
       "What survives a reload or a restart is the daemon's --config file:\n"
       "  --save          also write FILE to the --config file (atomically;\n"
       "                  the old one kept as <config>.bak, mode 0600)\n"
       "  --runtime-only  apply only: a SIGHUP or restart brings the file back\n"
       "Without either, FILE must be the --config file itself (edited in\n"
       "place); any other FILE is checked, then refused. `status` says when\n"
       "the running configuration differs from the file.\n\n"
       "`config show` output applies back: a <redacted> secret keeps the\n"
       "running value at that place (the file saved gets the real one).\n",
       {"save", "runtime-only"},
       cmdConfigApply,
       1,
       1},
      {"modbus read", "BUS UNIT TABLE ADDR COUNT [bus options]", "one read, raw registers",
       "Reads COUNT registers (or bits) from TABLE (holding, input, coil, discrete) of UNIT at the\n"
       "0-based PDU address ADDR (decimal or 0x hex) and prints them as hex, u16 and i16.\n\n",
       kBusOptions, cmdModbusRead, 5, 5},
      {"modbus probe", "BUS UNIT ADDR [--table holding|input] [--count N] [bus options]",
       "read 4 registers and print every type x word order side by side",
       "Reads 4 registers (--count 2..8) at ADDR and prints every interpretation: u16/i16 per register,\n"
       "u32/i32/f32 at each offset in the orders ABCD, CDAB, BADC and DCBA, the 64-bit forms, and the\n"
       "text. The column that shows the value the device's manual promises is the `order` for the\n"
       "profile (e.g. 123456 in the CDAB column: FLOAT32 with order CDAB).\n\n",
       with(kBusOptions, {"table", "count"}), cmdModbusProbe, 3, 3},
      {"modbus scan", "BUS [FROM TO] [--timeout MS] [bus options]", "which unit ids answer on a bus",
       "Asks every unit id FROM..TO (default 1..247) for holding register 0 and lists those that\n"
       "answer (an exception answer counts: the unit is there). Shows its progress as it goes;\n"
       "--timeout is per unit (default 200 ms). Exit 5 when no unit answers.\n\n",
       kBusOptions, cmdModbusScan, 1, 3},
      {"lora devices",
       "",
       "per device: last FCnt, RSSI, SNR, frames accepted / rejected and why",
       "The packet forwarder, the concentrators heard, and per LoRaWAN device its last frame counter,\n"
       "signal, and how many frames were accepted or rejected, by reason (mic, replay, ...).\n",
       {},
       cmdLoraDevices,
       0,
       0},
      {"spool",
       "",
       "spool depth in bytes and readings, oldest seq, dropped",
       "The store-and-forward spool: how much waits for the broker, the oldest and next seq, readings\n"
       "dropped because the spool was full, and whether sources are paused (BLOCK_SOURCES).\n",
       {},
       cmdSpool,
       0,
       0},
      {"log-level",
       "[LEVEL] [--logger NAME]",
       "show or change the daemon's log level at run time",
       "LEVEL is trace, debug, info, warn, error, critical or off; without LEVEL the current level is\n"
       "shown. --logger limits the change to one component (main, modbus, lora, spool, mqtt, control).\n"
       "The level returns to the configuration's on restart.\n",
       {"logger"},
       cmdLogLevel,
       0,
       1},
  };
  return kCommands;
}

const CommandInfo* findCommand(const std::string& name) {
  for (const auto& c : commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

std::string commandHelp(const CommandInfo& c) {
  std::string out = "usage: citygatectl [--socket PATH] [--json] " + std::string(c.name) +
                    (std::string(c.usage).empty() ? "" : " " + std::string(c.usage)) + "\n\n" + c.summary + ".\n\n" +
                    c.details;
  const std::string name = c.name;
  if (name.rfind("modbus ", 0) == 0) out += kBusHelp;
  out += "\nGlobal options: --socket PATH, --json, --no-color (see citygatectl --help for exit codes).\n";
  return out;
}

std::string generalHelp() {
  std::string out =
      "usage: citygatectl [--socket PATH] [--json] [--no-color] COMMAND [ARGS]\n"
      "\n"
      "The technician's tool for citygated, the street-side sensor gateway.\n"
      "\n"
      "Commands:\n";
  std::vector<std::string> names;
  std::size_t width = 0;
  for (const auto& c : commands()) {
    std::string usage = c.usage;
    for (const char* cut : {" [--", " [bus", "[--"}) {
      if (auto p = usage.find(cut); p != std::string::npos) usage.resize(p);
    }
    names.push_back(std::string(c.name) + (usage.empty() ? "" : " " + usage));
    width = std::max(width, names.back().size());
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += "  " + names[i] + std::string(width - names[i].size() + 2, ' ') + commands()[i].summary + "\n";
  }
  out += "  help COMMAND" + std::string(width > 12 ? width - 12 + 2 : 2, ' ') +
         "the details of a command (or: citygatectl COMMAND --help)\n";
  out +=
      "\n"
      "Global options:\n"
      "  --socket PATH   the daemon's control socket (default /run/citygate/control.sock)\n"
      "  --json          machine-readable output (protobuf JSON mapping; streams: one object a line)\n"
      "  --no-color      no colour (also: NO_COLOR=1; colour is used only on a terminal)\n"
      "  --version       print the version\n"
      "\n"
      "Without a daemon: `config validate` always works offline; `modbus read/probe/scan` open the\n"
      "port themselves with --config FILE or --tcp HOST:PORT / --rtu DEVICE.\n"
      "\n"
      "Exit codes:\n"
      "  0   ok\n"
      "  1   the command failed (device did not answer, apply rolled back, restart needed...)\n"
      "  2   usage error\n"
      "  3   citygated is not running, or its socket is missing\n"
      "  4   permission denied on the socket (root or group citygate)\n"
      "  5   not found (unknown device or bus; no unit answered a scan)\n"
      "  75  busy: try again (too many clients, bus queue full, another apply running)\n"
      "  78  invalid configuration\n"
      "\n"
      "Examples:\n"
      "  citygatectl status\n"
      "  citygatectl tail --device air-pilatusplatz\n"
      "  citygatectl modbus probe cabinet-rs485 1 10\n"
      "  citygatectl modbus scan cabinet-rs485 1 20 --config /etc/citygate/citygate.textproto\n"
      "  citygatectl config diff new.textproto && citygatectl config apply --save new.textproto\n";
  return out;
}

}  // namespace citygate::cli
