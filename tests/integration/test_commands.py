"""Issue 17: safe writes to Modbus devices. `citygatectl modbus write` through the running daemon
against a real pymodbus device: a writable holding register is written and read back (the device
holds the value, and the platform's next reading shows it); a write the configuration or the
profile does not allow is refused with its reason, and nothing reaches the device."""
import json
import os
import subprocess
import unittest
from pathlib import Path

from harness import BIN, IntegrationTest, gateway_config

CTL = BIN / "citygatectl"

PROFILE = """name: "test-controller"
kind: GENERIC
point { field: "period" table: HOLDING_REGISTER address: 10 type: UINT16 scale: 0.1 unit: "s" writable { min: 10 max: 3600 } }
point { field: "setpoint" table: HOLDING_REGISTER address: 20 type: FLOAT32 order: CDAB writable { min: -50 max: 50 } }
point { field: "serial" table: HOLDING_REGISTER address: 30 type: UINT32 }
point { field: "sign" table: COIL address: 4 type: BOOL writable { min: 0 max: 1 } }
point { field: "count" table: INPUT_REGISTER address: 0 type: UINT16 }
"""


class ModbusWrite(IntegrationTest):
    def start(self, commands):
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"3": {"hr": {"10": 600, "30": 0, "31": 42}, "ir": {"0": 7}},
                               "4": {"hr": {"10": 600}}})
        prof = env.path("profiles")
        os.makedirs(prof)
        Path(prof, "test-controller.textproto").write_text(PROFILE)
        self.socket = env.path("control.sock")
        cfg = gateway_config("gw-cmd", self.broker.uri, env,
                             f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {self.sim.port} }} '
                             'response_timeout_ms: 1000\n'
                             '  device { id: "ctl-3" unit_id: 3 profile: "test-controller" poll_interval_ms: 300 }\n'
                             '  device { id: "ctl-4" unit_id: 4 profile: "test-controller" poll_interval_ms: 300 }\n}',
                             extra=f'profile_dir: "{prof}"\n{commands}')
        self.sub = env.subscriber(self.broker, "gw-cmd")
        self.gw = env.gateway(cfg)
        self.sub.wait_for(lambda: self.sub.of("ctl-3"), 20, "a first reading")

    def ctl(self, *args, check=None, json_out=False):
        argv = [str(CTL), "--socket", self.socket] + (["--json"] if json_out else []) + list(map(str, args))
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if check is not None:
            self.assertEqual(out.returncode, check, f"{argv}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
        return out

    def read(self, unit, table, address, count):
        out = self.ctl("modbus", "read", "b", unit, table, address, count, json_out=True, check=0)
        return [int(r) for r in json.loads(out.stdout).get("registers", [])]

    def writes(self, unit):
        """Write requests the device received (functions 05, 06, 15, 16)."""
        per_fc = self.sim.stats().get(str(unit), {}).get("by_fc", {})
        return sum(int(per_fc.get(fc, 0)) for fc in ("5", "6", "15", "16"))

    def test_a_writable_holding_register_is_written_and_read_back(self):
        self.start('commands { enabled: true allow { device: "ctl-3" } }')
        out = self.ctl("modbus", "write", "b", 3, "holding", 10, 90.5, "--yes", check=0)
        self.assertIn("read back: 90.5 (0x0389)", out.stdout)
        self.assertIn("the device holds the value", out.stdout)
        self.assertEqual(self.read(3, "holding", 10, 1), [905])
        # FLOAT32 CDAB, through --json: the outcome as the daemon sent it.
        out = self.ctl("modbus", "write", "b", 3, "holding", 20, -12.25, "--type", "float32", "--order", "cdab",
                       "--yes", json_out=True, check=0)
        o = json.loads(out.stdout)
        self.assertTrue(o["written"])
        self.assertTrue(o["holds"])
        self.assertEqual(o["read_back"], -12.25)
        self.assertEqual(o["device_id"], "ctl-3")
        self.assertEqual(o["point"], "setpoint")
        self.assertEqual(self.read(3, "holding", 20, 2), [0x0000, 0xC144])
        # A coil.
        self.ctl("modbus", "write", "b", 3, "coil", 4, 1, "--yes", check=0)
        self.assertEqual(self.read(3, "coil", 4, 1), [1])
        # The platform's next reading carries the new value.
        self.sub.wait_for(lambda: any(r.generic.values["period"].value == 90.5 for r in self.sub.of("ctl-3")), 20,
                          "a reading with the written period")
        self.gw.wait_log("modbus write of 90.5 to unit 3 HOLDING_REGISTER 10 on bus 'b' by cli:")

    def test_refusals_have_their_reason_and_touch_nothing(self):
        self.start('commands { enabled: true allow { device: "ctl-3" point: "period" point: "setpoint" } '
                   'rate_limit { writes: 3 per_s: 3600 } }')
        cases = [
            (("b", 3, "holding", 30, 5), "POINT_NOT_WRITABLE"),          # serial: read-only point
            (("b", 3, "holding", 10, 9), "OUT_OF_RANGE"),                # below 10
            (("b", 3, "holding", 10, 3601), "OUT_OF_RANGE"),             # above 3600
            (("b", 4, "holding", 10, 60), "DEVICE_NOT_ALLOWED"),         # ctl-4 is not allowed
            (("b", 3, "coil", 4, 1), "DEVICE_NOT_ALLOWED"),              # sign is not in allow.point
            (("b", 3, "holding", 11, 1), "UNKNOWN_POINT"),               # no point there
            (("b", 9, "holding", 10, 60), "UNKNOWN_DEVICE"),             # no such unit
            (("nope", 3, "holding", 10, 60), "UNKNOWN_DEVICE"),          # no such bus
            (("b", 3, "holding", 10, 60, "--type", "int16"), "TYPE_MISMATCH"),
        ]
        for args, reason in cases:
            out = self.ctl("modbus", "write", *args, "--yes", check=1)
            self.assertIn(f"refused ({reason})", out.stderr, args)
        self.assertEqual(self.writes(3) + self.writes(4), 0)
        # The rate limit: three writes, then RATE_LIMITED.
        for v in (60, 61, 62):
            self.ctl("modbus", "write", "b", 3, "holding", 10, v, "--yes", check=0)
        out = self.ctl("modbus", "write", "b", 3, "holding", 10, 63, "--yes", check=1)
        self.assertIn("refused (RATE_LIMITED)", out.stderr)
        self.assertEqual(self.read(3, "holding", 10, 1), [620])
        self.gw.wait_log("refused (rate limited)")

    def test_without_commands_every_write_is_refused(self):
        self.start("")
        out = self.ctl("modbus", "write", "b", 3, "holding", 10, 60, "--yes", check=1)
        self.assertIn("refused (COMMANDS_DISABLED)", out.stderr)
        # Without --yes and without a terminal: refused before anything is written.
        out = self.ctl("modbus", "write", "b", 3, "holding", 10, 60, check=1)
        self.assertIn("COMMANDS_DISABLED", out.stderr)
        self.assertEqual(self.writes(3), 0)
        self.assertEqual(self.read(3, "holding", 10, 1), [600])

    def test_without_yes_and_without_a_terminal_nothing_is_written(self):
        self.start('commands { enabled: true allow { device: "ctl-3" } }')
        out = self.ctl("modbus", "write", "b", 3, "holding", 10, 60, check=2)
        self.assertIn("pass --yes", out.stderr)
        self.assertEqual(self.writes(3), 0)

    def test_writes_on_an_rtu_bus_are_refused_as_unsupported(self):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"3": {"hr": {"10": 600}}}, transport="rtu")
        prof = env.path("profiles")
        os.makedirs(prof)
        Path(prof, "test-controller.textproto").write_text(PROFILE)
        self.socket = env.path("control.sock")
        cfg = gateway_config("gw-cmd", broker.uri, env,
                             f'modbus_bus {{ name: "r" rtu {{ device: "{sim.device}" baud: 115200 }} '
                             'response_timeout_ms: 1000\n'
                             '  device { id: "ctl-3" unit_id: 3 profile: "test-controller" poll_interval_ms: 300 }\n}',
                             extra=f'profile_dir: "{prof}"\ncommands {{ enabled: true allow {{ device: "ctl-3" }} }}')
        gw = env.gateway(cfg)
        gw.wait_log("control socket")
        out = self.ctl("modbus", "write", "r", 3, "holding", 10, 60, "--yes", check=1)
        self.assertIn("refused (UNSUPPORTED)", out.stderr)
        self.assertEqual(sim.stats().get("3", {}).get("by_fc", {}).get("6", 0), 0)


if __name__ == "__main__":
    unittest.main()
