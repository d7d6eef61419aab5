"""Issue 15: a repair at the cabinet, and "try again now".

The real citygated with a Modbus TCP bus served by pymodbus (an AQT530 air sensor on unit 1 and a
four-lane traffic counter on unit 3) whose devices go DOWN with a 10-minute backoff when the peer
stops, and a LoRaWAN device; a real mosquitto and a platform subscriber; the real citygatectl for
every command. After the peer is back ("repaired"), `device ID --retry` or a successful
`modbus read` of the unit brings a device back within one poll interval, where its backoff alone
would have taken minutes. `mqtt reconnect` ends the broker backoff, and reconnects a live link
without losing a reading. Times are shown as local HH:MM:SS beside the relative ones.
"""
import json
import re
import socket
import subprocess
import time
import unittest
from datetime import datetime

from harness import BIN, REPO, IntegrationTest, free_port, wait_for

CTL = BIN / "citygatectl"
LORA = {d["id"]: d for d in json.loads((REPO / "tests" / "data" / "lora" / "devices.json").read_text())}
POLL_MS = 500
MARGIN_S = 2.0  # above one poll interval: a probe is one request of at most response_timeout_ms (300)
CLOCK = r"(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d"  # the date too when it is not today's


def aqt(no2):
    return {"0": no2, "1": 3, "2": 40, "5": 30, "6": 5, "8": 123, "9": 456, "10": 215, "11": 655, "12": 9650}


def traffic():
    values = []
    for lane in range(4):
        base = lane * 10
        values += [
            {"table": "ir", "address": base, "type": "UINT32", "order": "ABCD", "value": 100 + lane},
            {"table": "ir", "address": base + 2, "type": "UINT16", "value": 250},
            {"table": "ir", "address": base + 3, "type": "UINT16", "value": 523},
            {"table": "ir", "address": base + 4, "type": "UINT16", "value": 456},
            {"table": "ir", "address": base + 5, "type": "UINT16", "value": 21},
        ]
    return {"values": values}


def contiguous(seqs):
    s = sorted(set(seqs))
    return bool(s) and s[-1] - s[0] + 1 == len(s)


