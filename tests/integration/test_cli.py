"""Issue 6: citygatectl and the daemon's control socket, against real peers.

The real citygated runs with a Modbus TCP bus (pymodbus), an RTU bus on a socat pseudo-terminal
and LoRaWAN devices whose frames are built by npm lora-packet (tests/peers/concentrator.js); the
real citygatectl is run as a process for every command, human and --json. A platform subscriber on
a real mosquitto checks that readings keep their seq numbering across configuration changes.
"""
import functools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import unittest
from pathlib import Path

from harness import BIN, BUILD, PEERS, REPO, IntegrationTest, free_port, gateway_config, wait_for

sys.path.insert(0, str(BUILD / "python"))
from citygate.v1 import control_pb2  # noqa: E402  (generated)

CTL = BIN / "citygatectl"
NODE = "node"
LORA_DEVICES = {d["id"]: d for d in json.loads((REPO / "tests" / "data" / "lora" / "devices.json").read_text())}


def aqt(no2):
    """AQT530 holding registers with plausible values (no2 in ppb)."""
    return {"0": no2, "1": 3, "2": 40, "5": 30, "6": 5, "8": 123, "9": 456, "10": 215, "11": 655, "12": 9650}


def lora_block(port, ids):
    out = f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {port} }}\n  dedup_window_ms: 100\n'
    for i in ids:
        d = LORA_DEVICES[i]
        extra = ' ref_parking_site: "pilatusplatz"' if d["codec"] in ("nwave-nps405", "bosch-tps110") else ""
        out += (f'  device {{ id: "{i}" dev_addr: "{d["dev_addr"]}" nwk_s_key: "{d["nwk_s_key"]}" '
                f'app_s_key: "{d["app_s_key"]}" codec: "{d["codec"]}"{extra} }}\n')
    return out + "}\n"


def send_lora(port, ids, fcnt, count=1):
    """Real Semtech UDP frames from lora-packet via concentrator.js; returns its summary."""
    args = [NODE, str(PEERS / "concentrator.js"), "send", "--port", str(port), "--count", str(count),
            "--interval", "50", "--fcnt", str(fcnt)]
    for i in ids:
        d = LORA_DEVICES[i]
        args += ["--device", f'{d["dev_addr"]}:{d["nwk_s_key"]}:{d["app_s_key"]}:{d["fport"]}:{",".join(d["payloads"])}']
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"concentrator.js failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def frame(msg):
    body = msg.SerializeToString()
    return struct.pack(">I", len(body)) + body


def read_frame(sock, timeout=10):
    sock.settimeout(timeout)
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    r = control_pb2.ControlResponse()
    r.ParseFromString(body)
    return r


def contiguous(seqs):
    """True when the distinct seqs form one run without a hole."""
    s = sorted(set(seqs))
    return bool(s) and s[-1] - s[0] + 1 == len(s)


class CliWorld(IntegrationTest):
    """A gateway with Modbus bus "b" (TCP: air on unit 1, a CDAB float at holding 20..21, units 2
    and 5 also present for the scan), RTU bus "r" (a pty: air on unit 7) and two LoRa devices."""

    LORA_IDS = ["parking-bay-0042", "air-node-01"]

    def setUp(self):
        super().setUp()
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({
            "1": {"hr": aqt(20), "values": [
                {"table": "hr", "address": 20, "type": "FLOAT32", "order": "CDAB", "value": 123456.0}]},
            "2": {"hr": aqt(30)},
            "5": {"hr": {"0": 5}},
        }, name="sim-tcp")
        self.rtu = env.modbus({"7": {"hr": aqt(40), "values": [
            {"table": "hr", "address": 20, "type": "FLOAT32", "order": "CDAB", "value": 123456.0}]}},
            transport="rtu", name="sim-rtu", baudrate=115200)
        self.lora_port = free_port(socket.SOCK_DGRAM)
        self.socket = env.path("control.sock")
        self.cfg_path = env.path("citygated.textproto")
        self.write_config()
        self.sub = env.subscriber(self.broker, "gw-cli")
        self.gw = env.gateway(Path(self.cfg_path).read_text())
        self.gw.wait_log("control socket")
        self.fcnt = 0

    def config_text(self, tcp_devices=None, rtu_devices=None, lora_ids=None, extra="", extra_buses="",
                    lora_port=None, mqtt_extra=""):
        tcp_devices = tcp_devices if tcp_devices is not None else [("air", 1)]
        rtu_devices = rtu_devices if rtu_devices is not None else [("air-rtu", 7)]
        buses = (f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {self.sim.port} }} response_timeout_ms: 300\n' +
                 "".join(f'  device {{ id: "{i}" unit_id: {u} profile: "vaisala-aqt530" poll_interval_ms: 300 }}\n'
                         for i, u in tcp_devices) + "}\n")
        buses += (f'modbus_bus {{ name: "r" rtu {{ device: "{self.rtu.device}" baud: 115200 parity: NONE }} '
                  'response_timeout_ms: 300\n' +
                  "".join(f'  device {{ id: "{i}" unit_id: {u} profile: "vaisala-aqt530" poll_interval_ms: 400 }}\n'
                          for i, u in rtu_devices) + "}\n")
        buses += extra_buses
        lora = lora_block(lora_port or self.lora_port, self.LORA_IDS if lora_ids is None else lora_ids)
        return gateway_config("gw-cli", self.broker.uri, self.env, buses, extra=lora + extra, mqtt_extra=mqtt_extra)

    def write_config(self, path=None, **kw):
        path = path or self.cfg_path
        Path(path).write_text(self.config_text(**kw))
        return path

    def ctl(self, *args, json_out=False, check=None, timeout=60, env=None, socket_path=None):
        self.calls = getattr(self, "calls", 0) + 1
        argv = [str(CTL), "--socket", socket_path or self.socket] + (["--json"] if json_out else []) + list(map(str, args))
        e = dict(os.environ)
        e.update(env or {})
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e)
        if check is not None:
            self.assertEqual(out.returncode, check, f"{argv}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
        return out

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, json_out=True, check=0).stdout)

    def status(self):
        return self.ctl_json("status")

    def device_status(self, device_id):
        return next(d for d in self.status()["devices"] if d["id"] == device_id)

    def lora(self, ids=None, count=1):
        summary = send_lora(self.lora_port, ids or self.LORA_IDS, self.fcnt, count)
        self.fcnt += count
        return summary

    def wait_readings(self, *ids, timeout=20):
        for i in ids:
            self.sub.wait_for(lambda: self.sub.of(i), timeout, f"readings of {i}")


