"""Issue 5: store-and-forward that never loses a reading, against real peers: mosquitto (stopped
and restarted), pymodbus traffic counters polled every 100 ms, the real citygated (killed with
SIGKILL), and a platform subscriber with a persistent QoS 1 session.

What "no loss" means here (contract.md): every seq from the first to the last reaches the
subscriber; duplicates are allowed (and counted), but a duplicate must be the same reading (a seq
given to two different readings would hide a loss); a gap is allowed only for readings the
DROP_OLDEST policy dropped, and then its size equals GatewayHealth.spool.dropped.
"""
import importlib.util
import os
import random
import re
import time
from pathlib import Path

from harness import REPO, IntegrationTest, gateway_config, reading_pb2, status_pb2, wait_for

# The segment encoder written from FORMAT.md (the golden-file generator), reused for backlogs.
_spec = importlib.util.spec_from_file_location("make_golden", REPO / "tests" / "data" / "spool" / "make_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

LANES = [{"table": "ir", "address": lane * 10, "type": "UINT32", "value": 100 + lane} for lane in range(4)]
SEGMENT = 16384


def traffic_bus(port, devices=2, poll_ms=100):
    """A bus of `devices` four-lane counters: 4 readings per poll each."""
    devs = "".join(f'device {{ id: "traffic-{u}" unit_id: {u} profile: "citygate-traffic-counter-4lane" '
                   f'poll_interval_ms: {poll_ms} }}\n' for u in range(1, devices + 1))
    return f'modbus_bus {{ name: "cab" tcp {{ host: "127.0.0.1" port: {port} }}\n{devs}}}'


def spool_bytes(spool_dir):
    """What the spool occupies on disk: segments and the ack file."""
    total = 0
    for f in Path(spool_dir).iterdir():
        if f.name.endswith(".cgs") or f.name == "spool.ack":
            try:
                total += f.stat().st_size
            except FileNotFoundError:
                pass  # deleted between the listing and the stat
    return total


def write_backlog(spool_dir, n, segment_bytes=4 << 20):
    """A spool directory holding readings 1..n, as a long outage leaves it (FORMAT.md)."""
    os.makedirs(spool_dir, exist_ok=True)
    seq, data = 1, None
    first = 1
    while seq <= n:
        if data is None:
            first, data = seq, bytearray(golden.header(seq))
        r = reading_pb2.Reading(seq=seq, sensor_id="backlog", quality=reading_pb2.GOOD)
        r.observed_at.FromSeconds(1795000000 + seq)
        data += golden.frame(seq, r.SerializeToString())
        seq += 1
        if len(data) >= segment_bytes or seq > n:
            Path(spool_dir, golden.name(first)).write_bytes(bytes(data))
            data = None


class Spool(IntegrationTest):
    GW = "gw-spool"

    def start_world(self, spool_extra="", devices=2, mqtt_extra="", backlog=0):
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({str(u): {"values": LANES} for u in range(1, devices + 1)})
        self.spool_dir = env.path("spool")
        if backlog:
            write_backlog(self.spool_dir, backlog)
        self.sub = env.subscriber(self.broker, self.GW)
        self.cfg = gateway_config(self.GW, self.broker.uri, env, traffic_bus(self.sim.port, devices),
                                  mqtt_extra=mqtt_extra, spool_extra=spool_extra)
        self.gw = env.gateway(self.cfg, log_level="info")
        self.gw.wait_log("ready")

    def restart_gateway(self):
        self.gw = self.env.gateway(self.cfg, name=f"citygated-{len(self.env.processes)}", log_level="info")
        self.gw.wait_log("ready")  # never needs a hand: recovery always gets the daemon up

    def caught_up(self, timeout=60):
        """Waits until every reading numbered before a fresh health report has arrived; returns
        that report. Health is reported every second while connected."""
        sub = self.sub
        seen = len(sub.health)
        h = sub.wait_for(lambda: len(sub.health) > seen and sub.health[-1], 30, "a fresh health report")
        target = h.spool.next_seq - 1
        sub.wait_for(lambda: sub.readings and max(r.seq for r in sub.readings[-2000:]) >= target, timeout,
                     f"every reading up to seq {target}")
        return h, target

    def check_no_gap(self, upto, allowed_missing=0):
        """Every seq 1..upto arrived (but `allowed_missing`); duplicates are the same reading."""
        by_seq = {}
        dups = 0
        with self.sub.cond:
            readings = list(self.sub.readings)
        for r in readings:
            if r.seq > upto:
                continue
            raw = r.SerializeToString(deterministic=True)
            if r.seq in by_seq:
                dups += 1
                self.assertEqual(by_seq[r.seq], raw, f"seq {r.seq} names two different readings")
            else:
                by_seq[r.seq] = raw
        missing = [s for s in range(1, upto + 1) if s not in by_seq]
        if allowed_missing == 0:
            self.assertEqual(missing[:20], [], f"{len(missing)} seq(s) never arrived")
        else:
            self.assertEqual(len(missing), allowed_missing, "the gap does not match the dropped counter")
            self.assertEqual(missing, list(range(missing[0], missing[0] + len(missing))), "more than one gap")
        return dups, missing

    # 1. A 60 s broker outage while readings flow at a steady rate.
    def test_broker_outage_of_60_s_loses_nothing(self):
        self.start_world()
        sub, broker = self.sub, self.broker
        sub.wait_for(lambda: len(sub.readings) >= 80, 20, "readings before the outage")
        t0, n0 = time.monotonic(), len(sub.readings)
        sub.wait_for(lambda: len(sub.readings) >= n0 + 80, 20, "a rate measurement")
        rate = (len(sub.readings) - n0) / (time.monotonic() - t0)
        births = sum(1 for s in sub.status if s.state == status_pb2.ONLINE)
        broker.stop()
        outage_start = time.monotonic()
        before = spool_bytes(self.spool_dir)
        # The gateway keeps polling and spooling: the backlog grows on disk.
        wait_for(lambda: spool_bytes(self.spool_dir) > before + 20000, 30, interval=0.2, what="the spool to grow")
        # The outage itself (60 s) is the test's input, not a wait for an event.
        time.sleep(max(0.0, 60 - (time.monotonic() - outage_start)))
        self.assertTrue(self.gw.process.running())
        broker.start()
        sub.wait_for(lambda: sum(1 for s in sub.status if s.state == status_pb2.ONLINE) > births, 30,
                     "the birth after the outage")
        birth = [s for s in sub.status if s.state == status_pb2.ONLINE][-1]
        self.assertGreater(birth.spool.readings, 0.8 * 60 * rate, "the birth reports the backlog")
        self.assertEqual(birth.spool.dropped, 0)
        h, target = self.caught_up()
        dups, _ = self.check_no_gap(target)
        outage_readings = sum(1 for r in sub.readings if r.seq > n0 and r.seq <= target)
        self.assertGreater(outage_readings, 0.8 * 60 * rate)
        self.assertEqual(h.spool.dropped, 0)
        self.assertEqual(h.spool.corrupt_records, 0)
        self.assertGreater(h.spool.bytes_written, 0)
        self.assertIn("spool_bytes_written_per_day", h.counters)
        print(f"\n  outage 60 s at {rate:.0f} readings/s: seqs 1..{target} complete, {dups} duplicate(s), "
              f"backlog at the birth {birth.spool.readings}, spool bytes written {h.spool.bytes_written}")

    # 2. kill -9 at random points, ten times, while readings flow and while a backlog replays.
    def test_ten_kills_while_flowing_and_replaying_leave_no_gap(self):
        seed = int(os.environ.get("CITYGATE_SPOOL_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        backlog = 120000
        self.start_world(backlog=backlog)
        sub = self.sub
        modes = ["replay", "replay", "replay", "live", "outage", "live", "replay-after-outage", "live", "outage", "live"]
        starts = []
        during_replay = 0
        for i, mode in enumerate(modes):
            if mode == "replay":
                # Kill at a random point of the backlog's replay, which starts when the gateway
                # connects (each restart resends from the last saved acknowledgement).
                self.gw.wait_log("connected to the broker")
                time.sleep(rng.uniform(0.0, 0.3))  # a random point in time is the test's input
            elif mode == "live":
                n = len(sub.readings)
                sub.wait_for(lambda: len(sub.readings) >= n + 8, 20, "live readings")
                time.sleep(rng.uniform(0.0, 1.0))
            elif mode == "outage":
                self.broker.stop()
                time.sleep(rng.uniform(0.3, 1.5))
            elif mode == "replay-after-outage":
                self.broker.stop()
                time.sleep(2.0)  # a backlog of ~2 s of readings
                self.broker.start()
                n = len(sub.readings)
                sub.wait_for(lambda: len(sub.readings) > n, 20, "the replay after the outage")
                time.sleep(rng.uniform(0.0, 0.05))
            self.gw.kill()
            if mode == "outage":
                self.broker.start()
            self.restart_gateway()
            m = re.search(r"starting at seq (\d+)", self.gw.log())
            starts.append(int(m.group(1)))
            # The recovery line tells whether the kill interrupted the backlog's replay.
            m = re.search(r"(\d+) reading\(s\) to send from seq (\d+)", self.gw.log())
            if int(m.group(1)) > 0 and 0 < int(m.group(2)) <= backlog:
                during_replay += 1
            self.assertNotIn("refusing", self.gw.log())
        h, target = self.caught_up(120)
        dups, _ = self.check_no_gap(target)
        self.assertEqual(h.spool.corrupt_records, 0)
        self.assertEqual(h.spool.dropped, 0)
        self.assertEqual([f for f in os.listdir(self.spool_dir) if f.endswith(".corrupt")], [])
        self.assertEqual(len(starts), 10)
        self.assertTrue(all(s > backlog for s in starts), "the seq continues after the backlog")
        self.assertGreaterEqual(during_replay, 2, "kills during the replay")
        print(f"\n  seed {seed}: 10 kills ({during_replay} during the backlog's replay), seqs 1..{target} complete, "
              f"{dups} duplicate(s), restarts at {starts}")

    def outage_with_cap(self, policy):
        cap = 65536
        self.start_world(spool_extra=f"max_bytes: {cap} segment_bytes: {SEGMENT} when_full: {policy}", devices=3)
        sub, broker = self.sub, self.broker
        sub.wait_for(lambda: len(sub.readings) >= 40, 20, "readings before the outage")
        births = sum(1 for s in sub.status if s.state == status_pb2.ONLINE)
        broker.stop()
        # Watch the directory for the whole outage: it never holds more than the cap plus one segment.
        peak = 0
        deadline = time.monotonic() + 12
        full_since = None
        while time.monotonic() < deadline or full_since is None or time.monotonic() < full_since + 3:
            size = spool_bytes(self.spool_dir)
            peak = max(peak, size)
            self.assertLessEqual(size, cap + SEGMENT, "the spool outgrew its cap")
            if full_since is None and size > cap - SEGMENT - 2048:
                full_since = time.monotonic()
            self.assertLess(time.monotonic(), deadline + 30, "the spool never filled up")
            time.sleep(0.05)
        broker.start()
        sub.wait_for(lambda: sum(1 for s in sub.status if s.state == status_pb2.ONLINE) > births, 30,
                     "the birth after the outage")
        h, target = self.caught_up()
        return h, target, peak, cap

    # 3a. DROP_OLDEST: the gap the subscriber sees is exactly the dropped counter.
    def test_drop_oldest_counts_exactly_what_it_drops(self):
        h, target, peak, cap = self.outage_with_cap("DROP_OLDEST")
        self.assertIn("spool full: dropped", self.gw.log())
        self.assertGreater(h.spool.dropped, 0)
        dups, missing = self.check_no_gap(target, allowed_missing=h.spool.dropped)
        print(f"\n  DROP_OLDEST: cap {cap}, peak on disk {peak}, dropped {h.spool.dropped} = gap "
              f"{missing[0]}..{missing[-1]}, {dups} duplicate(s)")

    # 3b. BLOCK_SOURCES: sources pause, nothing is lost.
    def test_block_sources_loses_nothing(self):
        h, target, peak, cap = self.outage_with_cap("BLOCK_SOURCES")
        self.assertEqual(h.spool.dropped, 0)
        self.assertGreater(h.counters["modbus_polls_blocked"], 0, "the sources were paused")
        self.assertEqual(h.counters["lost_blocked"], 0)
        dups, _ = self.check_no_gap(target)
        print(f"\n  BLOCK_SOURCES: cap {cap}, peak on disk {peak}, polls paused "
              f"{h.counters['modbus_polls_blocked']}, seqs 1..{target} complete, {dups} duplicate(s)")

    # 5. Damaged, truncated and future spool files (the golden files) never crash the daemon.
    def test_golden_spools_start_or_refuse_cleanly(self):
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"1": {"values": LANES}})
        sub = self.sub = env.subscriber(self.broker, self.GW)
        cases = sorted(p for p in (REPO / "tests" / "data" / "spool").iterdir() if (p / "expected.txt").exists())
        self.assertGreaterEqual(len(cases), 19)
        for case in cases:
            with self.subTest(case=case.name):
                expected = {}
                for line in (case / "expected.txt").read_text().splitlines():
                    key, _, value = line.partition(":")
                    expected.setdefault(key, []).append(value.strip())
                spool_dir = env.path(f"spool-{case.name}")
                os.makedirs(spool_dir)
                for f in case.iterdir():
                    if f.name not in ("expected.txt", "README"):
                        Path(spool_dir, f.name).write_bytes(f.read_bytes())
                before = {f.name: f.read_bytes() for f in Path(spool_dir).iterdir()}
                cfg = gateway_config(self.GW, self.broker.uri, env, traffic_bus(self.sim.port, devices=1, poll_ms=200),
                                     spool_extra="").replace(f'dir: "{env.path("spool")}"', f'dir: "{spool_dir}"')
                gw = env.gateway(cfg, name=f"citygated-{case.name}", log_level="info")
                if "error" in expected:
                    code = gw.process.wait(20)
                    self.assertEqual(code, 1, gw.log())
                    self.assertIn(expected["error"][0], gw.log())
                    self.assertIn("refusing to start", gw.log())
                    after = {f.name: f.read_bytes() for f in Path(spool_dir).iterdir() if f.name != "spool.lock"}
                    self.assertEqual(after, before, "a refused spool must be left untouched")
                    continue
                gw.wait_log("ready")
                boot = re.search(r"boot ([0-9a-f]+) starting at seq (\d+)", gw.log())
                self.assertEqual(int(boot.group(2)), int(expected["next_seq"][0]))
                want = [int(x) for x in expected["seqs"][0].split()]

                def of_boot():
                    with sub.cond:
                        return [r.seq for b in sub.batches if b.boot_id == boot.group(1) for r in b.readings]
                # The recovered readings first, in order, then live ones numbered from next_seq.
                sub.wait_for(lambda: len([q for q in of_boot() if q >= int(boot.group(2))]) >= 4, 20, "live readings")
                got = of_boot()
                self.assertEqual(got[:len(want)], want)
                self.assertEqual(got[len(want)], int(boot.group(2)))
                h = sub.wait_for(lambda: [x for x in sub.health if x.boot_id == boot.group(1)], 20, "health")[-1]
                self.assertEqual(h.spool.corrupt_records, int(expected["corrupt"][0]))
                lost = int(expected.get("lost", ["0"])[0])
                self.assertEqual(h.spool.corrupt_readings, lost)
                if lost > 0:  # issue 12: damage is logged with the readings it cost, by seq
                    self.assertRegex(gw.log(), r"reading\(s\) lost|at most \d+\) are lost")
                self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
