"""Issue 15: `citygatectl doctor` and `status --check` follow a device from DOWN to repaired, and
every reading says whether the gateway's clock was synchronised.

The real citygated with a Modbus TCP bus (pymodbus) and a real mosquitto; the real citygatectl run
as a process. The peer is stopped (the plug pulled): `doctor` exits 1 with a FAIL line for the
device and the repair step, `status --check` exits 1 while plain `status` exits 0; the peer is
restarted on the same port and, once the device recovers (a short backoff in the config), `doctor`
and `status --check` exit 0. No sleeps: every wait polls for its condition with a deadline.
"""
import json
import os
import subprocess
import sys
import unittest

from harness import BIN, BUILD, IntegrationTest, gateway_config, wait_for

sys.path.insert(0, str(BUILD / "python"))
from citygate.v1 import status_pb2  # noqa: E402  (generated)

CTL = BIN / "citygatectl"


class Doctor(IntegrationTest):
    def setUp(self):
        super().setUp()
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"1": {"hr": {"0": 21, "1": 3, "2": 40}}}, name="sim")
        self.socket = env.path("control.sock")
        buses = (f'modbus_bus {{ name: "cabinet" tcp {{ host: "127.0.0.1" port: {self.sim.port} }} '
                 'response_timeout_ms: 300 failures_to_down: 2 backoff_min_ms: 500 backoff_max_ms: 1000\n'
                 '  device { id: "air" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 300 } }\n')
        self.sub = env.subscriber(self.broker, "gw-doctor")
        self.gw = env.gateway(gateway_config("gw-doctor", self.broker.uri, env, buses))
        self.gw.wait_log("control socket")

    def ctl(self, *args, json_out=False):
        argv = [str(CTL), "--socket", self.socket] + (["--json"] if json_out else []) + list(args)
        env = dict(os.environ, COLUMNS="80")
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)

    def doctor(self):
        out = self.ctl("doctor")
        for line in out.stdout.splitlines():
            self.assertLessEqual(len(line), 80, line)
        return out

    def doctor_json(self):
        out = self.ctl("doctor", json_out=True)
        return out.returncode, {c["name"]: c for c in json.loads(out.stdout)}

    def line(self, text, name):
        words = name.split()
        return next((l for l in text.splitlines() if l.split()[1:1 + len(words)] == words), None)

    def polled_ok(self):
        s = json.loads(self.ctl("status", json_out=True).stdout)
        h = next(d["health"] for d in s["devices"] if d["id"] == "air")
        return h["state"] == "OK" and int(h["polls_ok"]) > 0

    def test_doctor_fails_while_a_device_is_down_and_passes_once_it_is_repaired(self):
        # A device is OK before its first poll: wait for a real one.
        wait_for(self.polled_ok, 20, what="device air polled OK")
        wait_for(lambda: self.doctor().returncode == 0, 20, what="doctor to pass")
        out = self.doctor()
        self.assertRegex(self.line(out.stdout, "bus cabinet"), r"^OK +bus cabinet +1 device OK \(tcp 127\.0\.0\.1:\d+\)")
        self.assertRegex(self.line(out.stdout, "mqtt"), r"^OK +mqtt +connected since \d\d:\d\d:\d\d")
        self.assertFalse([l for l in out.stdout.splitlines() if l.startswith("FAIL")], out.stdout)
        self.assertNotIn("FAIL", out.stdout.splitlines()[-1])  # the summary: "1 WARN, 6 OK" or "all 7 checks OK"
        self.assertEqual(self.ctl("status", "--check").returncode, 0)

        self.sim.stop()  # the plug
        wait_for(lambda: self.doctor().returncode == 1, 20, what="doctor to fail")
        out = self.doctor()
        device = self.line(out.stdout, "device air")
        self.assertIsNotNone(device, out.stdout)
        self.assertRegex(device, r"^FAIL +device air +DOWN, last OK \d\d:\d\d:\d\d, \d+ s ago")
        words = " ".join(out.stdout.split())  # the next step may wrap at 80 columns
        self.assertIn("-> check wiring / power; citygatectl device air --retry after repair", words)
        self.assertRegex(self.line(out.stdout, "bus cabinet"), r"^FAIL +bus cabinet +its one device DOWN")
        self.assertIn("(exit status 1)", out.stdout)
        rc, checks = self.doctor_json()
        self.assertEqual(rc, 1)
        self.assertEqual(checks["device air"]["status"], "FAIL")
        self.assertIn("--retry", checks["device air"]["next_step"])
        self.assertEqual(set(checks["mqtt"]), {"name", "status", "detail", "next_step"})
        self.assertEqual(checks["mqtt"]["status"], "OK")
        self.assertEqual(self.ctl("status", "--check").returncode, 1)
        self.assertEqual(self.ctl("status", "--check", json_out=True).returncode, 1)
        self.assertEqual(self.ctl("status").returncode, 0)  # scripts that parse it are not broken

        self.sim.start()  # repaired, on the same port; the backoff is at most 1 s
        wait_for(lambda: self.doctor().returncode == 0, 20, what="doctor to pass after the repair")
        out = self.doctor()
        self.assertIsNone(self.line(out.stdout, "device air"), out.stdout)
        self.assertRegex(self.line(out.stdout, "bus cabinet"), r"^OK +bus cabinet +1 device OK")
        rc, checks = self.doctor_json()
        self.assertEqual(rc, 0)
        self.assertEqual(checks["bus cabinet"]["status"], "OK")
        self.assertEqual(self.ctl("status", "--check").returncode, 0)
        self.assertTrue(self.gw.process.running())

    def test_readings_birth_and_health_say_whether_the_clock_is_synchronised(self):
        # The kernel's own answer on this machine, whatever it is: readings must agree with it.
        self.sub.wait_for(lambda: len(self.sub.of("air")) >= 3, 20, "readings of air")
        s = json.loads(self.ctl("status", json_out=True).stdout)
        clock = s["health"]["clock"]
        self.assertIn(clock["state"], ("CLOCK_SYNCHRONISED", "CLOCK_UNSYNCHRONISED", "CLOCK_SYNC_UNKNOWN"))
        unsynchronised = clock["state"] != "CLOCK_SYNCHRONISED"
        self.assertTrue(clock["since"])
        for r in self.sub.of("air"):
            self.assertEqual(r.clock_unsynchronised, unsynchronised, r)
        birth = self.sub.wait_for(lambda: [b for b in self.sub.status if b.state == status_pb2.ONLINE], 10, "birth")
        self.assertEqual(birth[-1].clock_unsynchronised, unsynchronised)
        health = self.sub.wait_for(lambda: self.sub.health, 10, "health")
        self.assertEqual(health[-1].clock.state != status_pb2.CLOCK_SYNCHRONISED, unsynchronised)
        # the doctor's clock line: OK when synchronised, WARN (not FAIL) otherwise
        rc, checks = self.doctor_json()
        self.assertEqual(checks["clock"]["status"], "WARN" if unsynchronised else "OK")
        self.assertEqual(rc, 0)
        # the spool's disk and the broker's last acknowledgement are in the health report
        spool = s["health"]["spool"]
        self.assertGreater(int(spool["disk_total_bytes"]), 0)
        self.assertGreater(int(spool["disk_free_bytes"]), 0)
        self.sub.wait_for(lambda: any(h.mqtt.HasField("last_ack_at") for h in self.sub.health), 10, "last_ack_at")
        print(f"\nclock on this machine: {clock['state']}; doctor's line: {checks['clock']['detail']}")


if __name__ == "__main__":
    unittest.main()