class Commands(CliWorld):
    def test_status_human_and_json(self):
        self.wait_readings("air", "air-rtu")
        self.lora()
        self.wait_readings(*self.LORA_IDS)
        out = self.ctl("status", check=0).stdout
        self.assertIn("gw-cli", out)
        self.assertIn("connected", out)
        self.assertRegex(out, r"MQTT +connected to tcp://127\.0\.0\.1:\d+ since \d\d:\d\d:\d\d, \d+ s")
        # one aligned row per device: the header's columns line up with the values
        lines = out.splitlines()
        header = next(i for i, l in enumerate(lines) if l.startswith("DEVICE"))
        col = lines[header].index("STATE")
        for dev in ["air", "air-rtu", *self.LORA_IDS]:
            row = next(l for l in lines[header + 1:] if l.split()[0] == dev)
            self.assertEqual(row[col:col + 2], "OK", row)
            self.assertRegex(row, r"\d+ s ago")
        self.assertNotIn("\x1b[", out)  # not a terminal: no colour

        s = self.status()
        self.assertEqual(s["gateway"]["gateway_id"], "gw-cli")
        self.assertEqual(s["gateway"]["state"], "ONLINE")
        self.assertEqual(s["config_generation"], "1")
        self.assertTrue(s["health"]["mqtt"]["connected"])
        air = next(d for d in s["devices"] if d["id"] == "air")
        self.assertEqual(air["kind"], "modbus")
        self.assertEqual(air["bus"], "b")
        self.assertGreater(int(air["health"]["polls_ok"]), 0)
        self.assertGreater(air["health"]["rtt_us"], 0)
        bay = next(d for d in s["devices"] if d["id"] == "parking-bay-0042")
        self.assertEqual(bay["kind"], "lorawan")
        self.assertEqual(int(bay["health"]["frames_accepted"]), 1)
        # the control socket's own counters are in the health report, also over MQTT
        self.assertGreaterEqual(int(s["health"]["counters"]["control_requests"]), 1)
        self.sub.wait_for(lambda: any("control_clients_accepted" in h.counters for h in self.sub.health), 10,
                          "control counters in the published health")

    def test_devices_and_device(self):
        self.wait_readings("air", "air-rtu")
        self.lora(["parking-bay-0042"])
        self.wait_readings("parking-bay-0042")
        out = self.ctl("devices", check=0).stdout
        for dev, profile in [("air", "vaisala-aqt530"), ("air-rtu", "vaisala-aqt530"),
                             ("parking-bay-0042", "nwave-nps405"), ("air-node-01", "citygate-air")]:
            self.assertRegex(out, rf"(?m)^{re.escape(dev)} +\w+ +{re.escape(profile)} ")
        self.assertRegex(out, r"(?m)^air +modbus +vaisala-aqt530 +b #1 +300 ms|^air +modbus +vaisala-aqt530 +b #1 +0 s")
        self.assertIn("no2 38.24 µg/m³", out)  # 20 ppb * 1.912
        self.assertIn("none yet", out)          # air-node-01 has sent nothing

        d = self.ctl("device", "air", check=0).stdout
        self.assertRegex(d, r"Where +bus b \(tcp 127\.0\.0\.1:\d+\), unit 1")
        self.assertRegex(d, r"(?m)^no2 +38\.24 +µg/m³ +GOOD$")
        self.assertRegex(d, r"(?m)^relative_humidity +65\.5 +% +GOOD$")
        p = self.ctl("device", "parking-bay-0042", check=0).stdout
        self.assertRegex(p, r"DevAddr 26011F42")
        self.assertRegex(p, r"(?m)^status +(occupied|free) ")

        js = self.ctl_json("device", "air")
        self.assertEqual(js["id"], "air")
        latest = js["latest"][-1]
        self.assertAlmostEqual(latest["air_quality_observed"]["no2"]["value"], 38.24)
        # the daemon's latest value is one the platform received
        self.sub.wait_for(lambda: int(latest["seq"]) in self.sub.seqs(), 10, what="the latest seq at the platform")
        alls = self.ctl_json("devices")
        self.assertEqual({d["id"] for d in alls["devices"]}, {"air", "air-rtu", *self.LORA_IDS})

        nope = self.ctl("device", "nope", check=5)
        self.assertIn("no device 'nope'", nope.stderr)
        self.assertTrue(nope.stderr.startswith("citygatectl: "))
        self.assertEqual(len(nope.stderr.strip().splitlines()), 1)
        typo = self.ctl("device", "ari", check=5)
        self.assertIn("no device 'ari' in the running configuration; did you mean 'air'?", typo.stderr)
        self.assertIn("did you mean 'air'?", self.ctl("tail", "ari", check=5).stderr)
        self.assertIn("did you mean 'b'?", self.ctl("modbus", "read", "bb", 1, "holding", 0, 1, check=5).stderr)

    def test_tail_human_json_device_filter_and_ctrl_c(self):
        self.wait_readings("air")
        out = self.ctl("tail", "air", "-c", "3", check=0, timeout=30).stdout.splitlines()
        self.assertEqual(len(out), 3)
        for line in out:
            self.assertRegex(line, r"^\d\d:\d\d:\d\d\.\d{3}  #\d+  air  GOOD  no2 38\.24 µg/m³  no 6\.23696 µg/m³  "
                                   r"o3 59\.85 µg/m³  co 0\.04656 mg/m³  so2 7\.989 µg/m³  pm25 12\.3 µg/m³")
        js = self.ctl("tail", "--count", "6", json_out=True, check=0, timeout=30).stdout.splitlines()
        readings = [json.loads(l) for l in js]
        seqs = [int(r["seq"]) for r in readings]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(seqs)), 6)
        for s in seqs:  # what tail shows is what the platform gets
            self.sub.wait_for(lambda: s in self.sub.seqs(), 15, f"seq {s} at the platform")

        # LoRa readings appear live in a running tail
        p = subprocess.Popen([str(CTL), "--socket", self.socket, "tail", "--device", "parking-bay-0042"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: self.status()["health"]["counters"].get("control_clients", "0") != "1", 10,
                     what="the tail client to connect")
            self.lora(["parking-bay-0042"])
            line = p.stdout.readline()
            self.assertRegex(line, r"#\d+  parking-bay-0042  GOOD  bay|#\d+  parking-bay-0042  GOOD  status")
            p.send_signal(signal.SIGINT)  # Ctrl-C
            self.assertEqual(p.wait(10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        # the daemon forgets the tail client
        wait_for(lambda: self.status()["health"]["counters"]["control_clients"] == "1", 10, what="the client to be gone")

        # `tail | head` ends when head has what it wants
        piped = subprocess.run(f"{CTL} --socket {self.socket} tail --device air | head -n 2", shell=True,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(len(piped.stdout.splitlines()), 2)

        bad = self.ctl("tail", "--device", "nope", check=5)
        self.assertIn("no device 'nope'", bad.stderr)

    def test_lora_devices(self):
        self.lora(count=2)
        self.wait_readings(*self.LORA_IDS)
        self.sub.wait_for(lambda: len(self.sub.of("air-node-01")) >= 2, 15, what="two frames of air-node-01")
        # a frame that replays an old counter is rejected and counted by reason
        send_lora(self.lora_port, ["parking-bay-0042"], 0, 1)
        wait_for(lambda: "replay" in json.dumps(self.ctl_json("lora", "devices")), 10, what="the replay to be counted")
        out = self.ctl("lora", "devices", check=0).stdout
        self.assertRegex(out, rf"Packet forwarder +127\.0\.0\.1:{self.lora_port}/udp")
        self.assertRegex(out, r"Concentrator +AA555A0000000000 · last seen \d+ s ago")
        row = next(l for l in out.splitlines() if l.startswith("parking-bay-0042"))
        self.assertRegex(row, r"26011F42 +nwave-nps405 +(OK|DEGRADED) +\d+ s ago +1 +-?\d+ dBm +[\d.-]+ dB +2 +1 \(replay 1\)")
        js = self.ctl_json("lora", "devices")
        bay = next(d for d in js["devices"] if d["id"] == "parking-bay-0042")
        self.assertEqual(bay["health"]["last_f_cnt"], 1)
        self.assertEqual(bay["health"]["frames_accepted"], "2")
        self.assertEqual(bay["health"]["frames_rejected"], {"replay": "1"})
        self.assertEqual(js["bind"], f"127.0.0.1:{self.lora_port}")

    def test_spool_and_log_level(self):
        self.wait_readings("air")
        out = self.ctl("spool", check=0).stdout
        self.assertRegex(out, r"Spool +/.*spool")
        self.assertRegex(out, r"Next seq +\d+")
        self.assertRegex(out, r"Dropped +0")
        js = self.ctl_json("spool")
        self.assertGreater(int(js["spool"]["next_seq"]), max(self.sub.seqs()))
        self.assertEqual(js["spool"]["dropped"], "0")
        # with the broker gone, readings wait in the spool
        self.broker.stop()
        wait_for(lambda: int(self.ctl_json("spool")["spool"]["readings"]) > 3, 20, what="readings in the spool")
        self.broker.start()
        wait_for(lambda: int(self.ctl_json("spool")["spool"]["readings"]) < 3, 30, what="the spool to drain")

        self.assertIn("log level: debug", self.ctl("log-level", check=0).stdout)
        self.assertIn("log level set to warning (all loggers)", self.ctl("log-level", "warn", check=0).stdout)
        self.assertEqual(self.ctl_json("log-level")["level"], "warning")
        # info lines are gone (a scan logs one), and come back with info
        self.ctl("modbus", "scan", "b", 1, 1, check=0)
        self.assertNotIn("modbus scan of bus 'b' units 1..1", self.gw.log())
        self.assertIn("log level set to info for control",
                      self.ctl("log-level", "info", "--logger", "control", check=0).stdout)
        self.ctl("modbus", "scan", "b", 2, 2, check=0)
        wait_for(lambda: "modbus scan of bus 'b' units 2..2" in self.gw.log(), 5, what="the scan's info line")
        levels = self.ctl("log-level", check=0).stdout
        self.assertRegex(levels, r"(?m)^control +info$")
        self.assertRegex(levels, r"(?m)^modbus +warning$")
        self.assertEqual(self.ctl_json("log-level")["levels"]["control"], "info")
        self.assertIn("no logger 'nope'", self.ctl("log-level", "info", "--logger", "nope", check=5).stderr)
        self.assertIn("unknown level 'loud'", self.ctl("log-level", "loud", check=2).stderr)
        self.assertIn("log level warn (set by uid 0", self.gw.log())
        self.assertIn("log level info for control (set by uid 0", self.gw.log())


class Config(CliWorld):
    def test_validate_offline_with_startup_diagnostics(self):
        good = self.cfg_path
        out = self.ctl("config", "validate", good, check=0, socket_path="/nonexistent/x.sock")
        self.assertRegex(out.stdout, r"OK \(2 bus\(es\), 2 Modbus device\(s\), LoRa: 2 device\(s\)\)")
        bad = self.env.path("bad.textproto")
        Path(bad).write_text(self.config_text().replace('profile: "vaisala-aqt530"', 'profile: "nope"', 1)
                             .replace("gateway_id:", "gateway_idd:", 1))
        out = self.ctl("config", "validate", bad, check=78, socket_path="/nonexistent/x.sock")
        daemon = subprocess.run([str(BIN / "citygated"), "--check-config", bad], capture_output=True, text=True)
        self.assertEqual(daemon.returncode, 78)
        diags = [l for l in out.stderr.splitlines() if re.match(r"^.+:\d+:\d+: ", l)]
        self.assertTrue(diags)
        self.assertEqual(diags, [l for l in daemon.stderr.splitlines() if re.match(r"^.+:\d+:\d+: ", l)])
        js = json.loads(self.ctl("config", "validate", bad, json_out=True, check=78).stdout)
        self.assertFalse(js["valid"])
        self.assertEqual(js["diagnostics"], diags)

    def test_show_redacts_keys(self):
        out = self.ctl("config", "show", check=0).stdout
        self.assertIn('gateway_id: "gw-cli"', out)
        self.assertIn('nwk_s_key: "<redacted>"', out)
        for d in self.LORA_IDS:
            self.assertNotIn(LORA_DEVICES[d]["nwk_s_key"], out)
            self.assertNotIn(LORA_DEVICES[d]["app_s_key"], out)
        js = self.ctl_json("config", "show")
        self.assertEqual(js["path"], self.cfg_path)
        self.assertEqual(js["generation"], "1")
        self.assertNotIn(LORA_DEVICES["air-node-01"]["app_s_key"], js["text"])

    def test_diff(self):
        new = self.write_config(self.env.path("new.textproto"), rtu_devices=[("air-rtu", 7)],
                                tcp_devices=[("air", 1), ("air2", 2)])
        out = self.ctl("config", "diff", new, check=0).stdout
        self.assertRegex(out, r'(?m)^\+  device \{ id: "air2" unit_id: 2 ')
        self.assertRegex(out, r"(?m)^@@ -\d+,\d+ \+\d+,\d+ @@$")
        self.assertRegex(out, r"(?m)^  restart +bus b$")
        self.assertRegex(out, r"(?m)^  keep +bus r, LoRa$")
        js = self.ctl_json("config", "diff", new)
        self.assertEqual(js["plan"]["changed"], ["b"])
        self.assertEqual(js["plan"]["unchanged"], ["r", "lora"])
        self.assertNotIn(LORA_DEVICES["air-node-01"]["nwk_s_key"], js["diff"] + out)
        same = self.ctl("config", "diff", self.cfg_path, check=0).stdout
        self.assertIn("no differences", same)
        mqtt = self.write_config(self.env.path("mqtt.textproto"), mqtt_extra="keepalive_s: 17")
        refused = self.ctl("config", "diff", mqtt, check=1)
        self.assertIn("mqtt.keepalive_s changed: needs a restart", refused.stdout + refused.stderr)
        self.assertEqual(self.status()["config_generation"], "1")  # a diff changes nothing


class Apply(CliWorld):
    def seqs_contiguous_after(self, more=10):
        """Waits for `more` new readings, then checks that every seq arrived (no hole)."""
        n = len(self.sub.seqs())
        self.sub.wait_for(lambda: len(self.sub.seqs()) >= n + more, 30, f"{more} more readings")
        seqs = self.sub.seqs()
        self.assertTrue(contiguous(seqs), f"a gap in seq: {sorted(set(seqs))}")

    def test_broken_files_leave_the_old_configuration_running_without_a_seq_gap(self):
        self.wait_readings("air", "air-rtu")
        before = self.device_status("air")["health"]
        # 1. syntax and semantic errors: nothing is touched, diagnostics as at start-up
        bad = self.env.path("bad.textproto")
        Path(bad).write_text(self.config_text().replace("poll_interval_ms: 300", "poll_interval_ms: 3", 1) + "oops {\n")
        out = self.ctl("config", "apply", bad, check=78)
        self.assertRegex(out.stderr, rf"(?m)^{re.escape(bad)}:\d+:\d+: ")
        self.assertIn("the running configuration is kept", out.stderr)
        js = json.loads(self.ctl("config", "apply", bad, json_out=True, check=78).stdout)
        self.assertEqual(js["error"]["code"], "INVALID_CONFIG")
        self.assertTrue(all(re.match(rf"{re.escape(bad)}:\d+:\d+: ", d) for d in js["error"]["diagnostics"]))
        # 2. a serial port that cannot be opened: refused before anything stops
        serial = self.write_config(self.env.path("serial.textproto"), extra_buses=(
            'modbus_bus { name: "gone" rtu { device: "/dev/ttyCITYGATE-NONE" baud: 9600 }\n'
            '  device { id: "x" unit_id: 9 profile: "vaisala-aqt530" poll_interval_ms: 1000 } }\n'))
        out = self.ctl("config", "apply", serial, check=1)
        self.assertIn("bus 'gone': cannot open /dev/ttyCITYGATE-NONE", out.stderr)
        # 3. a LoRa port in use
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        taken.bind(("127.0.0.1", 0))
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        lora = self.write_config(self.env.path("lora.textproto"), lora_port=port)
        out = self.ctl("config", "apply", lora, check=1)
        self.assertIn(f"lora: 127.0.0.1:{port} (udp) is not available", out.stderr)
        # 4. a change that needs a restart
        mqtt = self.write_config(self.env.path("mqtt.textproto"), mqtt_extra="keepalive_s: 17")
        out = self.ctl("config", "apply", mqtt, check=1)
        self.assertIn("mqtt.keepalive_s changed: needs a restart", out.stderr)

        s = self.status()
        self.assertEqual(s["config_generation"], "1")
        # the same bus, still counting: its next poll after the refused applies succeeds
        wait_for(lambda: int(self.device_status("air")["health"]["polls_ok"]) > int(before["polls_ok"]),
                 10, what="the air station's next successful poll")
        # LoRa still on its old port
        self.lora(["parking-bay-0042"])
        self.wait_readings("parking-bay-0042")
        self.seqs_contiguous_after()
        self.assertTrue(self.gw.process.running())

    def test_apply_adds_devices_the_others_continue_without_a_gap(self):
        self.wait_readings("air", "air-rtu")
        self.lora(["parking-bay-0042"])
        self.wait_readings("parking-bay-0042")
        rtu_before = int(self.device_status("air-rtu")["health"]["polls_ok"])
        # a device added to bus b (b restarts; r and LoRa are untouched)
        new = self.write_config(self.env.path("new.textproto"), tcp_devices=[("air", 1), ("air2", 2)])
        out = self.ctl("config", "apply", "--runtime-only", new, check=0).stdout
        self.assertIn("applied configuration 2", out)
        self.assertRegex(out, r"(?m)^  restarted +bus b$")
        self.assertRegex(out, r"(?m)^  untouched +bus r, LoRa$")
        self.assertRegex(out, r"readings continue at seq \d+")
        self.wait_readings("air2")
        n_air = len(self.sub.of("air"))
        self.sub.wait_for(lambda: len(self.sub.of("air")) > n_air + 2, 15, what="air to continue")
        s = self.status()
        self.assertEqual(s["config_generation"], "2")
        rtu = next(d for d in s["devices"] if d["id"] == "air-rtu")["health"]
        self.assertGreater(int(rtu["polls_ok"]), rtu_before)  # not reset: that bus kept running
        bay = next(d for d in s["devices"] if d["id"] == "parking-bay-0042")["health"]
        self.assertEqual(bay["frames_accepted"], "1")  # the LoRa source kept its state
        self.seqs_contiguous_after()

        # a device on a new bus (SIGHUP applies the file on disk the same way)
        self.write_config(tcp_devices=[("air", 1), ("air2", 2)], extra_buses=(
            f'modbus_bus {{ name: "c" tcp {{ host: "127.0.0.1" port: {self.sim.port} }}\n'
            '  device { id: "five" unit_id: 5 profile: "vaisala-aqt530" poll_interval_ms: 300 } }\n'))
        air2_before = int(self.device_status("air2")["health"]["polls_ok"])
        self.gw.process.signal(signal.SIGHUP)
        self.gw.wait_log("SIGHUP: configuration 3 running")
        self.wait_readings("five")
        air2 = int(self.device_status("air2")["health"]["polls_ok"])
        self.assertGreaterEqual(air2, air2_before)  # bus b untouched this time
        self.assertIn("added [c] removed [] changed [] unchanged [b, r, lora]", self.gw.log())
        self.seqs_contiguous_after()
        self.assertEqual(self.ctl_json("config", "show")["generation"], "3")

        # removing a bus stops its devices (--json for scripts)
        self.write_config(tcp_devices=[("air", 1)])
        seen = max(self.sub.seqs())  # readings numbered after the apply may arrive before the check
        js = json.loads(self.ctl("config", "apply", self.cfg_path, json_out=True, check=0).stdout)
        self.assertEqual(js["removed"], ["c"])
        self.assertEqual(js["changed"], ["b"])
        self.assertEqual(js["unchanged"], ["r", "lora"])
        self.assertEqual(js["generation"], "4")
        self.assertGreater(int(js["next_seq"]), seen)
        self.assertNotIn("five", {d["id"] for d in self.status()["devices"]})
        self.seqs_contiguous_after()


class Modbus(CliWorld):
    def probe_columns(self, out):
        """{(type, at): {order: text}} from the human probe page."""
        rows = {}
        lines = out.splitlines()
        for i, l in enumerate(lines):
            if l.startswith(("32-BIT", "64-BIT")):
                head = l.split()
                for r in lines[i + 1:]:
                    if not r.strip():
                        break
                    cells = r.split()
                    rows[(cells[0], int(cells[1]))] = dict(zip(head[2:], cells[2:]))
        return rows

    def test_read_human_json_and_errors(self):
        out = self.ctl("modbus", "read", "b", 1, "holding", 0, 3, check=0).stdout
        self.assertRegex(out, r"bus b, unit 1, holding registers 0\.\.2 \(tcp 127\.0\.0\.1:\d+ via citygated, ")
        self.assertRegex(out, r"(?m)^0 +0x0014 +20 +20$")
        self.assertRegex(out, r"(?m)^2 +0x0028 +40 +40$")
        js = self.ctl_json("modbus", "read", "b", 1, "holding", 20, 2)
        self.assertEqual(js["registers"], [0x2000, 0x47F1])
        self.assertEqual(js["table"], "HOLDING_REGISTER")
        self.assertIn("coil", self.ctl("modbus", "read", "b", 1, "coil", 0, 4, check=0).stdout)
        self.assertIn("no Modbus bus 'nope'", self.ctl("modbus", "read", "nope", 1, "holding", 0, 1, check=5).stderr)
        slow = self.ctl("modbus", "read", "b", 9, "holding", 0, 1, "--timeout", 100, check=1)
        self.assertIn("unit 9 on bus 'b': no answer within 100 ms", slow.stderr)
        self.assertIn("COUNT must be 1..125", self.ctl("modbus", "read", "b", 1, "holding", 0, 200, check=2).stderr)
        # the technician's reads go through the bus worker: the bus is not disturbed
        self.wait_readings("air")
        self.assertEqual(self.device_status("air")["health"]["state"], "OK")

    def test_completion_offers_modbus_buses_through_an_expanded_socket(self):
        devices = self.ctl_json("devices")["devices"]
        modbus = {d["bus"] for d in devices if d["kind"] == "modbus"}
        self.assertTrue(any(d["kind"] == "lorawan" for d in devices))
        # the socket as typed: a variable the shell would expand
        buses = complete_line(self, "citygatectl --socket $CG_SOCK modbus read ", env={"CG_SOCK": self.socket})
        self.assertEqual(set(buses), modbus)
        self.assertEqual(complete_line(self, "citygatectl -s ${CG_SOCK} device ai", env={"CG_SOCK": self.socket}),
                         ["air", "air-node-01", "air-rtu"])
        self.assertEqual(complete_line(self, "citygatectl -s ${CG_SOCK} tail ai", env={"CG_SOCK": self.socket}),
                         ["air", "air-node-01", "air-rtu"])

    def test_probe_shows_123456_in_the_cdab_column(self):
        out = self.ctl("modbus", "probe", "b", 1, 20, check=0).stdout
        rows = self.probe_columns(out)
        self.assertEqual(rows[("f32", 20)]["CDAB"], "123456")
        self.assertNotEqual(rows[("f32", 20)]["ABCD"], "123456")
        self.assertEqual(rows[("u32", 20)]["ABCD"], str(0x200047F1))
        self.assertRegex(out, r"(?m)^20 +0x2000 +8192 +8192 ")
        js = self.ctl_json("modbus", "probe", "b", 1, 20)
        f32 = next(r for r in js["bits32"] if r["type"] == "f32" and r["at"] == 20)
        self.assertEqual(f32["CDAB"], 123456)
        self.assertEqual(js["registers"], [0x2000, 0x47F1, 0, 0])
        # on the RTU bus through the daemon too
        rows = self.probe_columns(self.ctl("modbus", "probe", "r", 7, 20, check=0).stdout)
        self.assertEqual(rows[("f32", 20)]["CDAB"], "123456")

    def test_probe_read_and_scan_without_the_daemon(self):
        self.assertEqual(self.gw.stop(), 0)
        # no daemon and no bus settings: a clear error
        out = self.ctl("modbus", "probe", "b", 1, 20, check=3)
        self.assertIn("cannot reach citygated", out.stderr)
        self.assertIn("--config FILE or --tcp HOST:PORT", out.stderr)
        # the bus settings from the config file
        rows = self.probe_columns(self.ctl("modbus", "probe", "b", 1, 20, "--config", self.cfg_path, check=0).stdout)
        self.assertEqual(rows[("f32", 20)]["CDAB"], "123456")
        # or from flags: TCP, and RTU on the pseudo-terminal
        out = self.ctl("modbus", "probe", "x", 1, 20, "--tcp", f"127.0.0.1:{self.sim.port}", check=0).stdout
        self.assertIn(", direct", out)
        self.assertEqual(self.probe_columns(out)[("f32", 20)]["CDAB"], "123456")
        out = self.ctl("modbus", "probe", "x", 7, 20, "--rtu", self.rtu.device, "--baud", 115200, "--parity", "N",
                       check=0).stdout
        self.assertEqual(self.probe_columns(out)[("f32", 20)]["CDAB"], "123456")
        js = json.loads(self.ctl("modbus", "read", "b", 1, "holding", 0, 1, "--config", self.cfg_path,
                                 json_out=True, check=0).stdout)
        self.assertEqual(js["registers"], [20])
        out = self.ctl("modbus", "scan", "x", 1, 6, "--tcp", f"127.0.0.1:{self.sim.port}", "--timeout", 100,
                       check=0).stdout
        self.assertIn("3 of 6 unit id(s) answered on bus x: 1, 2, 5", out)
        self.assertIn("no bus 'zz'", self.ctl("modbus", "read", "zz", 1, "holding", 0, 1, "--config", self.cfg_path,
                                              check=5).stderr)
        # a file that parses is enough for the bus settings (other parts may not validate for this
        # user, e.g. LoRa key files readable by the daemon only)
        broken = self.env.path("broken.textproto")
        Path(broken).write_text(self.config_text(rtu_devices=[("air-rtu", 7)]).replace('profile: "vaisala-aqt530" '
                                                                                       'poll_interval_ms: 400',
                                                                                       'profile: "nope"'))
        self.ctl("config", "validate", broken, check=78)
        js = json.loads(self.ctl("modbus", "read", "b", 1, "holding", 20, 2, "--config", broken, json_out=True,
                                 check=0).stdout)
        self.assertEqual(js["registers"], [0x2000, 0x47F1])

    def test_scan_streams_progress(self):
        out = self.ctl("modbus", "scan", "b", 1, 8, "--timeout", 100, check=0).stdout
        self.assertEqual([l for l in out.splitlines() if l.startswith("unit ")],
                         ["unit 1 answers (ok)", "unit 2 answers (ok)", "unit 5 answers (ok)"])
        self.assertIn("3 of 8 unit id(s) answered on bus b: 1, 2, 5", out)
        lines = [json.loads(l) for l in self.ctl("modbus", "scan", "b", 1, 8, "--timeout", 100, json_out=True,
                                                 check=0).stdout.splitlines()]
        self.assertEqual([int(p["done"]) for p in lines], list(range(1, 9)))
        self.assertTrue(all(p["total"] == 8 for p in lines))
        self.assertEqual([p["unit_id"] for p in lines if p["answered"]], [1, 2, 5])
        self.assertEqual(lines[-1]["found"], [1, 2, 5])
        self.assertIn("timeout", [p["detail"] for p in lines if not p["answered"]])
        none = self.ctl("modbus", "scan", "b", 10, 12, "--timeout", 50, check=5)
        self.assertIn("0 of 3 unit id(s) answered", none.stdout)
        # a scan on the RTU bus, through the daemon, behind the polls
        self.assertIn("1 of 3 unit id(s) answered on bus r: 7",
                      self.ctl("modbus", "scan", "r", 6, 8, "--timeout", 100, check=0).stdout)
        self.wait_readings("air-rtu")
        self.assertEqual(self.device_status("air-rtu")["health"]["state"], "OK")


class Robustness(CliWorld):
    def daemon_fds(self):
        return len(os.listdir(f"/proc/{self.gw.process.proc.pid}/fd"))

    def test_no_daemon_and_permission_errors(self):
        out = self.ctl("status", check=3, socket_path=self.env.path("missing.sock"))
        self.assertEqual(out.stderr.strip(), f"citygatectl: cannot reach citygated at {self.env.path('missing.sock')}: "
                                             "no such file (is the service running? systemctl status citygated)")
        # a user outside the socket's group (the test dir is root's, mode 0700)
        if os.geteuid() == 0 and Path("/usr/bin/setpriv").exists():
            os.chmod(self.env.dir, 0o711)
            out = subprocess.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(CTL),
                                  "--socket", self.socket, "status"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 4, out.stderr)
            self.assertIn("permission denied (run as root, or join group citygate", out.stderr)
        self.assertEqual(self.ctl("frobnicate", check=2).stderr.splitlines()[0],
                         "citygatectl: unknown command 'frobnicate'")
        self.assertIn("has no option --bogus", self.ctl("status", "--bogus", check=2).stderr)

    def test_malformed_and_oversize_requests_get_an_error_and_a_counter(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.socket)
            s.sendall(struct.pack(">I", 3) + b"\xff\xff\xff")
            r = read_frame(s)
            self.assertEqual(r.error.code, control_pb2.ControlError.BAD_REQUEST)
            req = control_pb2.ControlRequest(id=5)
            req.status.SetInParent()
            s.sendall(frame(req))  # the connection is still usable
            self.assertEqual(read_frame(s).id, 5)
            s.sendall(struct.pack(">I", 50 << 20) + b"x" * 100)
            r = read_frame(s)
            self.assertEqual(r.error.code, control_pb2.ControlError.BAD_REQUEST)
            self.assertIn("larger than", r.error.message)
            self.assertIsNone(read_frame(s))  # closed
        c = self.status()["health"]["counters"]
        self.assertEqual(c["control_bad_requests"], "1")
        self.assertEqual(c["control_bad_frames"], "1")
        self.assertTrue(self.gw.process.running())

    def test_a_hundred_clients_at_once(self):
        self.wait_readings("air", "air-rtu")  # the RTU port open before the baseline of descriptors
        status = self.status()
        base_fds = self.daemon_fds()
        c0 = status["health"]["counters"]
        connections0 = int(c0["control_clients_accepted"]) + int(c0.get("control_clients_rejected", "0"))
        calls0 = self.calls
        results = []
        lock = threading.Lock()
        start = threading.Barrier(100)

        def client(i):
            kind = i % 4
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    start.wait(10)
                    s.connect(self.socket)
                    if kind == 0:  # connect and go
                        result = "gone"
                    elif kind == 1:  # half a frame, then go
                        try:
                            s.sendall(b"\x00\x00\x01")
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # turned away (BUSY) before it could send
                        result = "gone"
                    else:  # a request, and wait for the answer
                        req = control_pb2.ControlRequest(id=i)
                        req.status.SetInParent() if kind == 2 else req.tail.SetInParent()
                        try:
                            s.sendall(frame(req))
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # turned away at once: the BUSY reply is waiting to be read
                        r = read_frame(s)
                        if r is None:
                            result = "closed"
                        elif r.error.code == control_pb2.ControlError.BUSY:
                            result = "busy"
                        elif r.id == i:
                            result = "answered"
                        else:
                            result = f"wrong id {r.id}"
            except Exception as e:  # noqa: BLE001
                result = f"error {e!r}"
            with lock:
                results.append(result)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(results), 100)
        print(f"\n100 clients at once: {results.count('answered')} answered, {results.count('busy')} told BUSY, "
              f"{results.count('gone')} left at once", file=sys.stderr)
        self.assertEqual([r for r in results if r not in ("gone", "answered", "busy")], [])
        self.assertGreaterEqual(results.count("answered"), 10)
        # the daemon lets go of every connection and still serves
        wait_for(lambda: self.status()["health"]["counters"]["control_clients"] == "1", 15, what="all clients gone")
        c = self.status()["health"]["counters"]
        connections = int(c["control_clients_accepted"]) + int(c.get("control_clients_rejected", "0"))
        # every connection was accepted or told BUSY: ours, and one per citygatectl call since
        self.assertEqual(connections - connections0, 100 + self.calls - calls0)
        wait_for(lambda: self.daemon_fds() <= base_fds, 10, what="the daemon's file descriptors back to the baseline")
        n = len(self.sub.seqs())
        self.sub.wait_for(lambda: len(self.sub.seqs()) > n + 5, 15, what="readings to continue")
        self.assertTrue(contiguous(self.sub.seqs()))


def complete_line(test, line, env=None):
    """What bash completion offers for `line` (the words as typed, unexpanded)."""
    script = REPO / "gateway" / "cli" / "citygatectl.bash-completion"
    words = line.split(" ")
    quoted = " ".join("'" + w + "'" for w in words)
    prog = (f"source {script}\nCOMP_WORDS=({quoted})\nCOMP_CWORD={len(words) - 1}\n_citygatectl\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
    out = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{BIN}:/usr/bin:/bin", **(env or {})})
    test.assertEqual(out.returncode, 0, out.stderr)
    return sorted(l for l in out.stdout.splitlines() if l)


class Help(unittest.TestCase):
    def run_ctl(self, *args, check=0):
        out = subprocess.run([str(CTL), *map(str, args)], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, check, out.stderr)
        return out

    def test_help_for_every_command(self):
        top = self.run_ctl("--help").stdout
        for cmd in ["status", "devices", "device ID", "tail [ID]", "config validate FILE", "config show",
                    "config diff FILE", "config apply FILE", "modbus read BUS UNIT TABLE ADDR COUNT",
                    "modbus probe BUS UNIT ADDR", "modbus scan BUS [FROM TO]", "lora devices", "spool",
                    "log-level [LEVEL]", "mqtt reconnect", "lora heard", "profiles"]:
            self.assertRegex(top, rf"(?m)^  {re.escape(cmd)}(  |$)")
        for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "75", "78"]:
            self.assertRegex(top, rf"(?m)^  {code} ")
        for cmd in [["status"], ["devices"], ["device"], ["tail"], ["config", "validate"], ["config", "show"],
                    ["config", "diff"], ["config", "apply"], ["modbus", "read"], ["modbus", "probe"],
                    ["modbus", "scan"], ["lora", "devices"], ["spool"], ["log-level"], ["mqtt", "reconnect"]]:
            a = self.run_ctl("help", *cmd).stdout
            b = self.run_ctl(*cmd, "--help").stdout
            self.assertEqual(a, b)
            self.assertTrue(a.startswith("usage: citygatectl [--socket PATH] [--json] " + " ".join(cmd)), a)
        self.assertIn("--rtu DEVICE", self.run_ctl("help", "modbus", "probe").stdout)
        self.assertIn("wants a subcommand: config validate, config show, config diff, config apply",
                      self.run_ctl("config", check=2).stderr)
        self.assertRegex(self.run_ctl("--version").stdout, r"^citygatectl \d+\.\d+\.\d+")

    def test_suggestions_for_typos(self):
        self.assertIn("unknown command 'stauts'; did you mean 'status'?", self.run_ctl("stauts", check=2).stderr)
        self.assertIn("config has no subcommand 'valdate'; did you mean 'config validate'?",
                      self.run_ctl("config", "valdate", "x", check=2).stderr)
        self.assertIn("did you mean 'modbus probe'?", self.run_ctl("modbus", "porbe", check=2).stderr)
        self.assertIn("status has no option --jsn; did you mean --json?", self.run_ctl("status", "--jsn", check=2).stderr)
        self.assertIn("unknown command 'frobnicate'", self.run_ctl("frobnicate", check=2).stderr)
        self.assertNotIn("did you mean", self.run_ctl("frobnicate", check=2).stderr)
        # `help GROUP` lists the group's commands, as `GROUP --help` does
        group = self.run_ctl("help", "modbus").stdout
        self.assertEqual(group, self.run_ctl("modbus", "--help").stdout)
        for sub in ["read", "probe", "scan"]:
            self.assertIn("citygatectl [--socket PATH] [--json] modbus " + sub, group)
        # short options: -c is --count
        self.assertIn("--count wants a positive number", self.run_ctl("tail", "-c", "0", check=2).stderr)
        self.assertIn("unknown option '-x'", self.run_ctl("status", "-x", check=2).stderr)
        # Modicon notation gets a hint, not a bare range error
        err = self.run_ctl("modbus", "read", "b", "1", "holding", "400001", "2", "--tcp", "127.0.0.1:1", check=2).stderr
        self.assertIn("looks like Modicon notation; holding register 1 is PDU address 0", err)

    def test_bash_completion(self):
        complete = functools.partial(complete_line, self)
        self.assertEqual(complete("citygatectl mod"), ["modbus"])
        self.assertEqual(complete("citygatectl modbus "), ["probe", "read", "scan", "write"])
        self.assertEqual(complete("citygatectl config "), ["apply", "diff", "show", "validate"])
        self.assertEqual(complete("citygatectl modbus read b 1 "), ["coil", "discrete", "holding", "input"])
        self.assertEqual(complete("citygatectl log-level d"), ["debug"])
        self.assertIn("--table", complete("citygatectl modbus probe b 1 0 --t"))
        self.assertEqual(complete("citygatectl --j"), ["--json"])
        self.assertEqual(complete("citygatectl profiles "), ["show"])
        self.assertEqual(complete("citygatectl profiles show vai"), ["vaisala-aqt530"])
        self.assertEqual(complete("citygatectl mqtt "), ["reconnect"])
        self.assertEqual(complete("citygatectl device air --r"), ["--retry"])


if __name__ == "__main__":
    unittest.main()
