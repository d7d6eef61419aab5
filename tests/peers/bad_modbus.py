#!/usr/bin/python3
"""A misbehaving Modbus server for citygate's fault tests, in plain sockets and termios so that
every fault is scripted byte for byte: Modbus TCP (MBAP), RTU framing over TCP, or RTU on a serial
port (in tests a socat pseudo-terminal).

    bad_modbus.py SPEC.json

It handles requests one at a time, as most devices do: a request that comes while it is busy
(sleeping on a late answer) waits in the socket or tty buffer. Registers (holding and input) read
1000 * unit + address; every frame a fault sends in place of an answer carries POISON values
(60000 + address), so a test knows that a published 6xxxx value, or a value that is not
1000 * unit + address, came from another request.

SPEC (JSON):
  {
    "tcp": {"host": "127.0.0.1", "port": 1502},             # or
    "rtu_over_tcp": {"host": "127.0.0.1", "port": 1503},    # or
    "serial": {"port": "/tmp/x/ttyB"},
    "units": [1, 2],                    # the units that answer; others are silent
    "service_ms": 5,                    # time to handle one request
    "ready": "/tmp/x/ready",            # created once it listens
    "control": "/tmp/x/faults.json",    # read before every request when it changed (see below)
    "events": "/tmp/x/events.jsonl"     # one JSON line per request served and per fault
  }

The control file arms faults at run time:
  {"faults": [{"unit": 1, "address": 10, "kind": "late", "times": 1, ...}]}
Each matching request (unit, and first address) consumes one of `times`; kinds:
  late            the answer comes `delay_ms` (default 800) late, with POISON values
  wrong_unit      an answer from unit + 1 (POISON)
  wrong_function  an answer with function + 1 (POISON)
  lying_count     an answer whose byte count is for one register more (POISON, consistent CRC)
  wrong_tid       (TCP) an answer with the previous transaction id (POISON)
and, with "follow_ms": N, the real answer N ms after the bad one (a frame on the wire that is not
the answer, then the answer). When the last armed fault has been sent, the events log gets
{"event": "behaving", "t": <time.time()>}.
"""
import json
import os
import signal
import socket
import struct
import sys
import termios
import threading
import time
import tty

POISON = 60000


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body):
    c = crc16(body)
    return bytes(body) + bytes([c & 0xFF, c >> 8])


