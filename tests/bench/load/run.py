#!/usr/bin/python3
"""citygate's load harness: the same workload for citygated and, in the same run, for a peer
(Node-RED with node-red-contrib-modbus), against one fast Modbus TCP simulator and one mosquitto.

    tests/bench/load/run.py                         the three sizes, citygate vs Node-RED
    tests/bench/load/run.py --sizes 2000 --peer none --duration 60
    tests/bench/load/run.py --soak 1800 --restart-every 300 --sizes 2000   the soak test
    tests/bench/load/run.py --profile 20 --sizes 1000    instructions per point (callgrind)
    tests/bench/load/run.py --wear --sizes 10,2000  device bytes written per reading (root: loop device)
    tests/bench/load/run.py --sizes 100,2000 --peer none --formats NATIVE,SPARKPLUG_B   both output formats

For each size (points per second = devices x points / interval) it prints: points/s delivered,
CPU µs per point (user+sys from /proc), peak and steady RSS, end-to-end latency p50/p99 (a
register's value is the simulator's clock when it was read; latency = arrival at the subscriber
minus that value), Modbus requests per point, seq continuity, and the MQTT payload bytes per
reading: every message citygated published in the window (readings, health, and in Sparkplug B mode
DDATA, the delivery marks, NDATA and any births) over the readings delivered. Figures only: nothing
here asserts on time.

--formats: citygated runs once per output format (mqtt.format), one after another on the same
simulator and broker; SPARKPLUG_B is subscribed on spBv1.0/bench/# and its DDATA metrics are counted
(a reading's native seq is each metric's "seq" property).

--wear: each size gets an ext4 file system of its own (default journal) on a loop device, made from
a sparse file in the run's temp dir; citygated's spool and state_dir, the floor's file and
Node-RED's userDir live on it, and field 7 (sectors written) of /sys/block/loopN/stat, read at the
start and the end of each system's window, gives the bytes that reached the device, journal and
metadata included. Needs root; without it, or without a loop device, the wear columns are skipped
and the reason printed.
"""
import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHM = "/dev/shm"  # tmpfs on every Linux: citygated's runtime_dir, the floor's ACK_DRIVEN file
REPO = HERE.parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
sys.path.insert(0, str(BUILD / "python"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
from citygate.v1 import reading_pb2  # noqa: E402
from sparkplug_b import sparkplug_b_pb2  # noqa: E402
from harness import free_port  # noqa: E402  (ports outside the ephemeral range)
import paho.mqtt.client as paho  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# points/s -> (devices, points per device, interval ms)
SIZES = {10: (10, 1, 1000), 110: (10, 11, 1000), 100: (10, 10, 1000), 2000: (40, 50, 1000), 10000: (100, 100, 1000),
         1000: (10, 100, 1000)}  # 1000: the 10,000 size's devices at a tenth of the rate (--profile)
# 10 and 110 (--wear): ten stations polled every second, readings of 1 point and of 11 (an AQT530's)


def wait_port(port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def proc_cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (after the comm field)
        except (FileNotFoundError, IndexError):
            pass
    return total / TICKS


def thread_cpu_seconds(pid):
    """{thread name: CPU seconds} of one process (threads of the same name added up)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / TICKS
        except (FileNotFoundError, IndexError, ProcessLookupError):
            pass
    return out


def proc_rss(pids):
    rss = hwm = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return rss, hwm


def proc_rss_parts(pid):
    """(anonymous, file-backed) resident bytes: heap growth shows in the first, code pages that a
    path touches for the first time (the first reconnect, the first replay) in the second."""
    parts = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                parts[line.split(":")[0]] = int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return parts.get("RssAnon", 0), parts.get("RssFile", 0) + parts.get("RssShmem", 0)


def children(pid):
    """pid and its descendants (Node-RED runs as node + maybe helpers)."""
    out = [pid]
    try:
        for line in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split():
            out += children(int(line))
    except Exception:
        pass
    return out


class Subscriber:
    """Counts points, seq continuity and latency for citygate (protobuf) and the peer (JSON)."""

    def __init__(self, port, topic, persistent=False):
        """topic: one filter or a list of them."""
        self.lock = threading.Lock()
        self.points = 0
        self.readings = 0
        self.reading_bytes = 0
        self.wire_bytes = 0  # every payload received in the window
        self.latencies = []
        self.seqs = set()
        self.max_seq = 0
        self.measuring = False
        # persistent: a session the broker keeps (with its queued readings) across restarts
        topics = [topic] if isinstance(topic, str) else list(topic)
        name = topics[0].replace('/', '-').replace('#', 'all')
        self.client = paho.Client(client_id=f"bench-{os.getpid()}-{name}", clean_session=not persistent)
        self.client.on_message = self.on_message
        self.client.on_connect = lambda c, u, f, rc: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def on_message(self, client, userdata, msg):
        now = int(time.time() * 1000) & 0xFFFFFFFF
        lat = []
        points = 0
        readings = 0
        reading_bytes = 0
        seqs = []
        if msg.topic.endswith("/readings"):
            b = reading_pb2.ReadingBatch()
            b.ParseFromString(msg.payload)
            for r in b.readings:
                readings += 1
                reading_bytes += r.ByteSize()
                seqs.append(r.seq)
                for m in r.generic.values.values():
                    points += 1
                    lat.append(((now - int(m.value)) & 0xFFFFFFFF))
        elif msg.topic.startswith("peer/"):
            regs = json.loads(msg.payload)
            readings += 1
            for i in range(0, len(regs) - 1, 2):
                points += 1
                lat.append((now - ((regs[i] << 16) | regs[i + 1])) & 0xFFFFFFFF)
        elif msg.topic.startswith("spBv1.0/") and "/DDATA/" in msg.topic:
            p = sparkplug_b_pb2.Payload()
            p.ParseFromString(msg.payload)
            in_msg = set()
            for m in p.metrics:
                seq = None
                for k, v in zip(m.properties.keys, m.properties.values):
                    if k == "seq":
                        seq = v.long_value
                if seq is None:
                    continue
                in_msg.add(seq)
                kind = m.WhichOneof("value")
                if kind is None:
                    continue
                points += 1
                lat.append((now - int(getattr(m, kind))) & 0xFFFFFFFF)
            readings = len(in_msg)
            reading_bytes = len(msg.payload)
            seqs = list(in_msg)
        with self.lock:
            for s in seqs:
                self.seqs.add(s)
                self.max_seq = max(self.max_seq, s)
            if self.measuring:
                self.wire_bytes += len(msg.payload)
                self.points += points
                self.readings += readings
                self.reading_bytes += reading_bytes
                self.latencies.extend(l for l in lat if l < 600000)

    def start_window(self):
        with self.lock:
            self.points = self.readings = self.reading_bytes = self.wire_bytes = 0
            self.latencies = []
            self.measuring = True

    def stop_window(self):
        with self.lock:
            self.measuring = False
            return self.points, self.readings, list(self.latencies), self.wire_bytes

    def gaps(self):
        with self.lock:
            if not self.seqs:
                return 0
            lo, hi = min(self.seqs), max(self.seqs)
            return (hi - lo + 1) - len(self.seqs)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class LoopFs:
    """An ext4 file system (default journal) on a loop device over a sparse file in `tmp`, mounted
    at tmp/dev; written() is the device's own counter of bytes written. close() unmounts, detaches
    and removes, and is safe to call at any point of a failed set-up."""

    @staticmethod
    def unavailable():
        """Why the wear figures cannot be measured here, or None."""
        if os.geteuid() != 0:
            return "not root (losetup and mount need it)"
        if not Path("/dev/loop-control").exists():
            return "no /dev/loop-control (no loop device support)"
        for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
            if not shutil.which(tool):
                return f"{tool} not found"
        return None

    def __init__(self, tmp, size_mb=512):
        self.image = Path(tmp) / "wear.img"
        self.mnt = Path(tmp) / "dev"
        self.dev = None
        self.mounted = False
        try:
            with open(self.image, "wb") as f:
                f.truncate(size_mb * 2**20)
            # inode tables and journal zeroed now, into the file: left lazy, ext4lazyinit would write
            # them through the device after mounting, inside the measurement windows
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(self.image)],
                           check=True, capture_output=True)
            self.dev = subprocess.run(["losetup", "-f", "--show", str(self.image)], check=True,
                                      capture_output=True, text=True).stdout.strip()
            self.mnt.mkdir()
            subprocess.run(["mount", "-t", "ext4", self.dev, str(self.mnt)], check=True, capture_output=True)
            self.mounted = True
            self.stat = Path("/sys/block") / Path(self.dev).name / "stat"
        except BaseException:
            self.close()
            raise

    def written(self):
        """Bytes written to the device since it was attached (field 7: 512-byte sectors), after a
        syncfs: what was dirtied before the call is counted now, not in the next window (the
        previous system's last metadata, the journal's 5 s commit). Read at both ends of a window,
        it counts exactly what the window dirtied."""
        subprocess.run(["sync", "-f", str(self.mnt)], check=True)
        return int(self.stat.read_text().split()[6]) * 512

    def close(self):
        if self.mounted:
            r = subprocess.run(["umount", str(self.mnt)], capture_output=True)
            if r.returncode != 0:  # something still holds it open: detach it lazily
                subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)
            self.mounted = False
        if self.dev:
            subprocess.run(["losetup", "-d", self.dev], capture_output=True)
            self.dev = None
        try:
            self.image.unlink()
        except FileNotFoundError:
            pass


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


class World:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.procs = []
        self.cleanup_dirs = []  # removed at close (citygated's runtime_dir on tmpfs)

    def runtime_dir(self):
        """A fresh tmpfs directory for citygated's runtime_dir, removed at close."""
        d = Path(tempfile.mkdtemp(prefix="cg-bench-run-", dir=SHM))
        self.cleanup_dirs.append(d)
        return d

    def start(self, name, argv, **kw):
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def broker(self, persist=False):
        """A mosquitto on a free port. persist: its sessions and queued messages survive a restart,
        as on the city's platform broker (the soak restarts it)."""
        port = free_port()
        d = self.tmp / f"mosquitto-{port}"
        d.mkdir()
        conf = (f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                "max_queued_messages 1000000\nmax_inflight_messages 100\n")
        if persist:
            conf += f"persistence true\npersistence_location {d}/\n"
        (d / "m.conf").write_text(conf)
        p = self.start("mosquitto", ["mosquitto", "-c", d / "m.conf"])
        wait_port(port)
        return port, p, d / "m.conf"

    def simulator(self):
        """The Modbus simulator on a free port; returns (port, a function giving its request count)."""
        port = free_port()
        stats_file = self.tmp / "sim-stats.json"
        self.start("sim", [BUILD / "bin" / "bench_modbus_sim", "--port", port, "--stats", stats_file])
        wait_port(port)

        def requests():
            try:
                return json.loads(stats_file.read_text())["requests"]
            except (FileNotFoundError, ValueError, KeyError):
                return 0

        return port, requests

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        for d in self.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)


def citygate_config(tmp, gw, broker_port, sim_port, devices, points, interval_ms, durability_ms=50, data=None,
                    durability="ACK_DRIVEN", runtime_dir=None, fmt="NATIVE"):
    """data: where the spool and state_dir go (tmp unless given: --wear's loop device);
    runtime_dir: citygated's tmpfs directory (young readings, ACK_DRIVEN)."""
    data = Path(data or tmp)
    prof = tmp / "profiles"
    prof.mkdir(exist_ok=True)
    pts = "\n".join(f'point {{ field: "p{i}" table: HOLDING_REGISTER address: {2 * i} type: UINT32 }}' for i in range(points))
    (prof / "bench.textproto").write_text(f'name: "bench-{points}"\nkind: GENERIC\nmax_gap_registers: 0\n{pts}\n')
    buses = []
    per_bus = 25
    for b in range(0, devices, per_bus):
        devs = "\n".join(f'  device {{ id: "d{u}" unit_id: {u} profile: "bench-{points}" poll_interval_ms: {interval_ms} }}'
                         for u in range(b + 1, min(devices, b + per_bus) + 1))
        buses.append(f'modbus_bus {{ name: "bus{b // per_bus}" tcp {{ host: "127.0.0.1" port: {sim_port} }}\n{devs}\n}}')
    return f"""
gateway_id: "{gw}"
profile_dir: "{prof}"
mqtt {{ uri: "tcp://127.0.0.1:{broker_port}" reconnect_min_ms: 200 reconnect_max_ms: 2000 format: {fmt}
        {'sparkplug { group_id: "bench" }' if fmt == "SPARKPLUG_B" else ""} }}
control {{ socket: "{tmp}/control.sock" }}
health_interval_s: 10
state_dir: "{data}/state"
{f'runtime_dir: "{runtime_dir}"' if runtime_dir else ""}
spool {{ dir: "{data}/spool" max_bytes: 268435456 durability_ms: {durability_ms} durability: {durability} }}
{chr(10).join(buses)}
"""


def node_red_flow(broker_port, sim_port, devices, points, interval_ms):
    """One modbus-read per device (and per 125-register chunk), JSON to peer/<device>."""
    nodes = [{"id": "tab", "type": "tab", "label": "bench"},
             {"id": "broker", "type": "mqtt-broker", "broker": "127.0.0.1", "port": str(broker_port),
              "clientid": "node-red-bench", "protocolVersion": "4", "keepalive": "60", "cleansession": True}]
    per_bus = 25
    for b in range(0, devices, per_bus):
        nodes.append({"id": f"client{b}", "type": "modbus-client", "name": f"sim{b}", "clienttype": "tcp",
                      "tcpHost": "127.0.0.1", "tcpPort": str(sim_port), "tcpType": "DEFAULT", "unit_id": "1",
                      "commandDelay": "1", "clientTimeout": "1000", "reconnectOnTimeout": True,
                      "reconnectTimeout": "2000", "parallelUnitIdsAllowed": True,
                      "showErrors": False, "showWarnings": False})
        for u in range(b + 1, min(devices, b + per_bus) + 1):
            regs = 2 * points
            for c, start in enumerate(range(0, regs, 124)):
                n = min(124, regs - start)
                rid, mid = f"read{u}_{c}", f"mqtt{u}_{c}"
                nodes.append({"id": rid, "type": "modbus-read", "z": "tab", "name": f"d{u}", "topic": f"d{u}",
                              "showStatusActivities": False, "logIOActivities": False, "showErrors": False,
                              "showWarnings": False, "unitid": str(u), "dataType": "HoldingRegister",
                              "adr": str(start), "quantity": str(n), "rate": str(interval_ms / 1000),
                              "rateUnit": "s", "delayOnStart": False, "startDelayTime": "", "server": f"client{b}",
                              "useIOFile": False, "ioFile": "", "useIOForPayload": False, "emptyMsgOnFail": False,
                              "wires": [[mid], []]})
                nodes.append({"id": mid, "type": "mqtt out", "z": "tab", "name": "", "topic": f"peer/d{u}",
                              "qos": "1", "retain": "false", "broker": "broker", "wires": []})
    return nodes


def measure(name, pids, sub, duration, sim_stats, points_expected, wear=None):
    cpu0 = proc_cpu_seconds(pids)
    written0 = wear.written() if wear else None
    threads0 = thread_cpu_seconds(pids[0]) if len(pids) == 1 else {}
    req0 = sim_stats()
    sub.start_window()
    t0 = time.monotonic()
    peak_rss = 0
    samples = []
    while time.monotonic() - t0 < duration:
        time.sleep(1)
        rss, hwm = proc_rss(pids)
        samples.append(rss)
        peak_rss = max(peak_rss, hwm, rss)
    elapsed = time.monotonic() - t0
    points, readings, lat, wire = sub.stop_window()
    written = wear.written() - written0 if wear else None
    cpu = proc_cpu_seconds(pids) - cpu0
    req = sim_stats() - req0
    threads = {}
    if threads0:
        for thread, s in thread_cpu_seconds(pids[0]).items():
            threads[thread] = (s - threads0.get(thread, 0)) * 1e6 / points if points else float("nan")
    return {
        "threads": threads,
        "name": name,
        "points_per_s": points / elapsed,
        "expected_per_s": points_expected,
        "cpu_us_per_point": 1e6 * cpu / points if points else float("nan"),
        "cpu_percent": 100 * cpu / elapsed,
        "rss_steady_mb": statistics.median(samples[len(samples) // 2:]) / 2**20 if samples else float("nan"),
        "rss_peak_mb": peak_rss / 2**20,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "requests_per_point": req / points if points else float("nan"),
        "wire_bytes_per_reading": wire / readings if readings else float("nan"),
        "wear": None if written is None else {"bytes": written, "readings": readings, "seconds": elapsed},
    }


def floor(tmp, sim_port, devices, points, interval, record_bytes, args, wear=None):
    """bench_floor on the same simulator: citygate's Modbus polls (libmodbus, one connection per
    25 devices) and its spool's writes and group commit, with nothing in between."""
    spool_dir = tmp
    strict = args.durability == "STRICT"
    if not strict:
        spool_dir = Path(tempfile.mkdtemp(prefix="cg-floor-", dir=SHM))  # ACK_DRIVEN: RAM, no fdatasync
    elif wear:
        spool_dir = wear.mnt / "floor"
        spool_dir.mkdir()
    argv = [BUILD / "bin" / "bench_floor", "--port", sim_port, "--devices", devices, "--points", points,
            "--interval-ms", interval, "--bytes-per-reading", record_bytes,
            "--durability-ms", args.durability_ms if strict else 0,
            "--spool-dir", spool_dir, "--warmup", args.warmup, "--duration", args.duration]
    proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        written = None
        if wear:
            # the floor's window opens --warmup s after it starts and it exits when the window closes
            time.sleep(args.warmup)  # a duration, not an event: the floor's own warm-up
            written0 = wear.written()
        stdout, stderr = proc.communicate(timeout=args.warmup + args.duration + 60)
        if wear:
            written = wear.written() - written0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not strict:
            shutil.rmtree(spool_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_floor failed ({proc.returncode}): {stderr.strip()}")
    f = json.loads(stdout.strip().splitlines()[-1])
    nan = float("nan")
    return {"name": "floor", "points_per_s": f["points"] / args.duration, "cpu_us_per_point": f["cpu_us_per_point"],
            "cpu_percent": 100 * f["cpu_s"] / args.duration, "rss_steady_mb": nan, "rss_peak_mb": nan,
            "p50_ms": nan, "p99_ms": nan, "requests_per_point": nan, "seq_gaps": None, "wire_bytes_per_reading": nan,
            "wear": None if written is None else {"bytes": written, "readings": f["points"] // points,
                                                  "seconds": args.duration},
            "detail": f"floor: Modbus {f['modbus_us_per_point']:.2f} + durability {f['durability_us_per_point']:.2f} "
                      f"µs/pt ({record_bytes} B per reading, "
                      + (f"fdatasync every {args.durability_ms} ms)" if strict else "written to tmpfs, no fdatasync)")}


def run_size(size, args, node_red_dir):
    devices, points, interval = SIZES[size]
    tmp = Path(tempfile.mkdtemp(prefix=f"cg-bench-{size}-"))
    world = World(tmp)
    results = []
    wear = None
    encoded = None
    try:
        if args.wear:
            wear = LoopFs(tmp)
        broker_port, _, _ = world.broker()
        sim_port, sim_requests = world.simulator()
        expected = devices * points * 1000 / interval
        for fmt in args.formats:
            sparkplug = fmt == "SPARKPLUG_B"
            topics = ["citygate/v1/bench-gw/#"] + (["spBv1.0/bench/#"] if sparkplug else [])
            sub = Subscriber(broker_port, topics)
            cfg = tmp / f"citygate-{fmt}.textproto"
            runtime_dir = world.runtime_dir()
            data = (wear.mnt if wear else tmp) / fmt
            data.mkdir()
            cfg.write_text(citygate_config(tmp, "bench-gw", broker_port, sim_port, devices, points, interval,
                                           args.durability_ms, data=data, durability=args.durability,
                                           runtime_dir=runtime_dir, fmt=fmt))
            gw = world.start(f"citygated-{fmt}", [BUILD / "bin" / "citygated", "--config", cfg, "--log-level", "warn"])
            time.sleep(args.warmup)  # warm-up before the measurement window (a duration, not an event)
            name = "citygate" if len(args.formats) == 1 else ("cg-spB" if sparkplug else "cg-native")
            results.append(measure(name, [gw.pid], sub, args.duration, sim_requests, expected, wear))
            results[-1]["seq_gaps"] = sub.gaps()
            if not sparkplug:
                encoded = sub.reading_bytes / max(sub.readings, 1)  # a Reading's encoded size at the subscriber
            gw.terminate()
            gw.wait(20)
            sub.close()
        record = round(encoded or 64) + 16  # + the spool's frame
        # the floor: the same polls and syncs, nothing else
        results.append(floor(tmp, sim_port, devices, points, interval, record, args, wear))
        # the peer on the identical workload
        if node_red_dir:
            flow = tmp / "flows.json"
            flow.write_text(json.dumps(node_red_flow(broker_port, sim_port, devices, points, interval)))
            user = (wear.mnt if wear else tmp) / "node-red"
            user.mkdir()
            (user / "settings.js").write_text("module.exports = { uiPort: %d, uiHost: '127.0.0.1', logging: "
                                              "{ console: { level: 'warn' } }, flowFile: '%s', editorTheme: "
                                              "{ tours: false } };\n" % (free_port(), flow))
            sub = Subscriber(broker_port, "peer/#")
            nr = world.start("node-red", ["node", node_red_dir / "node_modules" / "node-red" / "red.js",
                                          "--userDir", user, "--settings", user / "settings.js"],
                             cwd=node_red_dir)
            time.sleep(args.warmup + 5)  # Node-RED needs longer to load its nodes
            results.append(measure("node-red", children(nr.pid), sub, args.duration, sim_requests, expected, wear))
            results[-1]["seq_gaps"] = None
            nr.terminate()
            sub.close()
    finally:
        world.close()
        if wear:
            wear.close()
        if not os.environ.get("CITYGATE_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    return size, (devices, points, interval), results, encoded


def wait_delivered(tmp, sub, timeout=180):
    """Waits until the subscriber holds every reading citygated had numbered when asked (its spool's
    next_seq, from the control socket): the backlog of an outage, or the tail of a run, arrived."""
    out = subprocess.run([str(BUILD / "bin" / "citygatectl"), "--socket", str(tmp / "control.sock"), "--json", "spool"],
                         capture_output=True, text=True, check=True)
    spool = json.loads(out.stdout)["spool"]
    last = int(spool.get("nextSeq", spool.get("next_seq", 0))) - 1
    deadline = time.monotonic() + timeout
    while sub.max_seq < last:
        if time.monotonic() > deadline:
            raise RuntimeError(f"readings up to seq {last} not delivered in {timeout} s (subscriber at {sub.max_seq})")
        time.sleep(0.2)  # polling the subscriber's state


def soak(args):
    """--soak: citygate alone at one size, the broker restarted every --restart-every seconds;
    prints RSS at every restart and checks seq continuity at the end. The warm-up ends with one
    outage, so the baseline has run every path once (reconnect, replay); the RSS before it is
    printed too."""
    size = args.sizes[0]
    devices, points, interval = SIZES[size]
    tmp = Path(tempfile.mkdtemp(prefix="cg-soak-"))
    world = World(tmp)
    try:
        broker_port, broker, conf = world.broker(persist=True)
        sim_port, _ = world.simulator()
        sub = Subscriber(broker_port, "citygate/v1/soak-gw/readings", persistent=True)
        cfg = tmp / "citygate.textproto"
        cfg.write_text(citygate_config(tmp, "soak-gw", broker_port, sim_port, devices, points, interval,
                                       args.durability_ms, durability=args.durability,
                                       runtime_dir=world.runtime_dir()))
        gw = world.start("citygated", [BUILD / "bin" / "citygated", "--config", cfg, "--log-level", "warn"])
        time.sleep(args.warmup)
        mb = 2**20

        def sample():
            anon, file = proc_rss_parts(gw.pid)
            return proc_rss([gw.pid])[0], anon, file

        def outage():
            nonlocal broker
            broker.terminate()
            broker.wait()
            time.sleep(2)  # the outage
            broker = world.start("mosquitto", ["mosquitto", "-c", conf])
            wait_port(broker_port)

        print(f"soak: {size} points/s for {args.soak} s, broker restarted every {args.restart_every} s", flush=True)
        pre = sample()
        outage()
        wait_delivered(tmp, sub)
        rss0 = sample()
        print(f"  warm-up: RSS {pre[0] / mb:.2f} MB (anonymous {pre[1] / mb:.2f}, file {pre[2] / mb:.2f}) before "
              f"its outage, {rss0[0] / mb:.2f} MB (anonymous {rss0[1] / mb:.2f}, file {rss0[2] / mb:.2f}) after",
              flush=True)
        print(f"  t=0 s RSS {rss0[0] / mb:.2f} MB (anonymous {rss0[1] / mb:.2f}, file {rss0[2] / mb:.2f})", flush=True)
        start = time.monotonic()
        samples = []
        next_restart = args.restart_every
        while time.monotonic() - start < args.soak:
            time.sleep(1)
            t = time.monotonic() - start
            samples.append((t, *sample()))
            if t >= next_restart:
                outage()
                _, rss, anon, file = samples[-1]
                print(f"  t={t:.0f} s broker restarted; RSS {rss / mb:.2f} MB (anonymous {anon / mb:.2f}, "
                      f"file {file / mb:.2f})", flush=True)
                next_restart += args.restart_every
        wait_delivered(tmp, sub)  # the last batches

        def growth(label, col, first):
            last = statistics.median(s[col] for s in samples if s[0] > args.soak * 0.75)
            print(f"  {label}: {first / mb:.2f} MB -> last quarter {last / mb:.2f} MB: "
                  f"growth {(last / first - 1) * 100:+.2f} %")

        def first_quarter(col):  # after 5 %, to the quarter
            return statistics.median(s[col] for s in samples if args.soak * 0.05 <= s[0] < args.soak * 0.25)

        # the measure: the first quarter against the last quarter
        growth("RSS, first quarter", 1, first_quarter(1))
        growth("anonymous RSS (heap), first quarter", 2, first_quarter(2))
        growth("RSS, before the warm-up outage (its one-time step counted as growth)", 1, pre[0])
        print(f"  seq: {len(sub.seqs)} distinct readings, {sub.gaps()} missing between first and last")
    finally:
        world.close()
        shutil.rmtree(tmp, ignore_errors=True)


def profile(args):
    """--profile: instructions per point on the hot path, from callgrind (repeatable on a noisy
    machine, unlike time). citygated runs under callgrind twice, for --profile and for 2.5 x
    --profile seconds; the difference of the two totals, divided by the difference in points,
    cancels start-up and shutdown and leaves the steady per-point cost (poll, decode, normalise,
    encode, spool, publish)."""
    size = args.sizes[0]
    devices, points, interval = SIZES[size]
    runs = []
    for secs in (args.profile, 2.5 * args.profile):
        tmp = Path(tempfile.mkdtemp(prefix=f"cg-profile-{size}-"))
        world = World(tmp)
        try:
            broker_port, _, _ = world.broker()
            sim_port, sim_requests = world.simulator()
            cfg = tmp / "citygate.textproto"
            cfg.write_text(citygate_config(tmp, "profile-gw", broker_port, sim_port, devices, points, interval,
                                       args.durability_ms, durability=args.durability,
                                       runtime_dir=world.runtime_dir()))
            out = tmp / "callgrind.out"
            gw = world.start("callgrind", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                           BUILD / "bin" / "citygated", "--config", cfg, "--log-level", "warn"])
            time.sleep(secs)  # a run length, not a wait for an event
            gw.terminate()
            gw.wait(60)
            time.sleep(0.3)  # the simulator's last stats write (every 200 ms)
            requests = sim_requests()
            totals = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True, check=True).stdout
            ir = next(int(line.split()[0].replace(",", "")) for line in totals.splitlines() if "PROGRAM TOTALS" in line)
            runs.append((ir, requests))
            if args.profile_keep:
                Path(args.profile_keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(out, Path(args.profile_keep) / f"callgrind.{len(runs)}.out")
        finally:
            world.close()
            shutil.rmtree(tmp, ignore_errors=True)
    (ir_a, req_a), (ir_b, req_b) = runs
    # a poll reads a device's contiguous UINT32s in requests of at most 125 registers
    per_poll = math.ceil(2 * points / 124)
    pts = (req_b - req_a) // per_poll * points
    print(f"profile: {size} points/s ({devices} devices x {points} points every {interval} ms) under callgrind")
    print(f"  run A: {ir_a:,} instructions, {req_a} Modbus requests; run B: {ir_b:,}, {req_b}")
    print(f"  instructions per point: {(ir_b - ir_a) / pts:.0f}  (B - A over {pts:,} points)")


def parse_size(text):
    """A size of SIZES (points/s: 2000) or a shape DEVICESxPOINTSxINTERVAL_MS (200x1x100: 2,000
    readings/s of one point), added to SIZES under its own text."""
    if "x" not in text:
        return int(text)
    SIZES[text] = tuple(int(v) for v in text.split("x"))
    return text


def print_wear(rows):
    print()
    print(f"{'size':>9} {'shape':<12} {'system':<9} {'read/s':>7} {'device B':>11} {'B/reading':>10} "
          f"{'x encoded':>10} {'MB/day':>9}")
    for size, (d, p, i), results, encoded in rows:
        for r in results:
            w = r.get("wear")
            if w is None:
                continue
            per_s = w["readings"] / w["seconds"]
            per_reading = w["bytes"] / w["readings"] if w["readings"] else float("nan")
            ratio = per_reading / encoded if encoded else float("nan")
            per_day = w["bytes"] / w["seconds"] * 86400 / 1e6
            print(f"{size:>9} {f'{d}x{p}/{i}ms':<12} {r['name']:<9} {per_s:>7.1f} {w['bytes']:>11,} "
                  f"{per_reading:>10.0f} {ratio:>10.2f} {per_day:>9.1f}")
        if encoded:
            print(f"{'':>9} encoded reading (at the subscriber): {encoded:.0f} B")
    print("(wear: bytes written to the loop device's ext4, journal and metadata included, in the window;\n"
          " x encoded = per reading / citygate's encoded Reading; Node-RED's readings are its JSON messages,\n"
          " it keeps nothing durable of them, so its figure is what its userDir costs the device)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,2000,10000")
    ap.add_argument("--duration", type=float, default=30, help="measurement window per run, s")
    ap.add_argument("--warmup", type=float, default=8, help="s before the window opens")
    ap.add_argument("--peer", default="node-red", choices=["node-red", "none"])
    ap.add_argument("--formats", default="NATIVE",
                    help="citygated's output formats to run, comma-separated: NATIVE, SPARKPLUG_B")
    ap.add_argument("--durability", default="ACK_DRIVEN", choices=["ACK_DRIVEN", "STRICT"],
                    help="citygated's spool.durability (and what the floor does: tmpfs writes, or fdatasync)")
    ap.add_argument("--durability-ms", type=int, default=50,
                    help="citygated's spool group commit window (STRICT, or while the broker is away)")
    ap.add_argument("--soak", type=float, default=0, help="soak test duration, s")
    ap.add_argument("--restart-every", type=float, default=300)
    ap.add_argument("--profile", type=float, default=0,
                    help="instructions per point under callgrind: two runs of this many s and 2.5 x as long")
    ap.add_argument("--profile-keep", default="", help="directory to keep the callgrind outputs in")
    ap.add_argument("--wear", action="store_true",
                    help="bytes written to the storage device per reading (ext4 on a loop device; root)")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every finally runs (processes stopped, loop devices detached)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.wear and (why := LoopFs.unavailable()):
        print(f"bench: --wear skipped: {why}", flush=True)
        args.wear = False
    args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.formats = [f.strip().upper() for f in args.formats.split(",") if f.strip()]
    if not args.formats or any(f not in ("NATIVE", "SPARKPLUG_B") for f in args.formats):
        ap.error("--formats: NATIVE and/or SPARKPLUG_B, comma-separated")
    if args.profile:
        return profile(args)
    if args.soak:
        return soak(args)
    node_red_dir = None
    if args.peer == "node-red":
        node_red_dir = HERE / "node-red"
        if not (node_red_dir / "node_modules" / "node-red").exists():
            print("bench: installing Node-RED and node-red-contrib-modbus (npm)", flush=True)
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=node_red_dir, check=True)
    rows = []
    for size in args.sizes:
        print(f"bench: {size} points/s ...", flush=True)
        rows.append(run_size(size, args, node_red_dir))
    print()
    print(f"{'size':>6} {'system':<9} {'pts/s':>8} {'CPU µs/pt':>10} {'CPU %':>6} {'RSS MB':>7} {'peak MB':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'req/pt':>7} {'gaps':>5} {'B/rdg':>6}")
    for size, (d, p, i), results, _ in rows:
        for r in results:
            gaps = "-" if r["seq_gaps"] is None else str(r["seq_gaps"])
            print(f"{size:>6} {r['name']:<9} {r['points_per_s']:>8.0f} {r['cpu_us_per_point']:>10.2f} "
                  f"{r['cpu_percent']:>6.1f} {r['rss_steady_mb']:>7.1f} {r['rss_peak_mb']:>8.1f} {r['p50_ms']:>7.0f} "
                  f"{r['p99_ms']:>7.0f} {r['requests_per_point']:>7.3f} {gaps:>5} {r['wire_bytes_per_reading']:>6.0f}")
        by = {r["name"]: r for r in results}
        ours = [r for r in results if r["name"].startswith(("citygate", "cg-"))]
        for r in ours:
            if r.get("threads"):
                parts = ", ".join(f"{n} {v:.2f}" for n, v in sorted(r["threads"].items(), key=lambda kv: -kv[1]))
                print(f"{'':>6} {r['name']} by thread, CPU µs/pt: {parts}")
        if "floor" in by:
            print(f"{'':>6} {by['floor']['detail']}")
        if "node-red" in by:
            a, b = ours[0], by["node-red"]
            print(f"{size:>6} {'ratio':<9} {'':>8} {a['cpu_us_per_point'] / b['cpu_us_per_point']:>10.3f} {'':>6} "
                  f"{a['rss_steady_mb'] / b['rss_steady_mb']:>7.3f} {a['rss_peak_mb'] / b['rss_peak_mb']:>8.3f} "
                  f"{a['p50_ms'] / max(b['p50_ms'], 1e-9):>7.3f} {a['p99_ms'] / max(b['p99_ms'], 1e-9):>7.3f}")
    if args.wear:
        print_wear(rows)
    print("\n(size = points/s offered: devices x points / interval; ratio = citygate (its first format) / Node-RED;\n"
          " floor = the same Modbus polls and spool syncs with nothing else, tests/bench/load/floor.cpp;\n"
          " B/rdg = MQTT payload bytes the system published per reading delivered, births and health included)")


if __name__ == "__main__":
    sys.exit(main())
