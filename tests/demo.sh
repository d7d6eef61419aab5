#!/usr/bin/env bash
# The citygate demo: builds what it runs (citygated, citygatectl, the schema's Python modules, the
# sensor nodes' host firmware), starts a local mosquitto, simulated street sensors (a Vaisala
# AQT530 air-quality station, a four-lane traffic counter and an eight-bay parking controller on a
# Modbus TCP simulator; LoRa parking sensors through a simulated concentrator), the city's own
# sensor nodes built for the host (firmware/: a traffic counter on a pseudo-terminal RS-485 bus,
# two air-quality nodes sending LoRaWAN uplinks through their UDP packet-forwarder shim), the
# gateway, and a platform-side subscriber that prints every decoded reading.
#
#   tests/demo.sh                  run until Ctrl-C
#   tests/demo.sh --duration 30    run for 30 s, then stop everything
#
# Everything runs on 127.0.0.1 on free ports, in a temporary directory, and stops at the end.
set -euo pipefail

duration=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
toolchains/install-deps.sh demo
# Only what the demo runs: the test suite, fuzzers and benches are the test command's to build.
echo "demo: building citygated, citygatectl and the nodes' host firmware (cmake --preset default)"
built=$SECONDS
cmake --preset default >/dev/null
cmake --build --preset default --target citygated citygatectl citygate_proto_py citygate-traffic-node \
  citygate-air-node >/dev/null
echo "demo: built in $((SECONDS - built)) s"
build=$repo/build/default