class Device:
    def __init__(self, spec):
        self.spec = spec
        self.units = set(int(u) for u in spec.get("units", [1]))
        self.service = float(spec.get("service_ms", 5)) / 1000.0
        self.control = spec.get("control")
        self.control_mtime = None
        self.faults = []
        self.lock = threading.Lock()
        self.events = open(spec["events"], "a", buffering=1) if spec.get("events") else None

    def log(self, **event):
        event["t"] = time.time()
        if self.events:
            with self.lock:
                self.events.write(json.dumps(event) + "\n")

    def reload(self):
        if not self.control:
            return
        try:
            mtime = os.stat(self.control).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self.control_mtime:
            return
        self.control_mtime = mtime
        try:
            with open(self.control) as f:
                self.faults = json.load(f).get("faults", [])
        except (OSError, json.JSONDecodeError):
            return
        self.log(event="armed", faults=self.faults)

    def fault_for(self, unit, address):
        self.reload()
        for f in self.faults:
            if f.get("times", 0) > 0 and int(f["unit"]) == unit and int(f.get("address", address)) == address:
                f["times"] -= 1
                return f
        return None

    def armed(self):
        return any(f.get("times", 0) > 0 for f in self.faults)

    def pdu(self, unit, fc, address, count, poison=False, extra=0):
        """The answer PDU (function, byte count, data) to a read."""
        n = count + extra
        if fc in (1, 2):
            data = bytearray((n + 7) // 8)
            for i in range(n):
                if (address + i) % 2:
                    data[i // 8] |= 1 << (i % 8)
            return bytes([fc, len(data)]) + bytes(data)
        base = POISON if poison else 1000 * unit
        regs = [(base + address + i) & 0xFFFF for i in range(n)]
        return bytes([fc, 2 * n]) + b"".join(struct.pack(">H", r) for r in regs)

    def answers(self, unit, fc, address, count):
        """([(delay before it in s, unit, pdu, tid offset)], faulted) for one request."""
        if unit not in self.units:
            return [], False
        if fc not in (1, 2, 3, 4) or count < 1 or count > 125:
            return [(self.service, unit, bytes([fc | 0x80, 1]), 0)], False
        good = (self.service, unit, self.pdu(unit, fc, address, count), 0)
        f = self.fault_for(unit, address)
        if f is None:
            return [good], False
        kind = f["kind"]
        self.log(event="fault", kind=kind, unit=unit, address=address)
        if kind == "late":
            out = [(float(f.get("delay_ms", 800)) / 1000.0, unit, self.pdu(unit, fc, address, count, poison=True), 0)]
        elif kind == "wrong_unit":
            out = [(self.service, unit % 247 + 1, self.pdu(unit, fc, address, count, poison=True), 0)]
        elif kind == "wrong_function":
            out = [(self.service, unit, self.pdu(unit, fc % 4 + 1, address, count, poison=True), 0)]
        elif kind == "lying_count":
            out = [(self.service, unit, self.pdu(unit, fc, address, count, poison=True, extra=1), 0)]
        elif kind == "wrong_tid":
            out = [(self.service, unit, self.pdu(unit, fc, address, count, poison=True), -1)]
        else:
            raise ValueError(kind)
        if "follow_ms" in f:
            out.append((float(f["follow_ms"]) / 1000.0, unit, good[2], 0))
        return out, True

    def serve(self, send, unit, fc, address, count, tid=None):
        """Handles one request: sleeps, sends, logs. `send(unit, pdu, tid_offset)`."""
        plan, faulted = self.answers(unit, fc, address, count)
        for delay, u, pdu, tid_offset in plan:
            time.sleep(delay)
            send(u, pdu, tid_offset)
        self.log(event="served", unit=unit, fc=fc, address=address, count=count, tid=tid)
        if faulted and not self.armed():
            self.log(event="behaving")


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def serve_mbap(device, conn):
    with conn:
        while True:
            header = read_exact(conn, 7)
            tid, pid, length, unit = struct.unpack(">HHHB", header)
            body = read_exact(conn, length - 1)
            if pid != 0 or len(body) != 5:
                continue
            fc, address, count = body[0], (body[1] << 8) | body[2], (body[3] << 8) | body[4]

            def send(u, pdu, tid_offset, tid=tid):
                conn.sendall(struct.pack(">HHHB", (tid + tid_offset) & 0xFFFF, 0, len(pdu) + 1, u) + pdu)

            device.serve(send, unit, fc, address, count, tid)


class RtuReader:
    """Finds 8-byte read requests in a byte stream (the only requests citygate sends)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 8:
            frame = self.buf[:8]
            if crc16(frame) == 0:
                out.append(frame)
                self.buf = self.buf[8:]
            else:
                self.buf = self.buf[1:]  # resynchronise
        return out


def serve_rtu(device, recv, write):
    reader = RtuReader()
    while True:
        data = recv()
        if not data:
            return
        for frame in reader.feed(data):
            unit, fc = frame[0], frame[1]
            address, count = (frame[2] << 8) | frame[3], (frame[4] << 8) | frame[5]

            def send(u, pdu, _tid_offset):
                write(with_crc(bytes([u]) + pdu))

            device.serve(send, unit, fc, address, count)


def tcp_server(device, host, port, handler, ready):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(4)
    ready()
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run(c=conn):
            try:
                handler(device, c)
            except (ConnectionError, OSError):
                pass

        threading.Thread(target=run, daemon=True).start()


def serve_rtu_over_tcp(device, conn):
    with conn:
        serve_rtu(device, lambda: conn.recv(512), conn.sendall)


def main(spec):
    device = Device(spec)

    def ready():
        if spec.get("ready"):
            with open(spec["ready"], "w") as f:
                f.write(str(os.getpid()))

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if "tcp" in spec:
        tcp_server(device, spec["tcp"]["host"], int(spec["tcp"]["port"]), serve_mbap, ready)
    elif "rtu_over_tcp" in spec:
        tcp_server(device, spec["rtu_over_tcp"]["host"], int(spec["rtu_over_tcp"]["port"]), serve_rtu_over_tcp,
                   ready)
    else:
        fd = os.open(spec["serial"]["port"], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        ready()

        def write(data):
            os.write(fd, data)

        serve_rtu(device, lambda: os.read(fd, 512), write)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))
