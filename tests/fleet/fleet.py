#!/usr/bin/python3
"""The fleet test (issue 18): real citygated gateways and light simulated gateway sessions on a
three-node RabbitMQ cluster, through node outages, with a platform consumer checking that no
reading is lost. Run through tests/fleet/run.sh (README.md beside this file).

Scenario: warm up; stop one node for --outage s and start it again; settle; stop two nodes at
once, wait --outage s, start both; settle; drain. (--slice: the one-node event only.)

Figures: per event, for each gateway that was on the stopped node(s), the time from the node going
down until it was connected through another node (the daemon's log "connected to the broker at
<uri>", the light sessions' own record) and until the consumer received its next reading; after
the two-node outage, the time from the cluster being back until every gateway publishes again
(a reading of it received by the consumer); connect-rate peaks (connects per second, from the
clients and from RabbitMQ's logs); per gateway, readings missing at the consumer and duplicates.
Exit status 1 if a gateway misses a reading or an acceptance time is not met:
  one node down:        every gateway of that node connected through another within 5 s;
  two nodes down, back: every gateway publishing within 30 s of the cluster being back.
"""
import argparse
import collections
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
os.environ["TZ"] = "UTC"  # the daemons' log times are local time: make them UTC
time.tzset()

import harness  # noqa: E402
from harness import PYTHON, Env, Process, free_port, wait_for  # noqa: E402
from cluster import Cluster  # noqa: E402

ONE_NODE_LIMIT_S = 5.0
TWO_NODE_LIMIT_S = 30.0
LANES = [{"table": "ir", "address": lane * 10, "type": "UINT32", "value": 100 + lane} for lane in range(4)]
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) (\S+) (\w+): (.*)$")


class Aborted(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] fleet: {msg}", flush=True)


def gateway_config(gw_id, uris, gdir, sim_port, poll_ms):
    uri_list = ", ".join(f'"{u}"' for u in uris)
    return f"""
gateway_id: "{gw_id}"
location {{ lat: 47.05 lon: 8.31 }}
mqtt {{ uri: [{uri_list}] }}
control {{ socket: "{gdir}/control.sock" }}
runtime_dir: "{gdir}/run"
health_interval_s: 10
spool {{ dir: "{gdir}/spool" }}
modbus_bus {{ name: "cab" tcp {{ host: "127.0.0.1" port: {sim_port} }}
  device {{ id: "traffic-1" unit_id: 1 profile: "citygate-traffic-counter-4lane" poll_interval_ms: {poll_ms} }}
}}
"""


def parse_daemon_log(text):
    """[(unix time, 'connected'|'lost', uri)] from a citygated log."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        msg = m.group(4)
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if msg.startswith("connected to the broker at "):
            out.append((t, "connected", msg[len("connected to the broker at "):].split(";")[0]))
        elif msg.startswith("lost the broker"):
            out.append((t, "lost", ""))
    return out


def rabbit_connects(nodes):
    """Unix times of every 'accepting MQTT connection' in the nodes' logs."""
    times = []
    pat = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\+00:00 \[info\] <[^>]*> accepting MQTT connection")
    for n in nodes:
        for f in n.log_files():
            for line in f.read_text(errors="replace").splitlines():
                m = pat.match(line)
                if m:
                    ts = m.group(1)[:26]
                    times.append(datetime.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S.%f").replace(
                        tzinfo=datetime.timezone.utc).timestamp())
    return times


def rabbit_accepts(nodes):
    """client id -> [(unix time, mqtt uri)] of every 'accepting MQTT connection' in the nodes' logs:
    the broker's own word on which node a client reached."""
    out = collections.defaultdict(list)
    pat = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\+00:00 \[info\] <[^>]*> accepting MQTT connection "
                     r"<[^>]*> \(\S+ -> 127\.0\.0\.1:(\d+), client id: ([^)]*)\)")
    for n in nodes:
        for f in n.log_files():
            for line in f.read_text(errors="replace").splitlines():
                m = pat.match(line)
                if m:
                    t = datetime.datetime.strptime(m.group(1)[:26], "%Y-%m-%d %H:%M:%S.%f").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
                    out[m.group(3)].append((t, f"tcp://127.0.0.1:{m.group(2)}"))
    return out


