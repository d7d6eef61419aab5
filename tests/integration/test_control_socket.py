"""Issue 12: hostile control-socket clients cannot lock the technician out, hold memory without
bound, flood the log, or hold a Modbus bus after they left.

The real citygated (a Modbus TCP bus on a real pymodbus server, a real mosquitto), raw clients on
its control socket, and the real citygatectl for the technician. Every wait has a deadline.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

from harness import BIN, BUILD, IntegrationTest, gateway_config, wait_for

sys.path.insert(0, str(BUILD / "python"))
from citygate.v1 import control_pb2  # noqa: E402  (generated)

CTL = BIN / "citygatectl"


def frame(msg):
    body = msg.SerializeToString()
    return struct.pack(">I", len(body)) + body


def read_frame(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 4:
            chunk = sock.recv(4 - len(data))
            if not chunk:
                return None
            data += chunk
        (n,) = struct.unpack(">I", data)
        body = b""
        while len(body) < n:
            chunk = sock.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
    except (ConnectionResetError, socket.timeout):
        return None
    r = control_pb2.ControlResponse()
    r.ParseFromString(body)
    return r


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class ControlSocket(IntegrationTest):
    def setUp(self):
        super().setUp()
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"1": {"hr": {"0": 20}}, "9": {"dead": True}}, name="sim")
        self.socket = env.path("control.sock")
        buses = (f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {self.sim.port} }} '
                 'response_timeout_ms: 300\n'
                 '  device { id: "air" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 1000 } }\n')
        self.gw = env.gateway(gateway_config("gw-ctl", self.broker.uri, env, buses), log_level="info")
        self.gw.wait_log("control socket")
        self.held = []

    def tearDown(self):
        for s in self.held:
            s.close()
        super().tearDown()

    def ctl(self, *args, timeout=30):
        return subprocess.run([str(CTL), "--socket", self.socket, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout)

    def counters(self):
        out = self.ctl("--json", "status")
        self.assertEqual(out.returncode, 0, out.stderr)
        import json
        return {k: int(v) for k, v in json.loads(out.stdout)["health"]["counters"].items()}

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.socket)
        self.held.append(s)
        return s

    def test_idle_connections_and_a_slowloris_do_not_lock_the_technician_out(self):
        for _ in range(100):
            self.connect()  # connect and say nothing
        stop = threading.Event()
        began = threading.Event()
        slow_closed = threading.Event()
        status = control_pb2.ControlRequest(id=1)
        status.status.SetInParent()
        trickle = frame(status)

        def slowloris():
            s = self.connect()
            for i in range(60):  # one byte a second, never the whole frame
                if stop.wait(1.0 if i else 0):
                    return
                try:
                    s.send(trickle[i % (len(trickle) - 1):][:1])
                    began.set()
                except OSError:
                    slow_closed.set()
                    return

        t = threading.Thread(target=slowloris)
        t.start()
        try:
            self.assertTrue(began.wait(10))
            for attempt in range(3):
                start = time.monotonic()
                out = self.ctl("status", timeout=30)
                took = time.monotonic() - start
                print(f"\ncitygatectl status with 100 idle connections and a slowloris: exit {out.returncode} "
                      f"in {took:.2f} s", file=sys.stderr)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertLess(took, 5)
            c = self.counters()
            self.assertGreater(c["control_clients_evicted"], 60)
            self.assertEqual(c.get("control_clients_rejected", 0), 0)
            # The slow sender is dropped at the frame deadline (10 s) at the latest.
            self.assertTrue(slow_closed.wait(20), "the slowloris connection is still open after 20 s")
        finally:
            stop.set()
            t.join()
        self.assertTrue(self.gw.process.running())

    def test_memory_held_by_a_hundred_half_sent_1_mib_frames_is_bounded(self):
        pid = self.gw.process.proc.pid
        self.assertEqual(self.ctl("status").returncode, 0)
        before = vm_rss_kib(pid)
        outcome = []
        lock = threading.Lock()
        half = struct.pack(">I", 1 << 20) + b"\x0a" * (512 << 10)  # 1 MiB announced, 512 KiB sent

        def client():
            s = self.connect()
            s.settimeout(30)
            try:
                s.sendall(half)
                result = "sent"
            except (BrokenPipeError, ConnectionResetError):
                result = "dropped"
            except socket.timeout:
                result = "stuck"
            with lock:
                outcome.append(result)

        threads = [threading.Thread(target=client) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(outcome), 100)
        self.assertEqual(outcome.count("stuck"), 0)
        # The technician still gets through; the figure is taken once the daemon has read it all
        # (the bytes held stop changing).
        seen = []

        def settled():
            seen.append(self.counters())
            return len(seen) > 1 and seen[-1]["control_partial_bytes"] == seen[-2]["control_partial_bytes"]

        wait_for(settled, 20, interval=0.3, what="the daemon to read every client's bytes")
        after = vm_rss_kib(pid)
        c = seen[-1]
        print(f"\n100 clients x 512 KiB of a 1 MiB frame: daemon VmRSS {before / 1024:.1f} MiB before, "
              f"{after / 1024:.1f} MiB after (+{(after - before) / 1024:.1f} MiB); held by unfinished frames "
              f"{c['control_partial_bytes'] / 1048576:.2f} MiB; {outcome.count('sent')} sent, "
              f"{outcome.count('dropped')} dropped (over budget {c['control_over_budget']}, "
              f"evicted {c['control_clients_evicted']})", file=sys.stderr)
        self.assertLessEqual(c["control_partial_bytes"], 4 << 20)
        self.assertLess(after - before, 12 << 10)
        self.assertTrue(self.gw.process.running())

    def test_requests_that_are_not_utf8_are_answered_and_counted_but_logged_once(self):
        bad = control_pb2.ControlRequest(id=1)
        bad.modbus_read.bus = "b"
        bad.modbus_read.unit_id = 1
        bad.modbus_read.count = 1
        data = bytearray(frame(bad))
        data[data.rindex(b"b")] = 0xE9  # Latin-1: not UTF-8
        # A frame that does not parse either (the string runs past its message), which protobuf's
        # parser still reports in a line of its own (found by the control_framing fuzz target).
        broken = bytes.fromhex("0801820107 0a10e910012801".replace(" ", ""))
        s = self.connect()
        n = 5000
        burst = (bytes(data) + struct.pack(">I", len(broken)) + broken) * (n // 2)
        sender = threading.Thread(target=lambda: s.sendall(burst))
        sender.start()
        answered = 0
        for _ in range(n):
            r = read_frame(s)
            self.assertIsNotNone(r)
            self.assertEqual(r.error.code, control_pb2.ControlError.BAD_REQUEST)
            answered += 1
        sender.join()
        self.assertEqual(answered, n)
        self.assertEqual(self.counters()["control_bad_requests"], n)
        lines = [l for l in self.gw.log().splitlines() if "UTF-8" in l]
        print(f"\n{n} requests that are not UTF-8: {len(lines)} log line(s)", file=sys.stderr)
        self.assertLessEqual(len(lines), 3, "\n".join(lines[:5]))
        self.assertIn("citygate.v1.ModbusReadRequest.bus is not UTF-8", lines[0])

    def test_a_client_that_leaves_during_modbus_read_of_a_dead_unit_frees_the_bus(self):
        wait_for(lambda: self.sim.requests(1) > 0, 15, what="the first poll")

        def read_dead_and_leave(i, stay_until=None):
            req = control_pb2.ControlRequest(id=i)
            req.modbus_read.bus = "b"
            req.modbus_read.unit_id = 9
            req.modbus_read.count = 1
            req.modbus_read.timeout_ms = 3000
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(self.socket)
                s.sendall(frame(req))
                if stay_until:
                    stay_until()
            # closed: nobody waits for the answer

        # The first stays until its request is on the wire (had it left at once, the daemon could
        # cancel it before the bus worker took it): it runs to its timeout, its answer dropped.
        read_dead_and_leave(
            1, lambda: wait_for(lambda: self.sim.requests(9) == 1, 10, what="the first dead read to reach the device"))
        read_dead_and_leave(2)  # queued behind it: must never reach the bus
        start = time.monotonic()
        out = self.ctl("modbus", "read", "b", 1, "holding", 0, 1, timeout=30)
        took = time.monotonic() - start
        print(f"\nmodbus read behind a dead read whose client left: {took:.2f} s", file=sys.stderr)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertLess(took, 5.5)  # one dead read (3 s), not two (6 s)
        # The second read was queued before ours: had it run, the device would have seen it first.
        self.assertEqual(self.sim.requests(9), 1)


if __name__ == "__main__":
    unittest.main()
