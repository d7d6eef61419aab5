"""Issue 12, items 1 and 2: Modbus devices that misbehave, against the real daemon, over Modbus TCP,
RTU over TCP and RTU on a socat pseudo-terminal. The device is tests/peers/bad_modbus.py: it
handles requests one at a time (later requests queue behind a late answer), reads 1000 * unit +
address everywhere, and puts POISON (60000 + address) in every frame a fault sends in place of an
answer. Each device has three blocks of the same size (so a shifted answer fits the next block).

What the platform receives is checked: no value from another request is ever published (every
value is 1000 * unit + address of its own point), and the faulty device is read completely and
GOOD again within two poll intervals after the device behaves again.
"""
import json
import os
import subprocess
import time
import unittest
from pathlib import Path

from harness import (BIN, PEERS, PYTHON, IntegrationTest, Process, free_port, gateway_config, reading_pb2,
                     wait_for)

INTERVAL_S = 1.0
TIMEOUT_MS = 300
ADDRESSES = [a for block in (0, 10, 20) for a in range(block, block + 4)]
PROFILE = "name: \"blocks\"\nkind: GENERIC\nmax_gap_registers: 2\n" + "\n".join(
    f'point {{ field: "r{a}" table: HOLDING_REGISTER address: {a} type: UINT16 }}' for a in ADDRESSES) + "\n"
DEVICES = {"d1": 1, "d2": 2}


class BadModbus:
    """tests/peers/bad_modbus.py as a process; faults are armed through its control file."""

    def __init__(self, env, transport, units=(1, 2)):
        self.env = env
        self.name = f"bad-modbus-{transport}"
        self.ready_path = env.path(f"{self.name}.ready")
        self.control_path = env.path(f"{self.name}.faults.json")
        self.events_path = env.path(f"{self.name}.events.jsonl")
        spec = {"units": list(units), "service_ms": 5, "ready": self.ready_path, "control": self.control_path,
                "events": self.events_path}
        if transport == "rtu":
            self.device, server_side = env.pty_pair(self.name)
            spec["serial"] = {"port": server_side}
        else:
            self.port = free_port()
            spec[transport] = {"host": "127.0.0.1", "port": self.port}
        self.spec_path = env.path(f"{self.name}.json")
        Path(self.spec_path).write_text(json.dumps(spec))
        self.process = Process(env, self.name, [PYTHON, PEERS / "bad_modbus.py", self.spec_path])
        env.processes.append(self.process)

    def start(self):
        self.process.start()
        wait_for(lambda: os.path.exists(self.ready_path) or not self.process.running(), 20,
                 what=f"{self.name} to be ready")
        if not self.process.running():
            raise RuntimeError(f"{self.name} did not start:\n" + self.process.log())
        return self

    def arm(self, *faults):
        tmp = self.control_path + ".tmp"
        Path(tmp).write_text(json.dumps({"faults": list(faults)}))
        os.replace(tmp, self.control_path)

    def events(self):
        try:
            lines = Path(self.events_path).read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line being written
        return out

    def behaving_since(self):
        """When the last armed fault had been sent, or None."""
        times = [e["t"] for e in self.events() if e["event"] == "behaving"]
        return times[-1] if times else None

    def faults_sent(self):
        return [e for e in self.events() if e["event"] == "fault"]


def observed(r):
    return r.observed_at.seconds + r.observed_at.nanos / 1e9


def complete_and_good(r):
    values = r.generic.values
    return r.quality == reading_pb2.GOOD and all(
        f"r{a}" in values and values[f"r{a}"].quality == reading_pb2.GOOD for a in ADDRESSES)


