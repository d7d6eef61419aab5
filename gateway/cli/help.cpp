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
       "[--check]",
       "gateway, MQTT link, spool, and every device: state, last good read, errors, round-trip time",
       "One screen for a first look: the gateway and its uptime, the configuration in force, the MQTT\n"
       "link, the spool, and per device its state (OK, DEGRADED, DOWN), when it last delivered, its\n"
       "error counts and round-trip time.\n"
       "Exit status 0 whatever it shows (scripts parse it), unless:\n"
       "  --check   exit 1 when `doctor` would show a FAIL (a Modbus device\n"
       "            or bus DOWN, MQTT disconnected, the spool failing or its\n"
       "            disk full, no LoRa concentrator heard): for monitoring.\n",
       {"check"},
       cmdStatus,
       0,
       0},
      {"doctor",
       "",
       "checks with OK / WARN / FAIL and the next step; exit 1 on FAIL",
       "What to check first at the cabinet, each OK, WARN or FAIL with the next\n"
       "step when not OK: config (running vs file), clock synchronised, spool\n"
       "disk space, spool, MQTT connected and acknowledging, every Modbus bus,\n"
       "every device that is not OK, LoRa concentrators heard in the last\n"
       "minute, uptime. A LoRaWAN node not heard yet is WARN (it sends when it\n"
       "wants). Exit status 1 when any check is FAIL, 0 otherwise (WARN does\n"
       "not fail). With --json: an array of {name, status, detail, next_step}.\n",
       {},
       cmdDoctor,
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
       "ID [--retry]",
       "one device in detail: health, counters and every latest value",
       "Health counters, the state and since when, the last error and when it happened (marked as\n"
       "past once the device recovered), and every value of the newest observation (all lanes or\n"
       "bays of a multi-part device) with units and quality; \"stale\" when the device is DOWN or\n"
       "has not been read for two poll intervals.\n"
       "  --retry   end the device's backoff now (after a repair): a DOWN Modbus device is tried at\n"
       "            once and polled as before when it answers; waits a few seconds for the\n"
       "            outcome (exit 1 if still DOWN). A successful `modbus read` of its unit does\n"
       "            the same. LoRaWAN devices are heard, not polled: nothing to retry.\n",
       {"retry"},
       cmdDevice,
       1,
       1},
      {"tail",
       "[ID] [--count N]",
       "live readings as the gateway publishes them, decoded",
       "Prints every reading as the gateway numbers it (seq, device, quality, values with units) until\n"
       "Ctrl-C, or until N readings with --count. With --json: one JSON object a line.\n"
       "  ID, -d ID, --device ID   only this device's readings\n"
       "  -c N, --count N          stop after N readings\n",
       {"device", "count"},
       cmdTail,
       0,
       1},
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
      {"modbus write",
       "BUS UNIT TABLE ADDR VALUE [--type T --order O] [--yes]",
       "write one point, through the daemon's checks, and read it back",
       "Writes VALUE (in the point's unit, as readings carry it) to the point at the 0-based PDU\n"
       "address ADDR of TABLE (holding or coil) of UNIT, through the running daemon: the same checks as\n"
       "platform commands (commands { enabled allow rate_limit } in the configuration, the profile's\n"
       "writable range), queued before the polls, then read back. Without --yes it shows what will be\n"
       "written where (the point, its type and order, the registers) and asks; --yes is for scripts.\n"
       "--type and --order, when given, must match the profile's point (a guard against the wrong\n"
       "address). A refusal prints its reason (COMMANDS_DISABLED, DEVICE_NOT_ALLOWED,\n"
       "POINT_NOT_WRITABLE, OUT_OF_RANGE, RATE_LIMITED, ...) and exits 1; so does a device that does\n"
       "not hold the value read back. Every write is logged by the daemon with who asked.\n\n",
       {"type", "order", "yes"},
       cmdModbusWrite,
       5,
       5},
      {"lora devices",
       "",
       "per device: last FCnt, RSSI, SNR, frames accepted / rejected and why",
       "The packet forwarder, the concentrators heard, and per LoRaWAN device its last frame counter,\n"
       "signal, and how many frames were accepted or rejected, by reason (mic, replay, ...).\n",
       {},
       cmdLoraDevices,
       0,
       0},
      {"lora heard",
       "",
       "DevAddrs heard but not configured: count, RSSI, SNR, last time",
       "The DevAddrs whose data uplinks the packet forwarder passed but that no\n"
       "configured device has (rejected as unknown_dev_addr), most recent first:\n"
       "frames heard, RSSI and SNR of the last one, its data rate, and when it was\n"
       "last heard. To commission a node, find its DevAddr here, then add it with its\n"
       "keys. The table keeps the 64 DevAddrs heard last and starts empty when the\n"
       "LoRa source starts; --json adds first heard, frequency, FCnt, concentrator.\n",
       {},
       cmdLoraHeard,
       0,
       0},
      {"lora devstatus",
       "DEVICE",
       "ask a LoRaWAN device for its battery and link margin (DevStatusReq)",
       "Queues a DevStatusReq MAC command for DEVICE (its id, DevEUI or DevAddr): it goes\n"
       "out with the downlink after the device's next uplink (class A), and its answer\n"
       "(battery 0 = external power, 1..254 level, 255 unknown; margin in dB) shows in\n"
       "`citygatectl device DEVICE`. Needs lora { downlink { enabled: true } }.\n",
       {},
       cmdLoraDevStatus,
       1,
       1},
      {"profiles",
       "[--config FILE]",
       "the device profiles a configuration can name",
       "Every profile compiled into citygated: name, observation kind, device, number of points.\n"
       "Offline (no daemon needed).\n"
       "  --config FILE   also the profiles in that configuration's profile_dir\n",
       {"config"},
       cmdProfiles,
       0,
       0},
      {"profiles show",
       "NAME [--config FILE]",
       "one profile's register map",
       "The profile's points as a table: field (lane, bay), table, PDU address (0-based, as\n"
       "`modbus read` takes it), type, scale, source unit and plausible range in canonical units.\n"
       "  --config FILE   look in that configuration's profile_dir too\n",
       {"config"},
       cmdProfileShow,
       1,
       1},
      {"node show",
       "--port TTY [--baud N] [--timeout MS]",
       "read a sensor node's provisioning record (service UART)",
       "Asks the node on TTY (its service port: a USB serial adapter, 115200\n"
       "baud 8N1) for the provisioning record in its flash and prints it: node\n"
       "id, kind, and the Modbus unit, baud and lanes of a traffic counter, or\n"
       "the DevEUI, activation (ABP: DevAddr; OTAA: JoinEUI), confirmed uplinks\n"
       "and interval of an air-quality node. Keys are never shown, only whether\n"
       "they are set. No daemon involved.\n"
       "  --port TTY     the node's service port (e.g. /dev/ttyUSB0)\n"
       "  --baud N       the service port's baud rate (default 115200)\n"
       "  --timeout MS   how long to wait for the reply (default 2000)\n",
       {"port", "baud", "timeout"},
       cmdNodeShow,
       0,
       0},
      {"node provision",
       "FILE --port TTY [--baud N] [--timeout MS]",
       "write a sensor node's provisioning record (service UART)",
       "Sends FILE, a citygate.v1.NodeProvisioning in protobuf text format\n"
       "(node_id, kind, and `traffic { ... }` or `air { ... }` with the keys),\n"
       "to the node on TTY. The node checks it (its kind, unit id 1..247, lanes\n"
       "1..4, key lengths, intervals), writes it to flash beside the previous\n"
       "one (a power cut keeps one of the two) and resets to apply it. A record\n"
       "it refuses changes nothing, and the reason is printed. FILE holds keys:\n"
       "it must be mode 0600 or stricter and yours or root's (refused\n"
       "otherwise, as citygated refuses its key files). Bytes are text-format\n"
       "strings:\n"
       "  dev_eui: \"\\x70\\xb3\\xd5\\x7e\\xd0\\x00\\x00\\x01\"\n"
       "An air-quality node is ABP (dev_addr, nwk_s_key, app_s_key) or OTAA\n"
       "(join_eui and app_key, no dev_addr or session keys: it joins the\n"
       "gateway); confirmed_every N (0..100) makes every Nth uplink confirmed.\n"
       "  --port TTY     the node's service port (e.g. /dev/ttyUSB0)\n"
       "  --baud N       the service port's baud rate (default 115200)\n"
       "  --timeout MS   how long to wait for the reply (default 2000)\n",
       {"port", "baud", "timeout"},
       cmdNodeProvision,
       1,
       1},
      {"mqtt reconnect",
       "",
       "reconnect to the broker now",
       "Ends the reconnect wait and connects at once (after the broker or the network was fixed);\n"
       "when connected, closes the link cleanly and connects again. No reading is lost: the spool\n"
       "keeps every one until the broker has acknowledged it, and what was in flight is sent again.\n"
       "Waits up to 12 s for the link and prints it; exit 1 when it is not up by then.\n",
       {},
       cmdMqttReconnect,
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
  if (name.rfind("modbus ", 0) == 0 && name != "modbus write") out += kBusHelp;
  out += "\nGlobal options: -s/--socket PATH, -j/--json, --no-color.\nExit codes: see citygatectl --help.\n";
  return out;
}

