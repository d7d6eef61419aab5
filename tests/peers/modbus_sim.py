#!/usr/bin/python3
"""A Modbus server for citygate's tests, benchmarks and demo: real pymodbus, over TCP, over a
serial port (RTU; in tests a socat pseudo-terminal), or RTU framing over TCP.

    modbus_sim.py SPEC.json

SPEC (JSON):
  {
    "tcp": {"host": "127.0.0.1", "port": 1502},          # or
    "serial": {"port": "/tmp/x/ttyB", "baudrate": 9600}, # RTU framer; or
    "rtu_over_tcp": {"host": "127.0.0.1", "port": 1503},
    "stats": "/tmp/x/stats.json",       # requests counted per unit and function, rewritten as they come
    "ready": "/tmp/x/ready",            # created once the server listens
    "units": {
      "1": {
        "hr": {"0": 17, "8": 123},      # holding registers, address -> 16-bit value
        "ir": {...}, "co": {"0": 1}, "di": {...},
        "values": [                     # typed values, encoded like a device would
          {"table": "hr", "address": 10, "type": "FLOAT32", "order": "CDAB", "value": 123456.0}
        ],
        "animate": [                    # values that change (demo, benchmarks)
          {"table": "hr", "address": 0, "type": "INT16", "min": 10, "max": 60, "period_s": 120}
        ],
        "dead": false,                  # in the unit map, but never answers (requests still counted)
        "delay_ms": 0,                  # answers slowly
        "max_read": 0,                  # > 0: reads longer than this get exception 02
        "faults": {"every": 5, "kind": "crc"},  # every 5th answer damaged: crc | garbage |
                                        #   stale_tid (TCP: a stale answer first) | foreign (RTU:
                                        #   another unit's frame first)
        "size": 1000                    # registers and bits per table
      }
    }
  }
"""
import asyncio
import json
import logging
import math
import os
import signal
import struct
import sys
import threading
import time

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSparseDataBlock
from pymodbus.exceptions import NoSuchSlaveException
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.framer.socket_framer import ModbusSocketFramer
from pymodbus.server.async_io import StartAsyncSerialServer, StartAsyncTcpServer

logging.basicConfig(level=logging.CRITICAL)
for name in ("pymodbus", "asyncio"):
    logging.getLogger(name).setLevel(logging.CRITICAL)

TABLES = {"co": 1, "di": 2, "hr": 3, "ir": 4}  # pymodbus fc-as-hex groups


def words(value, typ, order):
    """Registers of a typed value; order names as in citygate's config.proto (A = MSB)."""
    typ = typ.upper()
    fmt = {"INT16": ">h", "UINT16": ">H", "INT32": ">i", "UINT32": ">I", "FLOAT32": ">f",
           "INT64": ">q", "UINT64": ">Q", "FLOAT64": ">d"}[typ]
    if typ.startswith(("INT", "UINT")) and "FLOAT" not in typ:
        value = int(round(value))
    raw = struct.pack(fmt, value)
    regs = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    order = (order or "ABCD").upper()
    if order in ("CDAB", "DCBA"):
        regs.reverse()
    if order in ("BADC", "DCBA"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


class Stats:
    def __init__(self, path):
        self.path = path
        self.counts = {}
        self.lock = threading.Lock()
        self.dirty = False

    def count(self, unit, fc, address, count):
        with self.lock:
            u = self.counts.setdefault(str(unit), {"requests": 0, "by_fc": {}, "reads": []})
            u["requests"] += 1
            u["by_fc"][str(fc)] = u["by_fc"].get(str(fc), 0) + 1
            if len(u["reads"]) < 10000:
                u["reads"].append([fc, address, count, round(time.time(), 3)])
            self.dirty = True

    def flush(self):
        if not self.path:
            return
        with self.lock:
            if not self.dirty:
                return
            out = dict(self.counts)
            faults = getattr(self, "faults", None)
            if faults is not None:
                out["damaged"] = {str(k): v for k, v in faults.damaged.items()}
            data = json.dumps(out)
            self.dirty = False
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, self.path)


class Unit(ModbusSlaveContext):
    def __init__(self, uid, spec, stats):
        size = int(spec.get("size", 1000))
        blocks = {}
        for t in TABLES:
            initial = {a: 0 for a in range(size)}
            for addr, v in spec.get(t, {}).items():
                initial[int(addr)] = int(v)
            blocks[t] = ModbusSparseDataBlock(initial)
        super().__init__(co=blocks["co"], di=blocks["di"], hr=blocks["hr"], ir=blocks["ir"], zero_mode=True)
        self.uid = uid
        self.spec = spec
        self.stats = stats
        self.delay = float(spec.get("delay_ms", 0)) / 1000.0
        self.max_read = int(spec.get("max_read", 0))
        for v in spec.get("values", []):
            self.put(v["table"], v["address"], v.get("type", "UINT16"), v.get("order"), v["value"])

    def put(self, table, address, typ, order, value):
        fc = {"co": 1, "di": 2, "hr": 3, "ir": 4}[table]
        if table in ("co", "di"):
            self.setValues(fc if fc != 2 else 2, address, [bool(value)])
        else:
            self.setValues(fc if fc != 4 else 4, address, words(value, typ, order))

    def validate(self, fc_as_hex, address, count=1):
        self.stats.count(self.uid, fc_as_hex, address, count)
        if self.max_read and count > self.max_read:
            return False  # -> exception 02, illegal data address
        return super().validate(fc_as_hex, address, count)

    def getValues(self, fc_as_hex, address, count=1):
        if self.delay:
            time.sleep(self.delay)
        return super().getValues(fc_as_hex, address, count)


