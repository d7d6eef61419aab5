#!/usr/bin/python3
"""End-to-end replay figure: a backlog of N readings in the file spool (as a long outage leaves
it, written by bench_spool --fill), then citygated starts with a local mosquitto up and a Modbus
traffic counter polled every 100 ms. Prints how fast the backlog reaches a platform subscriber
(QoS 1, persistent session), whether live readings followed it without a gap, and the spool's
counters. Prints figures; asserts nothing about time.

    CITYGATE_BUILD_DIR=build/spool /usr/bin/python3 tests/bench/spool_replay.py [--readings N] [--batch B]
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import BIN, Env, wait_for  # noqa: E402


def config(env, broker, sim_port, batch, inflight):
    return f"""
gateway_id: "gw-bench"
mqtt {{
  uri: "{broker.uri}"
  max_batch_readings: {batch}
  max_batch_delay_ms: 100
  max_inflight_batches: {inflight}
}}
control {{ socket: "{env.path('control.sock')}" }}
runtime_dir: "{env.path('run')}"
health_interval_s: 1
spool {{ dir: "{env.path('spool')}" max_bytes: 1073741824 }}
modbus_bus {{
  name: "cab"
  tcp {{ host: "127.0.0.1" port: {sim_port} }}
  device {{ id: "live" unit_id: 3 profile: "citygate-traffic-counter-4lane" poll_interval_ms: 100 }}
}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=200000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--inflight", type=int, default=8)
    args = ap.parse_args()
    n = args.readings
    with Env("spool-replay") as env:
        broker = env.broker()
        lanes = [{"table": "ir", "address": lane * 10, "type": "UINT32", "value": 100 + lane} for lane in range(4)]
        sim = env.modbus({"3": {"values": lanes}})
        fill = subprocess.run([str(BIN / "bench_spool"), "--fill", env.path("spool"), "--readings", str(n)],
                              capture_output=True, text=True, check=True)
        print(fill.stdout.strip())
        sub = env.subscriber(broker, "gw-bench")
        t_start = time.monotonic()
        gw = env.gateway(config(env, broker, sim.port, args.batch, args.inflight), log_level="info")
        gw.wait_log("ready", 60)
        t_ready = time.monotonic()
        sub.wait_for(lambda: len(sub.readings) >= n, 600, f"{n} backlog readings")
        with sub.cond:
            arrivals = list(sub.arrivals)
        backlog = [t for t, seq in arrivals if seq <= n]
        t_first, t_last = backlog[0], max(backlog)
        sub.wait_for(lambda: any(r.seq > n + 20 for r in sub.readings), 30, "live readings after the backlog")
        h = sub.wait_for(lambda: sub.health and sub.health[-1].spool.readings < 50 and sub.health[-1], 30,
                         "a health report after the replay")
        seqs = sorted({r.seq for r in sub.readings})
        gaps = seqs[-1] - seqs[0] + 1 - len(seqs)
        dups = len(sub.readings) - len(seqs)
        live_during = sum(1 for t, seq in arrivals if seq > n and t <= t_last)
        rss = h.process.rss_bytes
        gw.stop()
        spool_bytes = sum(f.stat().st_size for f in Path(env.path("spool")).iterdir() if f.is_file())
        print(f"backlog                    {n} readings")
        print(f"start to READY             {t_ready - t_start:8.3f} s  (recovery of the backlog included)")
        print(f"first to last backlog      {t_last - t_first:8.3f} s")
        print(f"replay rate                {n / (t_last - t_first):8.0f} readings/s to the subscriber "
              f"(batch {args.batch}, {args.inflight} in flight)")
        print(f"start to backlog delivered {t_last - t_start:8.3f} s")
        print(f"live readings delivered during the replay: {live_during}; after: seqs up to {seqs[-1]}")
        print(f"gaps {gaps}, duplicates {dups}, spool replayed {h.spool.replayed}, dropped {h.spool.dropped}")
        print(f"gateway RSS after the replay {rss / 1e6:.1f} MB; spool dir after stop {spool_bytes} bytes")


if __name__ == "__main__":
    main()
