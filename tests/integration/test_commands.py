"""Issue 17: safe writes to Modbus devices. `citygatectl modbus write` and the platform's commands
on <prefix>/<gateway>/cmd, through the running daemon against a real pymodbus device: a writable
holding register is written and read back (the device holds the value, and the platform's next
reading shows it); a write the configuration or the profile does not allow, an expired or a
duplicated command is refused with its reason, and nothing reaches the device; every command and
result is an audit record with its own seq, also across a broker outage."""
import json
import os
import subprocess
import time
import unittest
from pathlib import Path

from harness import BIN, IntegrationTest, commands_pb2, gateway_config, wait_for
from citygate.v1 import node_pb2  # noqa: E402  (generated; harness puts it on the path)

CTL = BIN / "citygatectl"

PROFILE = """name: "test-controller"
kind: GENERIC
point { field: "period" table: HOLDING_REGISTER address: 10 type: UINT16 scale: 0.1 unit: "s" writable { min: 10 max: 3600 } }
point { field: "setpoint" table: HOLDING_REGISTER address: 20 type: FLOAT32 order: CDAB writable { min: -50 max: 50 } }
point { field: "serial" table: HOLDING_REGISTER address: 30 type: UINT32 }
point { field: "sign" table: COIL address: 4 type: BOOL writable { min: 0 max: 1 } }
point { field: "count" table: INPUT_REGISTER address: 0 type: UINT16 }
"""


class CommandsWorld(IntegrationTest):
    """A broker, a pymodbus device with two units, the platform's subscriber and citygated."""

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


class ModbusWrite(CommandsWorld):
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
        self.gw.wait_log("modbus write of period = 90.5 to unit 3 HOLDING_REGISTER 10 on bus 'b' (ctl-3")
        # Each write is an audit record, with who asked.
        audits = self.sub.wait_for(lambda: len(self.sub.audits) >= 3 and self.sub.audits, 20, "three audit records")
        self.assertEqual([a.seq for a in audits[:3]], [1, 2, 3])
        self.assertTrue(audits[0].origin.startswith("cli"), audits[0].origin)
        self.assertEqual(audits[0].command.write.point, "period")
        self.assertEqual(audits[0].result.status, commands_pb2.CommandResult.DONE)
        self.assertTrue(audits[0].result.write.holds)

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
        self.gw.wait_log("REFUSED (RATE_LIMITED)")

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

    def test_a_write_on_an_rtu_bus_is_written_and_read_back(self):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"3": {"hr": {"10": 600, "20": 0, "21": 0}}}, transport="rtu")
        prof = env.path("profiles")
        os.makedirs(prof)
        Path(prof, "test-controller.textproto").write_text(PROFILE)
        self.socket = env.path("control.sock")
        cfg = gateway_config("gw-cmd", broker.uri, env,
                             f'modbus_bus {{ name: "r" rtu {{ device: "{sim.device}" baud: 115200 }} '
                             'response_timeout_ms: 1000\n'
                             '  device { id: "ctl-3" unit_id: 3 profile: "test-controller" poll_interval_ms: 300 }\n}',
                             extra=f'profile_dir: "{prof}"\ncommands {{ enabled: true allow {{ device: "ctl-3" }} }}')
        sub = env.subscriber(broker, "gw-cmd")
        env.gateway(cfg)
        sub.wait_for(lambda: sub.of("ctl-3"), 20, "a first reading over RTU")
        out = self.ctl("modbus", "write", "r", 3, "holding", 10, 42.5, "--yes", check=0)
        self.assertIn("the device holds the value", out.stdout)
        # Two registers (function 16) and a coil (05), between the polls.
        self.ctl("modbus", "write", "r", 3, "holding", 20, 7.75, "--yes", check=0)
        self.ctl("modbus", "write", "r", 3, "coil", 4, 1, "--yes", check=0)
        def writes():
            by_fc = sim.stats().get("3", {}).get("by_fc", {})
            return by_fc.get("6", 0), by_fc.get("16", 0), by_fc.get("5", 0)
        # The simulator writes its counts to a file now and then: wait for them.
        wait_for(lambda: writes() == (1, 1, 1), 10, what=f"one write of each function (got {writes()})")
        sub.wait_for(lambda: any(r.generic.values["period"].value == 42.5 for r in sub.of("ctl-3")), 20,
                     "a reading with the written period")