std::string generalHelp() {
  std::string out =
      "usage: citygatectl [--socket PATH] [--json] [--no-color] COMMAND [ARGS]\n"
      "\n"
      "The technician's tool for citygated, the street-side sensor gateway.\n"
      "\n"
      "Commands:\n";
  // Name and operands, then the summary from column 30 (on a line of its own under a long name),
  // so that the list fits 80 columns.
  constexpr std::size_t kSummaryColumn = 30;
  auto item = [&](const std::string& name, const std::string& summary) {
    if (name.size() + 4 <= kSummaryColumn) {
      out += "  " + name + std::string(kSummaryColumn - 2 - name.size(), ' ') + summary + "\n";
    } else {
      out += "  " + name + "\n" + std::string(kSummaryColumn, ' ') + summary + "\n";
    }
  };
  for (const auto& c : commands()) {
    std::string usage = c.usage;
    for (const char* cut : {" [--", " [bus", "[--"}) {
      if (auto p = usage.find(cut); p != std::string::npos) usage.resize(p);
    }
    item(std::string(c.name) + (usage.empty() ? "" : " " + usage), c.summary);
  }
  item("help COMMAND", "a command's details (also: COMMAND --help)");
  out +=
      "\n"
      "Global options:\n"
      "  -s, --socket PATH  the daemon's control socket (/run/citygate/control.sock)\n"
      "  -j, --json         machine-readable output (streams: one JSON object a line)\n"
      "  --no-color         no colour (also NO_COLOR=1; only a terminal gets colour)\n"
      "  -V, --version      print the version\n"
      "\n"
      "Without a daemon: `config validate` always works offline; `modbus read`,\n"
      "`probe` and `scan` open the port themselves with --config FILE, or with\n"
      "--tcp HOST:PORT / --rtu DEVICE. `node show` and `node provision`\n"
      "talk to a sensor node on its service port, never to the daemon.\n"
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
      "  citygatectl doctor\n"
      "  citygatectl tail air-pilatusplatz\n"
      "  citygatectl modbus probe cabinet-rs485 1 10\n"
      "  citygatectl modbus scan cabinet-rs485 1 20 --config /etc/citygate/gw.textproto\n"
      "  citygatectl config diff new.textproto\n"
      "  citygatectl config apply --save new.textproto\n"
      "  citygatectl node show --port /dev/ttyUSB0\n";
  return out;
}

}  // namespace citygate::cli