class Faults:
    """Damages every Nth answer of the units that ask for it (pymodbus response_manipulator)."""

    def __init__(self, spec, rtu):
        self.rtu = rtu
        self.units = {int(u): v["faults"] for u, v in spec["units"].items() if v.get("faults")}
        self.seen = {}
        self.damaged = {}

    def __call__(self, response):
        f = self.units.get(response.unit_id)
        if not f:
            return response, False
        n = self.seen[response.unit_id] = self.seen.get(response.unit_id, 0) + 1
        if n % int(f.get("every", 5)) != 0:
            return response, False
        self.damaged[response.unit_id] = self.damaged.get(response.unit_id, 0) + 1
        framer = ModbusRtuFramer(None) if self.rtu else ModbusSocketFramer(None)
        good = framer.buildPacket(response)
        kind = f.get("kind", "crc")
        if kind == "crc":
            bad = good[:-1] + bytes([good[-1] ^ 0xFF]) if self.rtu else good[:-1] + bytes([good[-1] ^ 0xFF])
            return bad, True
        if kind == "garbage":
            return bytes((b * 37 + 11) & 0xFF for b in good), True
        if kind == "stale_tid" and not self.rtu:
            old_tid = (response.transaction_id - 1) & 0xFFFF
            stale = old_tid.to_bytes(2, "big") + good[2:]
            return stale + good, True
        if kind == "foreign" and self.rtu:
            other = response.unit_id % 247 + 1
            foreign = bytes([other]) + good[1:-2]
            from pymodbus.utilities import computeCRC
            foreign += computeCRC(foreign).to_bytes(2, "big")
            return foreign + good, True
        return response, False


class Context(ModbusServerContext):
    """Dead units stay in the unit list (so an RTU framer accepts their frames and the request is
    counted) but never answer."""

    def __init__(self, units, dead, stats):
        super().__init__(slaves=units, single=False)
        self.dead = dead
        self.stats = stats

    def slaves(self):
        return list(self._slaves.keys()) + list(self.dead)

    def __getitem__(self, slave):
        if slave in self.dead:
            self.stats.count(slave, 0, 0, 0)
            raise NoSuchSlaveException(f"unit {slave} is dead")
        return super().__getitem__(slave)


def animate(units, spec, stop):
    start = time.time()
    while not stop.is_set():
        t = time.time() - start
        for uid, u in spec["units"].items():
            unit = units.get(int(uid))
            if unit is None:
                continue
            for a in u.get("animate", []):
                lo, hi = float(a["min"]), float(a["max"])
                period = float(a.get("period_s", 60))
                phase = float(a.get("phase", 0))
                if a.get("type", "").upper() == "BOOL" or a["table"] in ("co", "di"):
                    value = 1 if math.sin(2 * math.pi * (t / period + phase)) > 0 else 0
                    unit.put(a["table"], a["address"], "BOOL", None, value)
                else:
                    value = lo + (hi - lo) * (0.5 + 0.5 * math.sin(2 * math.pi * (t / period + phase)))
                    unit.put(a["table"], a["address"], a["type"], a.get("order"), value)
        stop.wait(float(spec.get("animate_interval_s", 1.0)))


async def main(spec):
    stats = Stats(spec.get("stats"))
    units = {}
    dead = set()
    for uid, u in spec["units"].items():
        if u.get("dead"):
            dead.add(int(uid))
        else:
            units[int(uid)] = Unit(int(uid), u, stats)
    context = Context(units, dead, stats)
    stop = threading.Event()
    threading.Thread(target=animate, args=(units, spec, stop), daemon=True).start()

    async def flusher():
        while True:
            stats.flush()
            await asyncio.sleep(0.05)

    asyncio.get_running_loop().create_task(flusher())
    faults = Faults(spec, rtu="tcp" not in spec)
    stats.faults = faults
    kwargs = dict(context=context, ignore_missing_slaves=True, defer_start=True, response_manipulator=faults)
    if "tcp" in spec:
        server = await StartAsyncTcpServer(address=(spec["tcp"]["host"], int(spec["tcp"]["port"])), **kwargs)
    elif "rtu_over_tcp" in spec:
        server = await StartAsyncTcpServer(address=(spec["rtu_over_tcp"]["host"], int(spec["rtu_over_tcp"]["port"])),
                                           framer=ModbusRtuFramer, **kwargs)
    else:
        s = spec["serial"]
        server = await StartAsyncSerialServer(port=s["port"], baudrate=int(s.get("baudrate", 19200)),
                                              framer=ModbusRtuFramer, **kwargs)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(shutdown(server, stats, stop)))
    if "serial" in spec:
        await server.start()
        task = asyncio.ensure_future(server.serve_forever())
    else:
        task = asyncio.ensure_future(server.serve_forever())
        await server.serving  # listening
    if spec.get("ready"):
        with open(spec["ready"], "w") as f:
            f.write(str(os.getpid()))
    await task


async def shutdown(server, stats, stop):
    stop.set()
    stats.flush()
    try:
        await server.shutdown()
    finally:
        os._exit(0)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(main(json.load(f)))