class ModbusFaults(IntegrationTest):
    def world(self, transport):
        env = self.env
        self.broker = env.broker()
        self.dev = BadModbus(env, transport).start()
        prof = env.path("profiles")
        os.makedirs(prof)
        Path(prof, "blocks.textproto").write_text(PROFILE)
        if transport == "rtu":
            link = f'rtu {{ device: "{self.dev.device}" baud: 115200 }}'
        elif transport == "rtu_over_tcp":
            link = f'rtu_over_tcp {{ host: "127.0.0.1" port: {self.dev.port} }}'
        else:
            link = f'tcp {{ host: "127.0.0.1" port: {self.dev.port} }}'
        devices = "\n".join(f'device {{ id: "{d}" unit_id: {u} profile: "blocks" poll_interval_ms: '
                            f'{int(INTERVAL_S * 1000)} }}' for d, u in DEVICES.items())
        cfg = gateway_config("gw-bad", self.broker.uri, env,
                             f'modbus_bus {{ name: "b" {link} response_timeout_ms: {TIMEOUT_MS}\n{devices} }}',
                             extra=f'profile_dir: "{prof}"')
        self.sub = env.subscriber(self.broker, "gw-bad")
        self.gw = env.gateway(cfg)
        sub = self.sub
        sub.wait_for(lambda: all(len([r for r in sub.of(d) if complete_and_good(r)]) >= 2 for d in DEVICES), 30,
                     "two complete GOOD readings of each device")

    def assert_no_foreign_value(self):
        """Every value published is its own point's: 1000 * unit + address."""
        for d, unit in DEVICES.items():
            for r in self.sub.of(d):
                for name, m in r.generic.values.items():
                    if m.quality == reading_pb2.BAD:
                        continue
                    want = 1000 * unit + int(name[1:])
                    self.assertEqual(m.value, want,
                                     f"{d} published {name} = {m.value:.0f} (seq {r.seq}), which is not its own value "
                                     f"{want}: it came from another request"
                                     + (" (a late or bogus answer's POISON)" if m.value >= 60000 else ""))

    def check_fault(self, transport, discarded_on="d1", **fault):
        self.world(transport)
        sub = self.sub
        fault = {"unit": 1, "address": 10, "times": 2, **fault}
        self.dev.arm(fault)
        behaving = wait_for(self.dev.behaving_since, 20, what="the fault to be played")
        # Back: a complete, GOOD reading of the faulty device within two poll intervals.
        back = sub.wait_for(
            lambda: next((observed(r) for r in sub.of("d1") if observed(r) > behaving and complete_and_good(r)), None),
            10 + 2 * INTERVAL_S, "a complete GOOD reading of d1 after the fault")
        took = back - behaving
        print(f"\n{transport} {fault['kind']}: {len(self.dev.faults_sent())} fault(s) played; d1 read completely "
              f"and GOOD again {took:.2f} s after the device behaved (limit {2 * INTERVAL_S:.1f} s)")
        # Two more polls, then everything the platform got is checked.
        n = len(sub.of("d1"))
        sub.wait_for(lambda: len(sub.of("d1")) >= n + 2, 10, "two more readings of d1")
        self.assert_no_foreign_value()
        self.assertLessEqual(took, 2 * INTERVAL_S, "d1 did not recover within two poll intervals")
        self.assertTrue(complete_and_good(sub.of("d1")[-1]))
        self.assertTrue(all(complete_and_good(r) for r in sub.of("d2")[-3:]), "d2 was disturbed for good")
        # Counted where the technician looks: the health of the device the frames came from (on RTU
        # the unit id a frame carries; over TCP the device whose transaction id it answered).
        h = sub.wait_for(lambda: next((d for hh in reversed(sub.health) for d in hh.devices
                                       if d.sensor_id == discarded_on and d.answers_discarded > 0), None),
                         5, f"discarded answers in {discarded_on}'s health")
        return h

    # ---- Modbus TCP ----
    def test_tcp_late_answer(self):
        self.check_fault("tcp", kind="late", delay_ms=800)

    def test_tcp_wrong_transaction_id(self):
        h = self.check_fault("tcp", kind="wrong_tid", follow_ms=100)
        # ... and in `citygatectl device`
        out = subprocess.run([BIN / "citygatectl", "--socket", self.env.path("control.sock"), "device", "d1"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("discarded", out.stdout)
        self.assertGreaterEqual(h.answers_discarded, 2)

    def test_tcp_wrong_unit(self):
        self.check_fault("tcp", kind="wrong_unit", follow_ms=100)

    def test_tcp_wrong_function(self):
        self.check_fault("tcp", kind="wrong_function", follow_ms=100)

    def test_tcp_lying_byte_count(self):
        self.check_fault("tcp", kind="lying_count", follow_ms=100)

    # ---- RTU over TCP ----
    def test_rtu_over_tcp_late_answer(self):
        self.check_fault("rtu_over_tcp", kind="late", delay_ms=800)

    def test_rtu_over_tcp_wrong_unit(self):
        # The bogus frame says unit 2: on RTU nothing else tells whose it was.
        self.check_fault("rtu_over_tcp", kind="wrong_unit", follow_ms=100, discarded_on="d2")

    def test_rtu_over_tcp_wrong_function(self):
        self.check_fault("rtu_over_tcp", kind="wrong_function", follow_ms=100)

    def test_rtu_over_tcp_lying_byte_count(self):
        self.check_fault("rtu_over_tcp", kind="lying_count", follow_ms=100)

    # ---- RTU on a pseudo-terminal ----
    def test_rtu_late_answer(self):
        self.check_fault("rtu", kind="late", delay_ms=800)

    def test_rtu_wrong_unit(self):
        self.check_fault("rtu", kind="wrong_unit", follow_ms=100, discarded_on="d2")

    def test_rtu_wrong_function(self):
        self.check_fault("rtu", kind="wrong_function", follow_ms=100)

    def test_rtu_lying_byte_count(self):
        self.check_fault("rtu", kind="lying_count", follow_ms=100)


if __name__ == "__main__":
    unittest.main()
