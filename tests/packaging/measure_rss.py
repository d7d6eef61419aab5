#!/usr/bin/python3
"""Memory of citygated serving N Modbus devices, against real peers; prints figures, asserts none.

    /usr/bin/python3 tests/packaging/measure_rss.py [--binary PATH] [--devices 50] [--buses 5]
                                                    [--settle 30] [--samples 10]

A real mosquitto, one pymodbus server (tests/peers/modbus_sim.py) answering N unit ids (a mix of
air-quality, traffic and parking devices), N devices spread over --buses Modbus TCP connections
polled every second, and the platform-side subscriber. Once every device has delivered a reading,
the daemon runs --settle seconds more, then VmRSS is sampled --samples times (1 s apart) and
VmHWM read at the end, from /proc/PID/status.

An aarch64 or armhf binary runs under qemu-user (aarch64 without -L; armhf with -L on the
sysroot): VmRSS/VmHWM are then those of the qemu process, i.e. the daemon's pages plus the
emulator and its translation cache; for aarch64, guest_rss_kb also sums the resident pages of the
guest's own mappings only (see guest_rss_kb). --baseline also measures the same binary serving no device,
so that the difference says what the devices cost.

Environment: CITYGATE_BUILD_DIR selects the generated Python modules (any build dir has them).
"""
import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if "CITYGATE_BUILD_DIR" not in os.environ:
    for c in (REPO / "build" / "default", REPO / "build" / "aarch64", REPO / "build" / "release" / "amd64"):
        if (c / "python" / "citygate" / "v1" / "reading_pb2.py").exists():
            os.environ["CITYGATE_BUILD_DIR"] = str(c)
            break
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness import Env, Gateway, Process, gateway_config, wait_for  # noqa: E402

SYSROOT_ARMHF = REPO / "build" / "sysroot-armhf"


def emulator_for(binary):
    with open(binary, "rb") as f:
        head = f.read(20)
    machine = int.from_bytes(head[18:20], "little")
    if machine == 183:
        return ["/usr/bin/qemu-aarch64-static"]
    if machine == 40:
        return ["/usr/bin/qemu-arm-static", "-L", str(SYSROOT_ARMHF)]
    return []


class EmulatedGateway(Gateway):
    def __init__(self, env, config_text, emulator, **kw):
        super().__init__(env, config_text, **kw)
        self.emulator = emulator

    def start(self):
        self.process = Process(self.env, self.name, self.emulator +
                               [self.binary, "--config", self.config_path, "--log-level", self.log_level]).start()
        return self


GUEST_LIMIT = 1 << 40  # qemu-aarch64 (guest_base 0) maps the guest below 1 TiB (0x55'xxxx'xxxx)


def guest_rss_kb(pid):
    """Under qemu-aarch64: (resident, anonymous) kB of the guest's own mappings (the daemon, its
    libraries, heap, thread stacks), leaving out qemu's binary, heap and translation cache, which
    live far above 1 TiB. An estimate of what the daemon would use on an aarch64 board; the
    anonymous part (heap, stacks, written data) is the daemon's private memory, the rest are
    shared-library pages."""
    rss = anon = 0
    start = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not line.endswith(":") and all(c in "0123456789abcdef-" for c in head):
            start = int(head.split("-")[0], 16)
        elif start is not None and start < GUEST_LIMIT:
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Anonymous:"):
                anon += int(line.split()[1])
    return rss, anon


def status_kb(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


AIR = {"hr": {"0": 20, "1": 3, "2": 40, "5": 30, "6": 7, "8": 123, "9": 456, "10": 215, "11": 655, "12": 9650}}
TRAFFIC = {"ir": {str(lane * 10 + k): v for lane in range(4) for k, v in
                  ((0, 0), (1, 120 + lane), (2, 250), (3, 523), (4, 456), (5, 21))}}
PARKING = {"di": {str(b): b % 2 for b in range(8)}}
KINDS = [("vaisala-aqt530", AIR), ("citygate-traffic-counter-4lane", TRAFFIC), ("parking-guidance-8bay", PARKING)]


def run(binary, devices, buses, settle, samples, poll_ms):
    emulator = emulator_for(binary)
    with Env("rss") as env:
        broker = env.broker()
        units = {}
        for i in range(devices):
            units[str(i + 1)] = KINDS[i % 3][1]
        sim = env.modbus(units) if devices else None
        text = ""
        for b in range(buses if devices else 0):
            devs = [i for i in range(devices) if i % buses == b]
            text += f'modbus_bus {{ name: "bus{b}" tcp {{ host: "127.0.0.1" port: {sim.port} }}\n'
            for i in devs:
                profile = KINDS[i % 3][0]
                extra = ' ref_parking_site: "bench"' if profile.startswith("parking") else ""
                text += f'  device {{ id: "dev{i + 1:03d}" unit_id: {i + 1} profile: "{profile}" poll_interval_ms: {poll_ms}{extra} }}\n'
            text += "}\n"
        cfg = gateway_config("gw-rss", broker.uri, env, text)
        sub = env.subscriber(broker, "gw-rss")
        gw = EmulatedGateway(env, cfg, emulator, name="citygated", binary=Path(binary), log_level="info")
        env._track(gw)
        gw.start()
        t0 = time.monotonic()
        if devices:
            sub.wait_for(lambda: len({r.sensor_id for r in sub.readings}) >= devices, 180,
                         f"a reading from each of the {devices} devices")
        else:
            sub.wait_for(lambda: sub.status, 180, "the birth message")
        up = time.monotonic() - t0
        pid = gw.process.proc.pid
        deadline = time.monotonic() + settle
        wait_for(lambda: time.monotonic() >= deadline or not gw.process.running(), settle + 5, what="settling")
        rss, guest, guest_anon = [], [], []
        for _ in range(samples):
            rss.append(status_kb(pid, "VmRSS"))
            if emulator and "aarch64" in emulator[0]:
                g_rss, g_anon = guest_rss_kb(pid)
                guest.append(g_rss)
                guest_anon.append(g_anon)
            next_at = time.monotonic() + 1.0
            wait_for(lambda: time.monotonic() >= next_at, 2, what="the next sample")
        hwm = status_kb(pid, "VmHWM")
        readings = len(sub.readings)
        rc = gw.stop(timeout=60)
        return {"binary": str(binary), "emulator": " ".join(emulator) or "native", "devices": devices,
                "buses": buses if devices else 0, "first_reading_from_all_s": round(up, 1),
                "rss_kb_median": sorted(rss)[len(rss) // 2], "rss_kb_max": max(rss), "hwm_kb": hwm,
                "guest_rss_kb_median": sorted(guest)[len(guest) // 2] if guest else "n/a",
                "guest_anon_kb_median": sorted(guest_anon)[len(guest_anon) // 2] if guest_anon else "n/a",
                "readings": readings, "exit": rc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "build" / "aarch64" / "bin" / "citygated"))
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--buses", type=int, default=5)
    ap.add_argument("--poll-ms", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=30)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--baseline", action="store_true", help="also measure the same binary with no device")
    args = ap.parse_args()
    runs = [run(args.binary, args.devices, args.buses, args.settle, args.samples, args.poll_ms)]
    if args.baseline:
        runs.append(run(args.binary, 0, 0, args.settle, args.samples, args.poll_ms))
    for r in runs:
        print(" ".join(f"{k}={v}" for k, v in r.items()))
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