class PlatformCommands(CommandsWorld):
    """The platform's side: Command on .../cmd, CommandResult on .../cmd/result, AuditRecord on .../audit."""

    CONFIG = ('commands { enabled: true platform: true allow { device: "ctl-3" point: "period" point: "sign" } '
              'rate_limit { writes: 20 per_s: 60 } }')

    def command(self, request_id, point="period", value=60.0, device="ctl-3", expires_in=60.0, table=None,
                address=None):
        c = commands_pb2.Command(request_id=request_id, device=device, origin="integration")
        c.expires_at.FromNanoseconds(int((time.time() + expires_in) * 1e9))
        if table is None:
            c.write.point = point
        else:
            c.write.table = table
            c.write.address = address
        c.write.value = value
        return c

    def final(self, request_id, timeout=20):
        """The last answer to a request once it is final (not ACCEPTED)."""
        done = (commands_pb2.CommandResult.DONE, commands_pb2.CommandResult.FAILED,
                commands_pb2.CommandResult.REFUSED, commands_pb2.CommandResult.EXPIRED)
        return self.sub.wait_for(
            lambda: next((r for r in self.sub.results_for(request_id) if r.status in done), None), timeout,
            f"the result of {request_id}")

    def test_a_platform_write_is_done_and_read_back(self):
        self.start(self.CONFIG)
        self.gw.wait_log("subscribed to citygate/v1/gw-cmd/cmd")
        self.sub.command(self.command("w-1", value=90.5))
        r = self.final("w-1")
        self.assertEqual(r.status, commands_pb2.CommandResult.DONE, r)
        self.assertTrue(r.write.written)
        self.assertTrue(r.write.holds)
        self.assertEqual(r.write.read_back, 90.5)
        self.assertEqual(r.gateway_id, "gw-cmd")
        accepted = [x for x in self.sub.results_for("w-1") if x.status == commands_pb2.CommandResult.ACCEPTED]
        self.assertEqual(len(accepted), 1)
        self.assertEqual(self.read(3, "holding", 10, 1), [905])
        # By table and address: the coil.
        self.sub.command(self.command("w-2", value=1, table=node_pb2.COIL, address=4))
        self.assertEqual(self.final("w-2").status, commands_pb2.CommandResult.DONE)
        self.assertEqual(self.read(3, "coil", 4, 1), [1])

    def test_platform_refusals_have_their_reason_and_touch_nothing(self):
        self.start(self.CONFIG)
        self.gw.wait_log("subscribed to citygate/v1/gw-cmd/cmd")
        writes_before = self.writes(3) + self.writes(4)
        cases = [
            (self.command("r-ro", point="serial", value=5), commands_pb2.POINT_NOT_WRITABLE),
            (self.command("r-low", value=9), commands_pb2.OUT_OF_RANGE),
            (self.command("r-ctl4", device="ctl-4"), commands_pb2.DEVICE_NOT_ALLOWED),
            (self.command("r-setpoint", point="setpoint", value=1), commands_pb2.DEVICE_NOT_ALLOWED),
            (self.command("r-nopoint", point="nothing"), commands_pb2.UNKNOWN_POINT),
            (self.command("r-nodev", device="ctl-9"), commands_pb2.UNKNOWN_DEVICE),
            (self.command("r-late", expires_in=-5), commands_pb2.EXPIRED),
            (self.command("r-far", expires_in=7200), commands_pb2.BAD_COMMAND),
        ]
        for c, _ in cases:
            self.sub.command(c)
        for c, reason in cases:
            r = self.final(c.request_id)
            self.assertEqual(r.refusal, reason, f"{c.request_id}: {r}")
            self.assertTrue(r.detail, r)
        self.assertEqual(self.final("r-late").status, commands_pb2.CommandResult.EXPIRED)
        self.assertEqual(self.writes(3) + self.writes(4), writes_before)
        # A duplicate request id: carried out once, the second refused.
        self.sub.command(self.command("d-1", value=61))
        self.assertEqual(self.final("d-1").status, commands_pb2.CommandResult.DONE)
        n = len(self.sub.results_for("d-1"))
        self.sub.command(self.command("d-1", value=62))
        self.sub.wait_for(lambda: len(self.sub.results_for("d-1")) > n, 20, "the duplicate's answer")
        dup = self.sub.results_for("d-1")[-1]
        self.assertEqual(dup.status, commands_pb2.CommandResult.REFUSED)
        self.assertEqual(dup.refusal, commands_pb2.DUPLICATE_REQUEST)
        self.assertEqual(self.read(3, "holding", 10, 1), [610])
        # Not a Command at all: counted, and the gateway goes on.
        self.sub.client.publish(self.sub.root + "/cmd", b"\xff\xff not protobuf", qos=1).wait_for_publish(10)
        self.sub.wait_for(lambda: any(h.commands.malformed >= 1 for h in self.sub.health), 30,
                          "the malformed command counted in the health report")
        # Every answer is audited, numbered without a gap.
        n_results = len(self.sub.results)
        audits = self.sub.wait_for(lambda: len(self.sub.audits) >= n_results and self.sub.audits, 20,
                                   "an audit record for every answer")
        self.assertEqual([a.seq for a in audits], list(range(1, len(audits) + 1)))

    def test_audit_records_survive_a_broker_outage(self):
        self.start(self.CONFIG)
        self.gw.wait_log("subscribed to citygate/v1/gw-cmd/cmd")
        self.sub.command(self.command("o-1", value=70))
        self.final("o-1")
        before = self.sub.wait_for(lambda: len(self.sub.audits) >= 2 and list(self.sub.audits), 20,
                                   "the audit of o-1 (ACCEPTED, DONE)")
        last = before[-1].seq
        self.broker.stop()
        # At the cabinet while the broker is away: written, and audited into the spool.
        self.ctl("modbus", "write", "b", 3, "holding", 10, 80, "--yes", check=0)
        self.broker.start()
        after = self.sub.wait_for(lambda: [a for a in self.sub.audits if a.seq > last], 60,
                                  "the cabinet write's audit record after the outage")
        self.assertEqual(after[0].seq, last + 1)
        self.assertTrue(after[0].origin.startswith("cli"))
        self.assertEqual(after[0].result.status, commands_pb2.CommandResult.DONE)
        self.assertEqual(after[0].command.write.value, 80)


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_acl():
    """The mosquitto ACL the README gives platform operators, verbatim."""
    text = README.read_text()
    start = text.index("# /etc/mosquitto/acl")
    return text[start:text.index("```", start)]


