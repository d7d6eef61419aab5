"""Issue 16: the city's own traffic counter (firmware/nodes/traffic) on a pseudo-terminal RTU bus,
polled by the real citygated: the TrafficFlowObserved readings at the platform are what the
scenario implies (counts exact, averages within 0.1 %), and a node killed and restarted in the
middle of a period is reported BAD until it has counted a whole period again, never with
wrong numbers. pymodbus reads the node's registers as a second opinion.

The node binary is citygate-traffic-node in $CITYGATE_BUILD_DIR/bin (a full build), or
$CITYGATE_TRAFFIC_NODE (a firmware-only build: build/fw/bin/citygate-traffic-node).
"""
import os
import select
import struct
import termios
import time
import tty
import unittest
import zlib
from pathlib import Path

from harness import BIN, IntegrationTest, Process, gateway_config, reading_pb2, wait_for

NODE = Path(os.environ.get("CITYGATE_TRAFFIC_NODE", BIN / "citygate-traffic-node"))
PERIOD_MS = 2000
PERIODS = 8
LANES = (1, 2, 3, 4)
UNIT = 5
NOT_AVAILABLE_16 = 0xFFFF


def scenario():
    """Passages per (period k, lane): n = 2..6 vehicles, arrivals 100 ms after the period starts
    and evenly spaced (a multiple of 100 ms), speeds symmetric around a mean unique to (k, lane),
    one length per (k, lane): every average is exact in its register's resolution."""
    passages, expected = [], {}
    for k in range(1, PERIODS + 1):
        start = (k - 1) * PERIOD_MS
        for lane in LANES:
            n = 2 + (k + lane) % 5
            spacing = (1600 // n) // 100 * 100
            mean_deci = 10 * (40 + 5 * k + lane)
            length = 400 + 10 * lane + 5 * k
            occ_sum = 0
            for i in range(n):
                arrival = start + 100 + i * spacing
                occ = 100 + 10 * i
                speed = mean_deci + (2 * i - n + 1) * 10
                passages.append((arrival + occ, lane, speed, length, occ))
                occ_sum += occ
            expected[(k, lane)] = {
                "intensity": n,
                "occupancy": occ_sum / PERIOD_MS,               # fraction
                "average_vehicle_speed": mean_deci / 10,        # km/h
                "average_vehicle_length": length / 100,         # m
                "average_headway_time": spacing / 1000,         # s
                "registers": [0, n, round(occ_sum * 1000 / PERIOD_MS), mean_deci, length, spacing // 100],
            }
    passages.sort()
    lines = ["# AT_MS LANE SPEED_KMH LENGTH_CM OCCUPIED_MS"]
    lines += [f"{at} {lane} {speed // 10}.{speed % 10} {length} {occ}" for at, lane, speed, length, occ in passages]
    return "\n".join(lines) + "\n", expected


FIELDS = ("intensity", "occupancy", "average_vehicle_speed", "average_vehicle_length", "average_headway_time")


def values(reading):
    t = reading.traffic_flow_observed
    return {f: getattr(t, f) for f in FIELDS}


def matches(vals, want):
    """Counts exact, the averages within 0.1 % (and to the register's resolution)."""
    if vals["intensity"].value != want["intensity"]:
        return False
    for f in FIELDS[1:]:
        got, exact = vals[f].value, want[f]
        if abs(got - exact) > 0.001 * abs(exact) + 1e-9:
            return False
    return True


def slip(frame):
    out = bytearray([0xC0])
    for b in frame:
        out += {0xC0: b"\xdb\xdc", 0xDB: b"\xdb\xdd"}.get(b, bytes([b]))
    return bytes(out + b"\xc0")


def service_request(port, type_, seq, payload, timeout=5):
    """One request on the node's service UART (firmware/README.md "Service UART"): its reply's
    (type, seq, payload). Plain descriptors; the node may reset right after its reply, which
    keeps its ptys (PosixBoard::reset()), so the reply is there after the reset too."""
    body = struct.pack("<BBH", type_, seq, len(payload)) + payload
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        os.write(fd, slip(body + struct.pack("<I", zlib.crc32(body))))
        buf = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            try:
                chunk = os.read(fd, 512) if ready else b""
            except OSError:  # EIO: the node's pty is gone (it died)
                break
            if ready and not chunk:
                break
            buf += chunk
            frames = [f for f in bytes(buf).split(b"\xc0") if f]
            if frames and buf.endswith(b"\xc0"):
                raw = frames[0].replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
                t, q, n = struct.unpack_from("<BBH", raw)
                return t, q, raw[4:4 + n]
    finally:
        os.close(fd)
    raise AssertionError(f"no reply on the service UART: {bytes(buf).hex()}")


class TrafficNode:
    def __init__(self, env, name, link, scenario_path, extra=(), unit=UNIT):
        self.link = link
        flags = ["--unit-id", unit] if unit is not None else []
        self.process = Process(env, name, [NODE, "--rtu", link, "--scenario", scenario_path,
                                           "--period-s", PERIOD_MS // 1000, *flags, *extra])

    def start(self):
        self.process.start()
        wait_for(lambda: "ready:" in self.process.log() or not self.process.running(), 10, what="the node ready")
        if not self.process.running():
            raise AssertionError(f"the node exited:\n{self.process.log()}")
        return self

    def periods(self):
        return self.process.log().count("\nperiod ")


@unittest.skipUnless(NODE.exists(), f"{NODE} not built")
class TrafficCounterNode(IntegrationTest):
    def setUp(self):
        super().setUp()
        text, self.expected = scenario()
        self.scenario_path = self.env.path("scenario.txt")
        Path(self.scenario_path).write_text(text)

    def node(self, name="node"):
        n = TrafficNode(self.env, name, self.env.path(f"{name}.tty"), self.scenario_path)
        self.env._track(n.process)
        return n.start()

    def period_of(self, lane, vals):
        for (k, l), want in self.expected.items():
            if l == lane and matches(vals, want):
                return k
        return None

    def test_registers_read_by_pymodbus(self):
        from pymodbus.client import ModbusSerialClient
        node = self.node()
        wait_for(lambda: node.periods() >= 1, 10, what="the first complete period")
        client = ModbusSerialClient(port=node.link, baudrate=19200, timeout=1)
        self.assertTrue(client.connect())
        try:
            r = client.read_input_registers(0, count=36, slave=UNIT)
            self.assertFalse(r.isError(), r)
            done = node.periods()
            want = []
            for lane in LANES:
                want += self.expected[(done, lane)]["registers"] + ([0] * 4 if lane < 4 else [])
            if r.registers != want:  # the boundary passed between the log line and the read
                done = node.periods()
                want = []
                for lane in LANES:
                    want += self.expected[(done, lane)]["registers"] + ([0] * 4 if lane < 4 else [])
                r = client.read_input_registers(0, count=36, slave=UNIT)
            self.assertEqual(r.registers, want)
            r = client.read_input_registers(35, count=2, slave=UNIT)
            self.assertTrue(r.isError())
            self.assertEqual(r.exception_code, 2)
            r = client.read_holding_registers(0, count=1, slave=UNIT)
            self.assertTrue(r.isError())
            self.assertEqual(r.exception_code, 1)
            r = client.read_input_registers(0, count=126, slave=UNIT)
            self.assertTrue(r.isError())
            self.assertEqual(r.exception_code, 3)
            self.assertTrue(client.read_input_registers(0, count=1, slave=UNIT + 1).isError())  # no answer
        finally:
            client.close()
        node.process.stop()
        log = node.process.log()
        self.assertIn("illegal_address 1", log)
        self.assertIn("illegal_function 1", log)
        self.assertIn("illegal_value 1", log)
        self.assertIn("other_unit 1", log)

    def test_provisioned_over_the_service_uart(self):
        from citygate.v1 import node_pb2
        from pymodbus.client import ModbusSerialClient
        env = self.env
        state, service = env.path("node.flash"), env.path("node.service")
        node = TrafficNode(env, "node", env.path("node.tty"), self.scenario_path,
                           extra=["--state", state, "--service", service], unit=None)
        env._track(node.process)
        node.start()
        self.assertIn("unit 1 ", node.process.log())
        self.assertIn("not provisioned", node.process.log())
        record = node_pb2.NodeProvisioning(node_id="tc-ring-road", kind=node_pb2.NODE_TRAFFIC_COUNTER)
        record.traffic.unit_id = 9
        record.traffic.period_s = 60
        for lane in LANES:
            record.traffic.lane.add(lane_id=lane, direction="forward" if lane <= 2 else "backward")
        t, seq, payload = service_request(service, 0x02, 7, record.SerializeToString())
        self.assertEqual((t, seq), (0x82, 7), payload)
        # the node resets into its record (the flags did not name a unit: the record's holds)
        wait_for(lambda: "record 1 (tc-ring-road)" in node.process.log(), 10, what="the node reset into its record")
        self.assertIn("ready: unit 9 ", node.process.log())
        client = ModbusSerialClient(port=node.link, baudrate=19200, timeout=1)
        self.assertTrue(client.connect())
        try:
            r = client.read_input_registers(0, count=6, slave=9)
            self.assertFalse(r.isError(), r)
            # just reset: no complete period yet, every value not available
            self.assertEqual(r.registers, [0xFFFF] * 6)
        finally:
            client.close()

    def test_polled_by_citygated_and_killed_mid_period(self):
        env = self.env
        node = self.node()
        broker = env.broker()
        cfg = gateway_config("gw-tc", broker.uri, env,
                             f'modbus_bus {{ name: "rs485" rtu {{ device: "{node.link}" baud: 19200 }} '
                             'response_timeout_ms: 300 backoff_min_ms: 200 backoff_max_ms: 500 '
                             'failures_to_down: 1000 '
                             f'device {{ id: "tc" unit_id: {UNIT} profile: "citygate-traffic-counter-4lane" '
                             'poll_interval_ms: 400 } }')
        sub = env.subscriber(broker, "gw-tc")
        env.gateway(cfg)

        def good_periods(readings):
            seen = set()
            for r in readings:
                if r.quality == reading_pb2.GOOD:
                    seen.add((r.traffic_flow_observed.lane_id, self.period_of(r.traffic_flow_observed.lane_id,
                                                                             values(r))))
            return seen

        # Before the first complete period: BAD (every point "not available").
        sub.wait_for(lambda: any(r.quality == reading_pb2.BAD for r in sub.of("tc")), 20,
                     "a BAD reading before the first complete period")
        # Periods 1 and 2 at the platform, every lane.
        sub.wait_for(lambda: all((lane, 2) in good_periods(sub.of("tc")) for lane in LANES), 30,
                     "period 2 of every lane")
        # Kill the node in the middle of period 3 (it started when period 2's values came), and
        # start it again: it replays the scenario from its start.
        self.assertLess(node.periods(), 3)
        before = len(sub.of("tc"))
        node.process.proc.kill()
        node.process.proc.wait()
        again = TrafficNode(env, "node-again", node.link, self.scenario_path)
        env._track(again.process)
        again.start()
        sub.wait_for(lambda: any(r.quality == reading_pb2.BAD for r in sub.of("tc")[before:]), 30,
                     "BAD readings from the restarted node")
        sub.wait_for(lambda: all((lane, 2) in good_periods(sub.of("tc")[before:]) for lane in LANES), 30,
                     "period 2 of the restarted node")

        readings = sub.of("tc")
        after = readings[before:]
        self.assertGreater(len(after), 0)
        for r in readings:
            t = r.traffic_flow_observed
            self.assertIn(t.lane_id, LANES)
            self.assertEqual(t.lane_direction, reading_pb2.FORWARD if t.lane_id <= 2 else reading_pb2.BACKWARD)
            vals = values(r)
            if r.quality == reading_pb2.GOOD:
                # never a wrong number: a GOOD reading is exactly one whole period of the scenario
                self.assertIsNotNone(self.period_of(t.lane_id, vals), f"a GOOD reading of no period: {r}")
                for f in FIELDS:
                    self.assertEqual(vals[f].quality, reading_pb2.GOOD)
            else:
                # a node without a complete period: every field not available, BAD without its
                # all-ones value
                self.assertEqual(r.quality, reading_pb2.BAD, r)
                for f in FIELDS:
                    self.assertEqual(vals[f].quality, reading_pb2.BAD, f"{f}: {r}")
                self.assertNotEqual(vals["intensity"].value, 0xFFFFFFFF)
                self.assertNotAlmostEqual(vals["average_vehicle_speed"].value, NOT_AVAILABLE_16 * 0.1)
        # The restarted node's readings began BAD: its first complete period came later.
        first_good = next(i for i, r in enumerate(after) if r.quality == reading_pb2.GOOD)
        self.assertGreater(first_good, 0)
        self.assertTrue(all(r.quality == reading_pb2.BAD for r in after[:first_good]))
        # Every lane's values of period 1 and 2 reached the platform, before and after the restart.
        for lane in LANES:
            for k in (1, 2):
                self.assertIn((lane, k), good_periods(readings[:before]))
                self.assertIn((lane, k), good_periods(after))
        # The units of the measurements
        t = readings[-1].traffic_flow_observed
        self.assertEqual(t.intensity.unit_code, "H87")
        self.assertEqual(t.occupancy.unit_code, "C62")


if __name__ == "__main__":
    unittest.main()