class Repair(IntegrationTest):
    def setUp(self):
        super().setUp()
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"1": {"hr": aqt(20)}, "3": traffic()}, name="sim-tcp")
        self.socket = env.path("control.sock")
        bay = LORA["parking-bay-0042"]
        lora_port = free_port(socket.SOCK_DGRAM)
        config = f"""
gateway_id: "gw-repair"
location {{ lat: 47.05 lon: 8.31 }}
mqtt {{
  uri: "{self.broker.uri}"
  max_batch_readings: 50
  max_batch_delay_ms: 100
  reconnect_min_ms: 300000
  reconnect_max_ms: 300000
}}
control {{ socket: "{self.socket}" }}
runtime_dir: "{env.path('run')}"
health_interval_s: 1
spool {{ dir: "{env.path('spool')}" }}
modbus_bus {{
  name: "b" tcp {{ host: "127.0.0.1" port: {self.sim.port} }}
  response_timeout_ms: 300 failures_to_down: 2 backoff_min_ms: 600000 backoff_max_ms: 600000
  device {{ id: "air" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: {POLL_MS} }}
  device {{ id: "traffic" unit_id: 3 profile: "citygate-traffic-counter-4lane" poll_interval_ms: {POLL_MS} }}
}}
lora {{
  packet_forwarder {{ bind: "127.0.0.1" port: {lora_port} }}
  device {{ id: "parking-bay-0042" dev_addr: "{bay["dev_addr"]}" nwk_s_key: "{bay["nwk_s_key"]}"
           app_s_key: "{bay["app_s_key"]}" codec: "{bay["codec"]}" ref_parking_site: "pilatusplatz" }}
}}
"""
        self.sub = env.subscriber(self.broker, "gw-repair")
        self.gw = env.gateway(config)
        self.gw.wait_log("control socket")

    def ctl(self, *args, json_out=False, check=None, timeout=60):
        argv = [str(CTL), "--socket", self.socket] + (["--json"] if json_out else []) + list(map(str, args))
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)  # whole lines (harness)
        if check is not None:
            self.assertEqual(out.returncode, check, f"{argv}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
        return out

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, json_out=True, check=0).stdout)

    def state(self, device_id):
        return self.ctl_json("device", device_id)["health"]["state"]

    def wait_state(self, device_id, state, timeout):
        wait_for(lambda: self.state(device_id) == state, timeout, what=f"{device_id} {state}")

    def go_down(self):
        """Both devices delivered, then the peer stops: the bus and its devices go DOWN."""
        self.sub.wait_for(lambda: self.sub.of("air") and len(self.sub.of("traffic")) >= 4, 20, "first readings")
        self.sim.stop()
        self.wait_state("air", "DOWN", 15)
        self.wait_state("traffic", "DOWN", 15)

    def test_every_lane_in_devices(self):
        self.sub.wait_for(lambda: len(self.sub.of("traffic")) >= 4, 20, "the lanes")
        wait_for(lambda: len(self.ctl_json("devices")["devices"][1]["latest"]) == 4, 10, what="4 lanes in devices")
        out = self.ctl("devices", check=0).stdout
        self.assertRegex(out, r"(?m)^traffic .* 4 parts:$")
        parts = re.findall(r"(?m)^    lane \d.*$", out)
        self.assertEqual(len(parts), 4, out)
        for i, line in enumerate(parts, 1):
            self.assertTrue(line.startswith(f"    lane {i}"), line)
            self.assertLessEqual(len(line), 80, line)

    def test_retry_and_adhoc_read_end_the_backoff(self):
        self.go_down()
        # Bus-level line, device lines with local times beside relative ones; stale values.
        st = self.ctl("status", check=0).stdout
        self.assertRegex(st, rf"(?m)^Bus +b \(tcp 127\.0\.0\.1:\d+\) DOWN since {CLOCK}, \d+ s$")
        self.assertRegex(st, r"(?m)^ +cannot connect: .*[Rr]efused")
        self.assertRegex(st, rf"(?m)^air +modbus .* DOWN {CLOCK} ")
        js = self.ctl_json("status")
        bus = js["health"]["buses"][0]
        self.assertEqual((bus["name"], bus["state"]), ("b", "BUS_DOWN"))
        d = self.ctl("device", "air", check=0).stdout
        self.assertRegex(d, rf"(?m)^State +DOWN since {CLOCK}, \d+ s")
        self.assertRegex(d, rf"(?m)^Last error +.* · {CLOCK} \(\d+ s ago\)$")
        self.assertRegex(d, rf"(?m)^Next try +{CLOCK} \(in \d+ min\)")
        self.assertRegex(d, r"(?m)^no2 +38\.24 +µg/m³ +GOOD, stale$")
        self.assertIn("stale: the device is DOWN", d)
        self.assertTrue(self.ctl_json("device", "air")["stale"])
        for line in d.splitlines():
            if line.startswith(("State", "Last error", "Next try", "Last good")):
                self.assertLessEqual(len(line), 80, line)
        # The human clock is the local time of the state change.
        since = self.ctl_json("device", "air")["health"]["state_since"]
        local = datetime.fromisoformat(since.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
        self.assertIn(f"DOWN since {local}", d)

        # The repair: the peer is back. The backoff (10 min) would keep the devices DOWN.
        self.sim.start()
        air = self.ctl_json("device", "air")["health"]
        next_try = datetime.fromisoformat(air["next_attempt_at"].replace("Z", "+00:00")).timestamp()
        self.assertGreater(next_try - time.time(), 120)
        self.assertEqual(self.state("air"), "DOWN")

        # --retry: OK within one poll interval.
        before = len(self.sub.of("air"))
        asked = time.monotonic()
        out = self.ctl("device", "air", "--retry", check=0)
        self.assertIn("air: backoff ended; trying it now", out.stdout)
        self.assertRegex(out.stdout, rf"air: OK since {CLOCK}, \d+ s")
        wait_for(lambda: self.state("air") == "OK", max(0.0, POLL_MS / 1000 + MARGIN_S - (time.monotonic() - asked)),
                 what="air OK within one poll interval of --retry")
        self.sub.wait_for(lambda: len(self.sub.of("air")) > before, 10, "a new reading of air")
        d = self.ctl("device", "air", check=0).stdout
        self.assertRegex(d, rf"(?m)^State +OK since {CLOCK}, \d+ s")
        self.assertRegex(d, rf"(?m)^Last error +recovered · was: .*, {CLOCK} \(\d+ s ago\)$")
        self.assertNotIn("stale", d)
        self.assertRegex(self.ctl("status", check=0).stdout, r"(?m)^air +modbus .* OK .* -$")  # no current error
        self.assertIn("not in a backoff", self.ctl("device", "air", "--retry", check=0).stdout)

        # A successful ad-hoc read of the traffic counter's unit does the same.
        self.assertEqual(self.state("traffic"), "DOWN")
        asked = time.monotonic()
        self.ctl("modbus", "read", "b", 3, "input", 0, 2, check=0)
        wait_for(lambda: self.state("traffic") == "OK",
                 max(0.0, POLL_MS / 1000 + MARGIN_S - (time.monotonic() - asked)),
                 what="traffic OK within one poll interval of a successful modbus read")
        wait_for(lambda: self.ctl_json("status")["health"]["buses"][0]["state"] == "BUS_UP", 5, what="bus up")
        self.assertRegex(self.ctl("status", check=0).stdout, r"(?m)^Bus +b \(tcp 127\.0\.0\.1:\d+\) up$")
        self.assertIn("backoff ended (an ad-hoc read of unit 3 succeeded)", self.gw.log())

        # Nothing to retry on a LoRaWAN device; an unknown one is not found.
        lora = self.ctl("device", "parking-bay-0042", "--retry", check=2)
        self.assertIn("nothing to retry", lora.stderr)
        self.assertIn("no device 'nope'", self.ctl("device", "nope", "--retry", check=5).stderr)

    def test_mqtt_reconnect(self):
        self.sub.wait_for(lambda: len(self.sub.of("air")) >= 2, 20, "readings")
        # Connected: a clean reconnect; every reading arrives, without a hole.
        out = self.ctl("mqtt", "reconnect", check=0).stdout
        self.assertIn("MQTT was connected: closing the link, then connecting", out)
        self.assertRegex(out, rf"connected to tcp://127\.0\.0\.1:\d+ since {CLOCK}, \d+ s")
        self.assertRegex(out, rf"last publish {CLOCK} \(\d+ s ago\) · last ack {CLOCK} \(\d+ s ago\)")
        self.assertEqual(self.ctl_json("status")["health"]["mqtt"]["reconnects"], "1")
        n = len(self.sub.seqs())
        self.sub.wait_for(lambda: len(self.sub.seqs()) >= n + 10, 30, "10 more readings")
        self.assertTrue(contiguous(self.sub.seqs()), sorted(set(self.sub.seqs())))

        # The broker goes: disconnected since, next attempt (up to 5 min away with this backoff).
        self.broker.stop()
        wait_for(lambda: not self.ctl_json("status")["health"]["mqtt"]["connected"], 15, what="disconnected")
        st = self.ctl("status", check=0).stdout
        self.assertRegex(st, rf"(?m)^MQTT +disconnected from tcp://127\.0\.0\.1:\d+ since {CLOCK}, \d+ s$")
        self.assertRegex(st, rf"(?m)^ +next attempt {CLOCK} \(in \d+ (s|min)\) · now: mqtt reconnect$")
        self.assertRegex(st, rf"(?m)^ +last publish {CLOCK} \(\d+ s ago\) · last ack {CLOCK} \(\d+ s ago\)$")
        for line in st.split("\n\n")[0].splitlines():
            if not line.startswith("Config"):  # the config path is the test's temp dir
                self.assertLessEqual(len(line), 80, line)
        wait_for(lambda: int(self.ctl_json("spool")["spool"]["readings"]) > 3, 20, what="readings in the spool")
        self.broker.start()
        out = self.ctl("mqtt", "reconnect", check=0).stdout
        self.assertIn("MQTT was waiting to reconnect: connecting now", out)
        self.assertRegex(out, rf"connected to tcp://127\.0\.0\.1:\d+ since {CLOCK}, \d+ s")
        # Nothing lost: the spool drains and every seq reaches the platform.
        last = int(self.ctl_json("spool")["spool"]["next_seq"]) - 1
        self.sub.wait_for(lambda: self.sub.seqs() and max(self.sub.seqs()) >= last, 30, "the spool's readings")
        self.assertTrue(contiguous(self.sub.seqs()), sorted(set(self.sub.seqs())))



class MissingPort(IntegrationTest):
    def test_a_missing_serial_port_has_a_bus_line(self):
        sock = self.env.path("control.sock")
        device = self.env.path("ttyUSB-unplugged")  # no such file
        config = f"""
gateway_id: "gw-port"
mqtt {{ uri: "tcp://127.0.0.1:{free_port()}" }}
control {{ socket: "{sock}" }}
runtime_dir: "{self.env.path('run')}"
spool {{ dir: "{self.env.path('spool')}" }}
modbus_bus {{ name: "r" rtu {{ device: "{device}" baud: 9600 }} response_timeout_ms: 200
  device {{ id: "air" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 300 }} }}
"""
        gw = self.env.gateway(config)
        gw.wait_log("control socket")

        def status():
            out = subprocess.run([str(CTL), "--socket", sock, "--json", "status"], capture_output=True, text=True,
                                 timeout=30)
            return json.loads(out.stdout)

        wait_for(lambda: status()["health"]["buses"][0]["state"] == "BUS_DOWN", 10, what="the bus DOWN")
        out = subprocess.run([str(CTL), "--socket", sock, "status"], capture_output=True, text=True, timeout=30)
        self.assertRegex(out.stdout, rf"(?m)^Bus +r \(rtu .*ttyUSB-unplugged 9600 8E1\) DOWN since {CLOCK}, \d+ s$")
        self.assertRegex(out.stdout, r"(?m)^ +cannot open .*ttyUSB-unplugged: No such file or directory$")
        self.assertRegex(out.stdout, rf"(?m)^MQTT +disconnected from tcp://127\.0\.0\.1:\d+ since {CLOCK}, \d+ s$")


if __name__ == "__main__":
    unittest.main()