class BrokerAcl(IntegrationTest):
    """The README's mosquitto ACL: only the platform's account may publish commands; each gateway
    reads only its own .../cmd and publishes only its own topics."""

    def test_only_the_platform_may_command_and_the_gateway_still_works(self):
        env = self.env
        pw = env.path("mosquitto.passwd")
        users = {"platform": "platform-secret", "gw-cmd": "gateway-secret", "gw-other": "other-secret"}
        for i, (user, password) in enumerate(users.items()):
            subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [pw, user, password],
                           check=True, capture_output=True)
        acl = env.path("mosquitto.acl")
        Path(acl).write_text(readme_acl())
        broker = env.broker(conf=["allow_anonymous false", f"password_file {pw}", f"acl_file {acl}"])
        sim = env.modbus({"3": {"hr": {"10": 600}}})
        prof = env.path("profiles")
        os.makedirs(prof)
        Path(prof, "test-controller.textproto").write_text(PROFILE)
        secret = env.path("mqtt.password")
        Path(secret).write_text(users["gw-cmd"] + "\n")
        os.chmod(secret, 0o600)
        cfg = gateway_config("gw-cmd", broker.uri, env,
                             f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {sim.port} }} '
                             '  device { id: "ctl-3" unit_id: 3 profile: "test-controller" poll_interval_ms: 300 }\n}',
                             mqtt_extra=f'username: "gw-cmd" password_file: "{secret}"',
                             extra=f'profile_dir: "{prof}"\ncommands {{ enabled: true platform: true '
                                   'allow { device: "ctl-3" point: "period" } }')
        platform = env.subscriber(broker, "gw-cmd", username="platform", password=users["platform"])
        gw = env.gateway(cfg)
        gw.wait_log("subscribed to citygate/v1/gw-cmd/cmd")
        platform.wait_for(lambda: platform.of("ctl-3"), 20, "readings under the ACL")

        def command(request_id, value):
            c = commands_pb2.Command(request_id=request_id, device="ctl-3")
            c.expires_at.FromNanoseconds(int((time.time() + 60) * 1e9))
            c.write.point = "period"
            c.write.value = value
            return c

        # Another gateway's account publishes a command to this gateway: the broker drops it.
        intruder = env.subscriber(broker, "gw-other", username="gw-other", password=users["gw-other"])
        intruder.client.publish("citygate/v1/gw-cmd/cmd", command("intruder-1", 99).SerializeToString(),
                                qos=1).wait_for_publish(10)
        # The platform's command, sent after it, is carried out.
        platform.command(command("platform-1", 70))
        done = platform.wait_for(lambda: [r for r in platform.results_for("platform-1")
                                          if r.status == commands_pb2.CommandResult.DONE], 20, "the platform's write")
        self.assertTrue(done[0].write.holds)
        self.assertEqual(platform.results_for("intruder-1"), [])
        self.assertNotIn("intruder-1", gw.log())
        wait_for(lambda: sim.stats().get("3", {}).get("by_fc", {}).get("6", 0) == 1, 10,
                 what="one write at the device (its counts are written to a file now and then)")
        # Nor may the other gateway read this gateway's topics.
        self.assertEqual(intruder.readings, [])
        audits = platform.wait_for(lambda: len(platform.audits) >= 2 and platform.audits, 20, "the audit records")
        self.assertEqual({a.result.request_id for a in audits}, {"platform-1"})


if __name__ == "__main__":
    unittest.main()