work=$(mktemp -d /tmp/citygate-demo-XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for log in "$work"/*node.log; do  # what the nodes counted, from their last line
    [ -f "$log" ] && echo "demo: $(basename "$log" .log) $(grep '^stopped:' "$log" | tail -1)"
  done
  if [ -n "${CITYGATE_KEEP_TMP:-}" ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
  echo "demo: stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt_port=$(port)
modbus_port=$(port)
lora_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat > "$work/mosquitto.conf" <<CONF
user root
listener $mqtt_port 127.0.0.1
allow_anonymous true
log_type error
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)

# The simulated devices, with values that drift like the real ones (see modbus_sim.py).
/usr/bin/python3 - "$work/sim.json" "$modbus_port" <<'PY'
import json, sys
path, port = sys.argv[1], int(sys.argv[2])
air = [  # Vaisala AQT530: ppb gases, 0.1 µg/m³ particles, 0.1 °C, 0.1 %RH, 0.1 hPa
    {"table": "hr", "address": a, "type": "INT16", "min": lo, "max": hi, "period_s": p}
    for a, lo, hi, p in [(0, 12, 35, 90), (1, 1, 4, 200), (2, 150, 400, 150), (4, 0, 2, 300), (5, 18, 40, 120),
                         (6, 4, 20, 80), (8, 60, 180, 100), (9, 120, 300, 110), (10, 150, 230, 600),
                         (11, 450, 800, 500), (12, 9600, 9700, 900)]]
traffic = []
for lane in range(4):
    b = lane * 10
    traffic += [
        {"table": "ir", "address": b, "type": "UINT32", "min": 20 + 5 * lane, "max": 90 + 10 * lane, "period_s": 60, "phase": lane / 4},
        {"table": "ir", "address": b + 2, "type": "UINT16", "min": 40, "max": 320, "period_s": 70, "phase": lane / 3},
        {"table": "ir", "address": b + 3, "type": "UINT16", "min": 280, "max": 520, "period_s": 45, "phase": lane / 5},
        {"table": "ir", "address": b + 4, "type": "UINT16", "min": 420, "max": 610, "period_s": 30, "phase": lane / 7},
        {"table": "ir", "address": b + 5, "type": "UINT16", "min": 15, "max": 60, "period_s": 50, "phase": lane / 4},
    ]
parking = [{"table": "di", "address": i, "type": "BOOL", "min": 0, "max": 1, "period_s": 20 + 7 * i, "phase": i / 8}
           for i in range(8)]
json.dump({"tcp": {"host": "127.0.0.1", "port": port},
           "units": {"1": {"animate": air}, "3": {"animate": traffic}, "5": {"animate": parking}}},
          open(path, "w"))
PY
/usr/bin/python3 tests/peers/modbus_sim.py "$work/sim.json" >"$work/modbus.log" 2>&1 &
pids+=($!)

# LoRa parking bays: Nwave NPS405 and Bosch TPS110 sensors, their frames built and encrypted by
# lora-packet (an encoder independent of citygate) and sent by a simulated concentrator.
# The air-quality nodes (citygate-air-node, firmware/nodes/air) are ABP devices of the same
# packet forwarder: their keys in files of mode 0600, for the gateway (*.key) and for the node
# (its provisioning file).
/usr/bin/python3 - "$work/lora.json" "$work/lora.textproto" "$lora_port" "$work" <<'PY'
import json, os, secrets, sys
devices_path, block_path, port, work = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]


def secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)


bays = [  # id, dev_addr, codec, payloads cycled frame by frame (status frames: occupied / free)
    ("bay-0041", "26011F41", "nwave-nps405", 1, ["8A", "05", "8C"]),
    ("bay-0042", "26011F42", "nwave-nps405", 1, ["07", "91"]),
    ("bay-0043", "26011F43", "bosch-tps110", 1, ["01", "00", "01"]),
    ("bay-0044", "26011F44", "bosch-tps110", 2, ["01 12", "00 13"]),
]
devices, block = [], [f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {port} }}']
for i, (dev, addr, codec, fport, payloads) in enumerate(bays):
    nwk = f"{0x44024241ed4ce9a68c6a8bc055233f00 + i:032x}"
    app = f"{0xec925802ae430ca77fd3dd73cb2cc500 + i:032x}"
    devices.append({"id": dev, "dev_addr": addr, "nwk_s_key": nwk, "app_s_key": app, "fport": fport,
                    "payloads": [p.replace(" ", "") for p in payloads], "rssi": -60 - 7 * i, "lsnr": 9.5 - i})
    block.append(f'  device {{ id: "{dev}" dev_addr: "{addr}" nwk_s_key: "{nwk}" app_s_key: "{app}" '
                 f'codec: "{codec}" ref_parking_site: "pilatusplatz" }}')
for i, (dev, addr) in enumerate([("fw-air-bahnhofplatz", "26011A07"), ("fw-air-kasernenplatz", "26011A08")]):
    nwk, app = secrets.token_hex(16), secrets.token_hex(16)
    secret(f"{work}/{dev}.nwk.key", nwk + "\n")
    secret(f"{work}/{dev}.app.key", app + "\n")
    secret(f"{work}/{dev}.provisioning", f"dev_addr {addr}\nnwk_s_key {nwk}\napp_s_key {app}\n"
           f"interval_s {15 + 5 * i}\nfcnt_resume_margin 16\n")
    block.append(f'  device {{ id: "{dev}" dev_addr: "{addr}" nwk_s_key_file: "{work}/{dev}.nwk.key" '
                 f'app_s_key_file: "{work}/{dev}.app.key" codec: "citygate-air" }}')
block.append("}")
json.dump(devices, open(devices_path, "w"))
open(block_path, "w").write("\n".join(block) + "\n")
PY
lora_block=$(cat "$work/lora.textproto")

# The city's traffic counter (citygate-traffic-node, firmware/nodes/traffic): a Modbus RTU slave
# on a pseudo-terminal (the RS-485 line), unit 7, counting 15 s periods of a scenario of vehicle
# passages over its four lanes' loops: steady traffic for the demo's duration (16 h without one:
# the node takes 100,000 passages), at least two vehicles a lane in every period.
/usr/bin/python3 - "$work/traffic-node.scenario" "$duration" <<'PY'
import random, sys
path, duration = sys.argv[1], int(sys.argv[2])
end_ms = (duration + 120 if duration > 0 else 16 * 3600) * 1000
rng = random.Random(16)
passages = []
# lane: mean gap between vehicles (s, 0.5 to 1.5 times it), speed range (km/h)
for lane, gap, (slow, fast) in ((1, 2.0, (38, 52)), (2, 2.5, (42, 58)), (3, 3.5, (40, 55)), (4, 4.5, (30, 46))):
    t = rng.uniform(0.5, gap)
    while t * 1000 < end_ms:
        speed = round(rng.uniform(slow, fast), 1)
        length = rng.choice([1150, 1200, 1650]) if rng.random() < 0.06 else rng.randint(380, 520)
        occupied = round((length + 200) / 100 / (speed / 3.6) * 1000)  # over a 2 m loop
        passages.append((round(t * 1000), lane, speed, length, occupied))
        t += max(1.0, gap * rng.uniform(0.5, 1.5))
passages.sort()
with open(path, "w") as f:
    f.write("# AT_MS LANE SPEED_KMH LENGTH_CM OCCUPIED_MS\n")
    f.writelines(f"{p[0]} {p[1]} {p[2]:.1f} {p[3]} {p[4]}\n" for p in passages)
PY
"$build/bin/citygate-traffic-node" --rtu "$work/traffic-node.tty" --scenario "$work/traffic-node.scenario" \
  --unit-id 7 --period-s 15 >"$work/traffic-node.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready:' "$work/traffic-node.log" && break; sleep 0.1; done

mkdir -p "$work/spool"
cat > "$work/citygate.textproto" <<CONF
gateway_id: "luz-demo-01"
location { lat: 47.0502 lon: 8.3093 }
mqtt { uri: "tcp://127.0.0.1:$mqtt_port" max_batch_readings: 200 max_batch_delay_ms: 500 }
control { socket: "$work/control.sock" }
runtime_dir: "$work/run"
health_interval_s: 30
spool { dir: "$work/spool" max_bytes: 16777216 }
modbus_bus {
  name: "demo-cabinet"
  tcp { host: "127.0.0.1" port: $modbus_port }
  device { id: "air-pilatusplatz" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 5000 }
  device { id: "traffic-pilatusstrasse" unit_id: 3 profile: "citygate-traffic-counter-4lane" poll_interval_ms: 10000 }
  device { id: "parking-zone-a" unit_id: 5 profile: "parking-guidance-8bay" poll_interval_ms: 10000 ref_parking_site: "pilatusplatz" }
}
modbus_bus {
  name: "fw-rs485"
  rtu { device: "$work/traffic-node.tty" baud: 19200 }
  device { id: "fw-traffic-kreuzplatz" unit_id: 7 profile: "citygate-traffic-counter-4lane" poll_interval_ms: 15000 }
}
$lora_block
CONF

for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$mqtt_port) 2>/dev/null && break; sleep 0.1; done
/usr/bin/python3 tests/peers/subscriber.py --port "$mqtt_port" --gateway luz-demo-01 --build "$build" \
  --tag fw-traffic-=citygate-traffic-node --tag fw-air-=citygate-air-node &
pids+=($!)

echo "demo: mosquitto on 127.0.0.1:$mqtt_port, Modbus simulator on :$modbus_port, LoRa packet forwarder on udp :$lora_port"
echo "demo: the sensor nodes' firmware built for the host (their readings end in <- citygate-*-node):"
echo "        fw-traffic-kreuzplatz: citygate-traffic-node, Modbus RTU unit 7 on a pty, 15 s periods"
echo "        fw-air-bahnhofplatz, fw-air-kasernenplatz: citygate-air-node, LoRaWAN through the UDP shim, every 15 / 20 s"
echo "demo: gateway log in $work/citygated.log, the nodes' in $work/*node*.log"
echo "demo: control socket $work/control.sock; in another terminal try:"
echo "        $build/bin/citygatectl --socket $work/control.sock status"
"$build/bin/citygated" --config "$work/citygate.textproto" 2>"$work/citygated.log" &
gw=$!
pids+=($gw)

node tests/peers/concentrator.js send --port "$lora_port" --devices "$work/lora.json" --count 0 --interval 4000 \
  >"$work/concentrator.log" 2>&1 &
pids+=($!)

# The air nodes' simulated SPS30 and SHT3x: a scenario file each, replaced every 5 s by one with
# values that drift (the node re-reads it when it changes).
/usr/bin/python3 - "$work" fw-air-bahnhofplatz fw-air-kasernenplatz <<'PY' >"$work/air-scenarios.log" 2>&1 &
import math, os, random, sys, time
work, nodes = sys.argv[1], sys.argv[2:]
rng, start, first = random.Random(16), time.monotonic(), True
while True:
    t = time.monotonic() - start
    for i, node in enumerate(nodes):
        pm25 = 14 + 6 * i + 5 * math.sin(t / 120 + i) + rng.uniform(-0.8, 0.8)
        temperature = 18.5 + 1.5 * i + 0.8 * math.sin(t / 300 + i)
        humidity = 58 - 4 * i - 6 * math.sin(t / 300 + i) + rng.uniform(-0.3, 0.3)
        path = f"{work}/{node}.scenario"
        with open(path + ".new", "w") as f:
            f.write(f"pm1 {0.7 * pm25:.1f}\npm25 {pm25:.1f}\npm4 {1.2 * pm25:.1f}\npm10 {1.55 * pm25:.1f}\n"
                    f"temperature {temperature:.2f}\nhumidity {humidity:.2f}\n")
        os.replace(path + ".new", path)
    if first:
        open(f"{work}/air-scenarios.ready", "w").close()
        first = False
    time.sleep(5)
PY
pids+=($!)
for _ in $(seq 100); do [ -e "$work/air-scenarios.ready" ] && break; sleep 0.1; done
for _ in $(seq 100); do grep -q 'packet forwarder on' "$work/citygated.log" && break; sleep 0.1; done
for dev in fw-air-bahnhofplatz fw-air-kasernenplatz; do
  "$build/bin/citygate-air-node" --gateway "127.0.0.1:$lora_port" --state "$work/$dev.flash" \
    --provisioning "$work/$dev.provisioning" --scenario "$work/$dev.scenario" >"$work/$dev-node.log" 2>&1 &
  pids+=($!)
done

if [ "$duration" -gt 0 ]; then
  end=$((SECONDS + duration))
  while [ $SECONDS -lt $end ] && kill -0 $gw 2>/dev/null; do sleep 0.2; done
else
  wait $gw || true
fi
if ! kill -0 $gw 2>/dev/null; then
  echo "demo: the gateway stopped; its log:" >&2
  tail -20 "$work/citygated.log" >&2
fi