def peak_per_second(times, start=None, end=None):
    buckets = collections.Counter(int(t) for t in times if (start is None or t >= start) and (end is None or t < end))
    if not buckets:
        return 0, None
    sec, n = max(buckets.items(), key=lambda kv: kv[1])
    return n, sec


class Fleet:
    def __init__(self, args):
        self.args = args
        self.env = Env("fleet")
        self.dir = Path(self.env.dir)
        self.cluster = None
        self.gateways = {}  # id -> harness.Gateway
        self.light = []     # Process
        self.consumer = None
        self.db = None      # PostgreSQL of the reference consumer (--ingest)
        self.ingest = None  # citygate-ingest
        self.timeline = []  # (unix time, text)
        self.events = []    # dict per outage event
        self.figures = {}
        self.failures = []

    def mark(self, text):
        t = time.time()
        self.timeline.append((t, text))
        log(text)
        return t

    # --- set-up --------------------------------------------------------------------------------
    def start(self):
        a = self.args
        self.cluster = Cluster(self.dir / "rabbitmq", free_port, queue_type="classic" if a.classic else "quorum")
        log(f"starting a three-node RabbitMQ cluster in {self.cluster.dir} ({self.cluster.queue_type} queues)")
        took = self.cluster.start()
        self.figures["cluster_start_s"] = round(took, 1)
        self.mark(f"cluster up in {took:.1f} s: {' '.join(self.cluster.uris)}")
        uris = self.cluster.uris

        # The platform consumer: on node 3 first (the node the scenario never stops alone).
        self.readings_path = self.dir / "consumer.tsv"
        ready = self.dir / "consumer.ready"
        cons_uris = uris[2:] + uris[:2]
        amqp = [f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/" for n in self.cluster.nodes]
        amqp = amqp[2:] + amqp[:2]
        cmd = a.consumer or f"{PYTHON} {HERE / 'consumer_mqtt.py'} --mqtt {{mqtt}} --out {{out}} --ready {{ready}}"
        cmd = cmd.format(mqtt=",".join(cons_uris), amqp=",".join(amqp), out=self.readings_path, ready=ready)
        self.consumer = self.env._track(Process(self.env, "consumer", shlex.split(cmd)).start())
        wait_for(lambda: ready.exists() or not self.consumer.running(), 60, what="the consumer to subscribe")
        if not self.consumer.running():
            raise RuntimeError("the consumer exited:\n" + self.consumer.log())
        self.mark("consumer subscribed")
        if a.ingest:
            self.start_ingest(cons_uris)

        self.sim = self.env.modbus({"1": {"values": LANES}}, name="modbus")
        for i in range(a.gateways):
            gw_id = f"fleet-gw-{i:02d}"
            gdir = self.dir / gw_id
            gdir.mkdir()
            rotated = uris[i % 3:] + uris[:i % 3]
            cfg = gateway_config(gw_id, rotated, gdir, self.sim.port, a.poll_ms)
            self.gateways[gw_id] = self.env.gateway(cfg, name=gw_id, log_level="debug")
        per = max(1, -(-a.light // max(1, a.light_procs)))
        for p in range(a.light_procs):
            first, count = p * per, min(per, a.light - p * per)
            if count <= 0:
                break
            argv = [PYTHON, HERE / "light.py", "--uris", ",".join(uris), "--count", count, "--first", first,
                    "--period", a.light_period, "--ramp", a.ramp, "--events", self.dir / f"light-{p}.events",
                    "--summary", self.dir / f"light-{p}.summary.json"]
            self.light.append(self.env._track(Process(self.env, f"light-{p}", argv).start()))
        self.mark(f"{a.gateways} citygated and {a.light} light sessions started")
        wait_for(lambda: all(self.connected_now(g) for g in self.clients()), 60 + a.ramp, interval=0.5,
                 what="every gateway to connect")
        self.mark("every gateway connected")
        since = time.time()
        wait_for(lambda: self.publishing(self.clients(), since), 60, interval=1,
                 what="readings of every gateway at the consumer")
        self.mark("the consumer receives every gateway's readings")

    def start_ingest(self, uris):
        """The reference consumer as the platform: citygate-ingest into PostgreSQL, node 3 first,
        a persistent session (a quorum queue), deduping on (gateway_id, epoch, seq)."""
        import test_ingest  # tests/integration: the throwaway PostgreSQL of the ingest tests
        self.db = self.env._track(test_ingest.Postgres(self.env))
        self.db.start()
        argv = [harness.BIN / "citygate-ingest", "--database", self.db.conninfo, "--client-id", "fleet-ingest",
                "--grace-ms", "5000", "--summary-interval-s", "10"]
        for u in uris:
            argv += ["--broker", u]
        self.ingest = self.env._track(Process(self.env, "citygate-ingest", argv).start())
        wait_for(lambda: "mqtt: connected" in self.ingest.log() or not self.ingest.running(), 60,
                 what="citygate-ingest to connect")
        if not self.ingest.running():
            raise RuntimeError("citygate-ingest exited:\n" + self.ingest.log())
        self.mark("citygate-ingest subscribed (PostgreSQL on port %d)" % self.db.port)

    def check_ingest(self):
        """Every gateway's rows in PostgreSQL hold seq 1..last (the last seq taken at the drain;
        the daemons go on reading after it), once each: the primary key (gateway_id, epoch, seq)
        makes a duplicate impossible, a hole is a missing reading."""
        def short():
            have = {g: int(n) for g, n in self.db.query(
                "SELECT gateway_id, count(*) FROM readings r JOIN (VALUES "
                + ", ".join(f"('{g}', {n})" for g, n in self.expected.items())
                + ") AS e(gw, last) ON r.gateway_id = e.gw AND r.seq <= e.last GROUP BY gateway_id")}
            return {g: n - have.get(g, 0) for g, n in self.expected.items() if have.get(g, 0) != n}
        try:
            wait_for(lambda: not short(), self.args.drain_timeout, interval=1,
                     what="every reading in citygate-ingest's table")
        except AssertionError:
            pass
        missing = short()
        rows = int(self.db.value("SELECT count(*) FROM readings"))
        streams = int(self.db.value("SELECT count(DISTINCT (gateway_id, epoch)) FROM readings"))
        self.figures["ingest"] = {"rows": rows, "streams": streams, "gateways_missing_rows": missing}
        self.mark(f"citygate-ingest: {rows} rows in {streams} (gateway, epoch) streams, "
                  f"{len(missing)} gateways with readings missing")
        for g, n in missing.items():
            self.failures.append(f"{g}: {n} readings missing in citygate-ingest's PostgreSQL table")

    # --- what the clients did ------------------------------------------------------------------
    def clients(self):
        return list(self.gateways) + [f"fleet-light-{i:04d}" for i in range(self.args.light)]

    def connection_log(self):
        """gw -> [(t, 'connected'|'lost'|'failed', uri)], sorted."""
        out = collections.defaultdict(list)
        # Which node a citygated reached: its log says "connected to the broker at <uri>" with the
        # URI Paho reports, which can be wrong with a server list (seen: the first URI logged
        # while RabbitMQ's log shows the client accepted on the second). RabbitMQ's own accept
        # line (client id and port) is the truth; every disagreement is counted.
        accepts = rabbit_accepts(self.cluster.nodes) if self.cluster else {}
        self.uri_mismatches = []
        for gw_id, g in self.gateways.items():
            evs = []
            for (t, kind, uri) in parse_daemon_log(g.log()):
                if kind == "connected":
                    near = [u for (ta, u) in accepts.get(gw_id, []) if t - 5 <= ta <= t + 0.5]
                    if near and near[-1] != uri:
                        self.uri_mismatches.append((gw_id, t, uri, near[-1]))
                        uri = near[-1]
                evs.append((t, kind, uri))
            out[gw_id] = evs
        for p in range(len(self.light)):
            path = self.dir / f"light-{p}.events"
            if path.exists():
                for line in path.read_text().splitlines():
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue  # a line being written
                    out[e["gw"]].append((e["t"], e["ev"], e["uri"]))
        for v in out.values():
            v.sort()
        return out

    def connected_now(self, gw, conn=None):
        conn = conn if conn is not None else self._conn_cache()
        evs = [e for e in conn.get(gw, []) if e[1] in ("connected", "lost")]
        return evs and evs[-1][1] == "connected"

    def _conn_cache(self):
        now = time.monotonic()
        if getattr(self, "_cache_t", 0) < now - 0.4:
            self._cache = self.connection_log()
            self._cache_t = now
        return self._cache

    def arrivals(self):
        """gw -> sorted arrival times; and (gw, epoch) -> Counter(seq)."""
        times = collections.defaultdict(list)
        seqs = collections.defaultdict(collections.Counter)
        try:
            text = self.readings_path.read_text()
        except FileNotFoundError:
            return times, seqs
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) != 4:
                continue
            t, gw, epoch, seq = parts
            times[gw].append(float(t))
            seqs[(gw, epoch)][int(seq)] += 1
        for v in times.values():
            v.sort()
        return times, seqs

    def publishing(self, gws, since):
        times, _ = self.arrivals()
        return all(times.get(g) and times[g][-1] >= since for g in gws)

    # --- the scenario --------------------------------------------------------------------------
    def settle(self, seconds, why):
        log(f"{why}: {seconds:.0f} s")
        time.sleep(seconds)  # the scenario's own pace (a fleet running steadily), not a wait for an event
        self.check_alive()

    def check_alive(self):
        for gw_id, g in self.gateways.items():
            if not g.process.running():
                raise RuntimeError(f"{gw_id} exited:\n{g.log()[-3000:]}")
        for p in self.light:
            if not p.running():
                raise RuntimeError(f"{p.name} exited:\n{p.log()[-3000:]}")
        if not self.consumer.running():
            raise RuntimeError(f"the consumer exited:\n{self.consumer.log()[-3000:]}")

    def outage(self, indexes, name):
        nodes = [self.cluster.nodes[i] for i in indexes]
        label = "+".join(n.name.split("@")[0][-2:] for n in nodes)
        ev = {"name": name, "nodes": [n.name for n in nodes], "uris": [n.mqtt_uri for n in nodes]}
        ev["stop_issued"] = self.mark(f"{name}: stopping {label}")
        threads = [threading.Thread(target=n.kill if self.args.kill else n.stop) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ev["stopped"] = self.mark(f"{name}: {label} stopped ({time.time() - ev['stop_issued']:.1f} s)")
        wait = self.args.outage - (time.time() - ev["stopped"])
        if wait > 0:
            log(f"{name}: outage, {wait:.0f} s more")
            time.sleep(wait)  # the outage's length is the scenario, not an event to wait for
        ev["start_issued"] = self.mark(f"{name}: starting {label}")
        for n in nodes:
            n.start()
        for n in nodes:
            n.await_startup()
        ev["back"] = self.mark(f"{name}: {label} listening again ({time.time() - ev['start_issued']:.1f} s)")
        self.cluster.await_running(set(self.cluster.names), timeout=180)
        ev["rejoined"] = self.mark(f"{name}: cluster has every node running again")
        self.events.append(ev)
        self.check_alive()
        return ev

    def run(self):
        a = self.args
        self.start()
        self.settle(a.warmup, "warm-up (links older than the 30 s after which the backoff resets)")
        self.outage([0], "one node down")
        self.settle(a.settle, "settle")
        if not a.slice:
            self.outage([0, 1], "two nodes down")
            self.settle(a.settle, "settle")
        self.drain()
        self.analyse()

    # --- drain and figures ---------------------------------------------------------------------
    def ctl_spool(self, gw_id):
        sock = self.dir / gw_id / "control.sock"
        r = subprocess.run([str(harness.BIN / "citygatectl"), "--socket", str(sock), "spool", "--json"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"citygatectl spool ({gw_id}): {r.stdout}{r.stderr}")
        j = json.loads(r.stdout)

        def find(obj, *keys):
            if isinstance(obj, dict):
                for k in keys:
                    if k in obj:
                        return obj[k]
                for v in obj.values():
                    got = find(v, *keys)
                    if got is not None:
                        return got
            elif isinstance(obj, list):
                for v in obj:
                    got = find(v, *keys)
                    if got is not None:
                        return got
            return None
        return int(find(j, "next_seq", "nextSeq") or 0), int(find(j, "delivered_seq", "deliveredSeq") or 0)

    def drain(self):
        self.drain_started = self.mark("drain: light sessions stop making readings and flush; daemons' seq taken now")
        for p in self.light:
            p.signal(signal.SIGTERM)
        self.expected = {}
        for gw_id in self.gateways:
            next_seq, _ = self.ctl_spool(gw_id)
            self.expected[gw_id] = next_seq - 1
        for p in self.light:
            p.wait(self.args.drain_timeout + 30)
        for p in range(len(self.light)):
            summary = json.loads((self.dir / f"light-{p}.summary.json").read_text())
            for gw, s in summary.items():
                self.expected[gw] = s["last_seq"]
                if s["unacked"]:
                    self.failures.append(f"{gw}: {s['unacked']} readings never acknowledged by the broker")

        def complete():
            _, seqs = self.arrivals()
            got = collections.defaultdict(set)
            for (gw, _), c in seqs.items():
                got[gw].update(c)
            return all(len(got[gw] & set(range(1, n + 1))) == n for gw, n in self.expected.items())
        try:
            wait_for(complete, self.args.drain_timeout, interval=1, what="every reading at the consumer")
            self.mark("drain: the consumer has every reading")
        except AssertionError:
            self.mark("drain: timed out; readings are missing")
        time.sleep(2)  # late duplicates still in flight are counted too
        if self.ingest:
            self.check_ingest()

    def analyse(self):
        a = self.args
        conn = self.connection_log()
        times, seqs = self.arrivals()
        fig = self.figures
        fig["gateways"] = a.gateways
        fig["light_sessions"] = a.light
        fig["queue_type"] = self.cluster.queue_type
        fig["events"] = []

        def first_after(gw, t, kind="connected", exclude=()):
            for (et, e, uri) in conn.get(gw, []):
                if et >= t and e == kind and uri not in exclude:
                    return et
            return None

        def arrival_after(gw, t):
            for x in times.get(gw, []):
                if x >= t:
                    return x
            return None

        def connected_at(gw, t):
            """The uri a gateway was connected through at time t (None: not connected)."""
            uri = None
            for (et, e, u) in conn.get(gw, []):
                if et > t:
                    break
                if e == "connected":
                    uri = u
                elif e == "lost":
                    uri = None
            return uri

        for k, ev in enumerate(self.events):
            e = {"name": ev["name"], "nodes": ev["nodes"]}
            # This event's window: from its stop to 60 s after the nodes were back, or the next event.
            window_end = ev["back"] + 60
            if k + 1 < len(self.events):
                window_end = min(window_end, self.events[k + 1]["stop_issued"])
            window_end = min(window_end, self.drain_started)  # the drain's disconnects are not connects
            t0 = ev["stop_issued"]
            affected = [g for g in self.clients() if connected_at(g, t0) in ev["uris"]]
            losses = {g: first_after(g, t0, "lost") for g in affected}
            down = min([t for t in losses.values() if t], default=t0)
            e["node_down_after_stop_issued_s"] = round(down - t0, 2)
            e["stop_took_s"] = round(ev["stopped"] - t0, 1)
            e["restart_took_s"] = round(ev["back"] - ev["start_issued"], 1)
            e["affected"] = len(affected)
            e["affected_daemons"] = [g for g in affected if g in self.gateways]
            per = {}
            for g in affected:
                lost = losses[g] or down
                re_t = first_after(g, lost, "connected", exclude=ev["uris"])
                arr = arrival_after(g, re_t) if re_t else None
                per[g] = {"lost_after_down_s": round(lost - down, 2),
                          "reconnected_s": round(re_t - down, 2) if re_t else None,
                          "delivered_s": round(arr - down, 2) if arr else None,
                          "via": next((u for (et, k, u) in conn[g] if et == re_t and k == "connected"), None)}
            e["per_gateway"] = per

            def stats(key, subset):
                vals = [per[g][key] for g in subset if per[g][key] is not None]
                missing = [g for g in subset if per[g][key] is None]
                if not vals:
                    return {"n": 0, "never": len(missing)}
                vals.sort()
                return {"n": len(vals), "never": len(missing), "median": vals[len(vals) // 2],
                        "p95": vals[min(len(vals) - 1, int(len(vals) * 0.95))], "max": vals[-1]}
            daemons = [g for g in affected if g in self.gateways]
            lights = [g for g in affected if g not in self.gateways]
            e["reconnect_daemons"] = stats("reconnected_s", daemons)
            e["reconnect_light"] = stats("reconnected_s", lights)
            e["delivered_daemons"] = stats("delivered_s", daemons)
            e["delivered_light"] = stats("delivered_s", lights)
            if len(ev["nodes"]) == 1:
                late = [g for g in affected if per[g]["reconnected_s"] is None
                        or per[g]["reconnected_s"] > ONE_NODE_LIMIT_S]
                e["acceptance"] = f"every gateway of the node connected through another within {ONE_NODE_LIMIT_S:.0f} s"
                e["late"] = sorted(late)
                if late:
                    self.failures.append(f"{ev['name']}: {len(late)} gateways not connected through another node "
                                         f"within {ONE_NODE_LIMIT_S:.0f} s: {', '.join(sorted(late)[:10])}")
            else:
                back = ev["back"]
                e["back_after_start_issued_s"] = round(back - ev["start_issued"], 1)
                pubs, reconnect_after_back = {}, {}
                for g in self.clients():
                    arr = arrival_after(g, back)
                    pubs[g] = round(arr - back, 2) if arr else None
                    uri = connected_at(g, back)
                    reconnect_after_back[g] = 0.0 if uri else (
                        round(first_after(g, back) - back, 2) if first_after(g, back) else None)
                vals = sorted(v for v in pubs.values() if v is not None)
                e["all_publishing_after_back_s"] = vals[-1] if len(vals) == len(pubs) else None
                e["publishing_after_back"] = {"median": vals[len(vals) // 2] if vals else None,
                                              "p95": vals[int(len(vals) * 0.95)] if vals else None,
                                              "never": len(pubs) - len(vals)}
                rc = sorted(v for v in reconnect_after_back.values() if v is not None)
                e["all_connected_after_back_s"] = rc[-1] if len(rc) == len(pubs) else None
                e["connected_at_back"] = sum(1 for v in reconnect_after_back.values() if v == 0.0)
                e["daemons_publishing_after_back_s"] = {g: pubs[g] for g in self.gateways}
                e["daemons_connected_after_back_s"] = {g: reconnect_after_back[g] for g in self.gateways}
                late = sorted(g for g, v in pubs.items() if v is None or v > TWO_NODE_LIMIT_S)
                e["acceptance"] = f"every gateway publishing within {TWO_NODE_LIMIT_S:.0f} s of the cluster being back"
                e["late"] = late
                if late:
                    self.failures.append(f"{ev['name']}: {len(late)} gateways not publishing within "
                                         f"{TWO_NODE_LIMIT_S:.0f} s of the cluster being back: {', '.join(late[:10])}")
            # Connect rates around the event, and when the peak second was (relative to the stop).
            client_connects = [t for g in conn for (t, kind, _) in conn[g] if kind == "connected"]
            rabbit = rabbit_connects(self.cluster.nodes)
            n, sec = peak_per_second(client_connects, t0, window_end)
            e["connect_peak_per_s_clients"] = n
            e["connect_peak_second_after_stop_issued"] = round(sec - t0) if sec is not None else None
            e["connect_peak_per_s_rabbitmq"] = peak_per_second(rabbit, t0, window_end)[0]
            e["connects_in_window"] = sum(1 for t in client_connects if t0 <= t < window_end)
            fig["events"].append(e)

        client_connects = [t for g in conn for (t, k, _) in conn[g] if k == "connected"]
        fig["connect_peak_per_s_clients_whole_run"] = peak_per_second(client_connects)[0]
        fig["connect_peak_per_s_rabbitmq_whole_run"] = peak_per_second(rabbit_connects(self.cluster.nodes))[0]
        failed_attempts = sum(1 for g in conn for (_, k, _) in conn[g] if k == "failed")
        fig["light_failed_attempts"] = failed_attempts
        fig["citygated_logged_wrong_broker"] = [
            {"gateway": g, "t": round(t, 3), "logged": logged, "rabbitmq_accepted_on": actual}
            for (g, t, logged, actual) in self.uri_mismatches]

        # Loss and duplicates, per gateway.
        per_gw = {}
        for gw, n in self.expected.items():
            epochs = {ep: c for (g, ep), c in seqs.items() if g == gw}
            got = collections.Counter()
            for c in epochs.values():
                got.update(c)
            want = set(range(1, n + 1))
            missing = len(want - set(got))
            dups = sum(v - 1 for s, v in got.items() if v > 1)
            per_gw[gw] = {"expected": n, "missing": missing, "duplicates": dups, "epochs": len(epochs)}
            if missing:
                self.failures.append(f"{gw}: {missing} of {n} readings missing at the consumer")
            if n == 0:
                self.failures.append(f"{gw}: published nothing")
        fig["per_gateway_loss"] = per_gw
        fig["readings_expected"] = sum(v["expected"] for v in per_gw.values())
        fig["readings_missing"] = sum(v["missing"] for v in per_gw.values())
        fig["duplicates"] = sum(v["duplicates"] for v in per_gw.values())
        fig["duplicates_daemons"] = sum(v["duplicates"] for g, v in per_gw.items() if g in self.gateways)
        fig["failures"] = self.failures
        self.report()

    def report(self):
        fig = self.figures
        out = Path(self.args.figures) if self.args.figures else self.dir / "figures.json"
        out.write_text(json.dumps(fig, indent=1))
        p = print
        p("\n==================== fleet figures ====================")
        p(f"cluster: 3 RabbitMQ 3.10 nodes, {fig['queue_type']} queues; started in {fig['cluster_start_s']} s")
        p(f"fleet: {fig['gateways']} citygated + {fig['light_sessions']} light sessions")
        for e in fig["events"]:
            p(f"\n--- {e['name']} ({', '.join(n.split('@')[0] for n in e['nodes'])}): "
              f"stop took {e['stop_took_s']} s, restart {e['restart_took_s']} s; "
              f"{e['affected']} gateways were on it ({len(e['affected_daemons'])} citygated)")
            p("  times from the node going down (first link lost), seconds:")
            p(f"    citygated reconnected through another node: {e['reconnect_daemons']}")
            p(f"    citygated next reading at the consumer:     {e['delivered_daemons']}")
            p(f"    light     reconnected through another node: {e['reconnect_light']}")
            p(f"    light     next reading at the consumer:     {e['delivered_light']}")
            for g in e["affected_daemons"]:
                p(f"    {g}: {e['per_gateway'][g]}")
            if "all_publishing_after_back_s" in e:
                p(f"  cluster back (both nodes listening) {e['back_after_start_issued_s']} s after their start")
                p(f"  every gateway publishing (a reading at the consumer) {e['all_publishing_after_back_s']} s "
                  f"after the cluster was back; {e['publishing_after_back']}")
                p(f"  every gateway connected {e['all_connected_after_back_s']} s after; "
                  f"{e['connected_at_back']} were connected at that moment")
                p(f"  citygated publishing after back: {e['daemons_publishing_after_back_s']}")
                p(f"  citygated connected after back:  {e['daemons_connected_after_back_s']}")
            p(f"  connects: {e['connects_in_window']} in the event's window; peak {e['connect_peak_per_s_clients']}/s "
              f"(clients, {e['connect_peak_second_after_stop_issued']} s after the stop), "
              f"{e['connect_peak_per_s_rabbitmq']}/s (RabbitMQ's log)")
            p(f"  acceptance: {e['acceptance']}: {'met' if not e['late'] else 'NOT met: ' + ', '.join(e['late'][:10])}")
        p(f"\nconnect peak, whole run: {fig['connect_peak_per_s_clients_whole_run']}/s (clients), "
          f"{fig['connect_peak_per_s_rabbitmq_whole_run']}/s (RabbitMQ)")
        for m in fig["citygated_logged_wrong_broker"]:
            p(f"citygated logged the wrong broker: {m['gateway']} at {m['t']}: logged {m['logged']}, "
              f"RabbitMQ accepted it on {m['rabbitmq_accepted_on']} (the figures use RabbitMQ's)")
        p(f"readings: {fig['readings_expected']} expected, {fig['readings_missing']} missing, "
          f"{fig['duplicates']} duplicates ({fig['duplicates_daemons']} from citygated)")
        for g, v in fig["per_gateway_loss"].items():
            if g in self.gateways or v["missing"]:
                p(f"  {g}: {v}")
        if "ingest" in fig:
            i = fig["ingest"]
            p(f"citygate-ingest (PostgreSQL): {i['rows']} rows in {i['streams']} streams, "
              f"{len(i['gateways_missing_rows'])} gateways with readings missing")
        p(f"figures: {out}")
        p(f"RESULT: {'PASSED' if not self.failures else 'FAILED'}")
        for f in self.failures:
            p(f"  - {f}")

    def close(self):
        failed = bool(self.failures)
        for p in self.light:
            p.stop()
        if self.consumer:
            self.consumer.stop()
        if self.ingest:
            self.ingest.stop()
        for g in self.gateways.values():
            g.stop()
        if self.sim:
            self.sim.stop()
        if self.cluster:
            log("stopping the cluster")
            self.cluster.stop()
        keep = self.args.keep or failed
        if keep:
            os.environ["CITYGATE_KEEP_TMP"] = "1"
        self.env.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateways", type=int, default=None, help="real citygated (default 10; slice 3)")
    ap.add_argument("--light", type=int, default=None, help="light sessions (default 300; slice 30)")
    ap.add_argument("--light-procs", type=int, default=2)
    ap.add_argument("--light-period", type=float, default=5.0, help="s between a light session's readings")
    ap.add_argument("--poll-ms", type=int, default=1000, help="citygated poll interval (4 readings a poll)")
    ap.add_argument("--slice", action="store_true", help="the CI slice: 3 + 30, one node stop")
    ap.add_argument("--classic", action="store_true", help="classic queues instead of quorum")
    ap.add_argument("--consumer", help="platform consumer command; {mqtt} {amqp} {out} {ready} are filled in")
    ap.add_argument("--no-ingest", dest="ingest", action="store_false",
                    help="without the reference consumer (citygate-ingest into PostgreSQL)")
    ap.add_argument("--outage", type=float, default=20.0, help="s a stopped node stays down")
    ap.add_argument("--kill", action="store_true", help="SIGKILL the nodes instead of rabbitmqctl stop")
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--settle", type=float, default=None)
    ap.add_argument("--ramp", type=float, default=10.0)
    ap.add_argument("--drain-timeout", type=float, default=90.0)
    ap.add_argument("--timeout", type=int, default=None, help="hard limit of the whole run, s")
    ap.add_argument("--figures", help="write the figures (JSON) here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.gateways is None:
        args.gateways = 3 if args.slice else 10
    if args.light is None:
        args.light = 30 if args.slice else 300
    if args.warmup is None:
        args.warmup = 15 if args.slice else 35
    if args.settle is None:
        args.settle = 10 if args.slice else 35
    if args.timeout is None:
        args.timeout = 540 if args.slice else 1200
    if args.light_procs > 1 and args.light < 100:
        args.light_procs = 1
    if not (Path("/usr/lib/rabbitmq/bin/rabbitmq-server")).exists():
        print("fleet: rabbitmq-server is not installed (toolchains/install-deps.sh fleet): skipped")
        sys.exit(77)
    if args.gateways and not (harness.BIN / "citygated").exists():
        sys.exit(f"fleet: no {harness.BIN / 'citygated'}: build first (cmake --build --preset default)")

    def abort(signum, frame):
        raise Aborted(f"signal {signum}" if signum != signal.SIGALRM else f"the run took over {args.timeout} s")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, abort)
    signal.alarm(args.timeout)
    fleet = Fleet(args)
    fleet.sim = None
    status = 1
    try:
        fleet.run()
        status = 0 if not fleet.failures else 1
    except BaseException as e:  # noqa: BLE001  (everything stops below, whatever happened)
        fleet.failures.append(f"aborted: {type(e).__name__}: {e}")
        log(f"ABORTED: {type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
    finally:
        signal.alarm(0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # the clean-up itself is not interrupted
        fleet.close()
        if fleet.failures:
            log(f"kept {fleet.dir} for its logs")
    sys.exit(status)


if __name__ == "__main__":
    main()
