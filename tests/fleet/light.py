#!/usr/bin/python3
"""Light simulated gateways: many MQTT sessions in one process (paho-mqtt clients on one selector
loop, no thread per session), each publishing a citygate.v1.ReadingBatch with gateway_id, epoch
and a strictly increasing seq on citygate/v1/<id>/readings at QoS 1, at a low rate.

They reconnect by the daemon's rule (gateway/src/outputs/mqtt/session.cpp, paho_client.cpp): after a
lost link or a failed attempt, wait uniform(0, min(cap, base * 2^attempt)) (full jitter; base 1 s,
cap 20 s; the attempt count resets once a link held 30 s); an attempt tries the brokers in list
order (Paho's server list) until one accepts, each with a 10 s connect timeout. Readings made while
the link is down are kept (as the daemon's spool keeps them) and every unacknowledged one is
published again after a reconnect, in seq order: nothing is lost, a duplicate is possible.

    light.py --uris tcp://127.0.0.1:P1,tcp://...:P2,... --count 150 --first 0 --period 5 \
             --events EVENTS.jsonl --summary SUMMARY.json [--prefix fleet-light]

Session i lists the brokers rotated by i (session i's first broker is uris[i % n]). SIGTERM: stop
making readings, wait (at most --drain-timeout s) until every reading is acknowledged, write the
summary (per session: epoch, last seq made, unacknowledged left), exit.
EVENTS (JSON lines, wall-clock unix time): {"t", "gw", "ev": "connected"|"lost"|"failed", "uri"}.
"""
import argparse
import collections
import json
import math
import os
import random
import resource
import selectors
import signal
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
sys.path.insert(0, str(BUILD / "python"))
from citygate.v1 import reading_pb2  # noqa: E402  (generated)

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 20.0
STABLE_AFTER_S = 30.0
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30


def parse_uri(uri):
    rest = uri.split("://", 1)[1]
    host, port = rest.rsplit(":", 1)
    return host, int(port)


class Session:
    def __init__(self, sim, index, gw_id, uris):
        self.sim = sim
        self.id = gw_id
        self.uris = uris[index % len(uris):] + uris[:index % len(uris)]
        self.epoch = os.urandom(8).hex()
        self.boot_id = os.urandom(8).hex()
        self.rng = random.Random()
        self.client = None
        self.state = "backoff"  # backoff | connecting | connected
        self.uri_index = 0
        self.attempt = 0
        self.next_attempt = time.monotonic()  # first connect at once (staggered by the caller)
        self.connecting_since = None
        self.connected_at = None
        self.seq = 0
        self.unacked = collections.OrderedDict()  # seq -> payload
        self.mid_seq = {}
        self.next_reading = time.monotonic() + self.rng.uniform(0, sim.period)
        self.registered = None  # (sock, events)

    # --- readings ---------------------------------------------------------------------------
    def make_reading(self, now_wall):
        self.seq += 1
        b = reading_pb2.ReadingBatch(gateway_id=self.id, boot_id=self.boot_id, epoch=self.epoch)
        r = b.readings.add(seq=self.seq, sensor_id=f"{self.id}-parking")
        r.observed_at.FromNanoseconds(int(now_wall * 1e9))
        r.quality = reading_pb2.GOOD
        r.parking_spot.status = reading_pb2.OCCUPIED if self.seq % 2 else reading_pb2.FREE
        self.unacked[self.seq] = b.SerializeToString()
        if self.state == "connected":
            self.publish(self.seq)

    def publish(self, seq):
        info = self.client.publish(f"citygate/v1/{self.id}/readings", self.unacked[seq], qos=1)
        if info.rc == paho.MQTT_ERR_SUCCESS or info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            self.mid_seq[info.mid] = seq
        # MQTT_ERR_NO_CONN: the link just went; it is published again after the reconnect

    def on_publish(self, client, userdata, mid):
        if client is not self.client:
            return
        seq = self.mid_seq.pop(mid, None)
        if seq is not None:
            self.unacked.pop(seq, None)

    # --- connection -------------------------------------------------------------------------
    def start_attempt(self):
        self.state = "connecting"
        self.uri_index = 0
        self.try_uri()

    def try_uri(self):
        """Tries uris[uri_index], then the next ones, as Paho's server list does."""
        while self.uri_index < len(self.uris):
            uri = self.uris[self.uri_index]
            host, port = parse_uri(uri)
            c = paho.Client(client_id=self.id, clean_session=True, protocol=paho.MQTTv311)
            c.max_inflight_messages_set(20)
            c.on_connect = self.on_connect
            c.on_disconnect = self.on_disconnect
            c.on_publish = self.on_publish
            self.client = c
            try:
                c.connect(host, port, keepalive=KEEPALIVE_S)
            except OSError:
                self.drop_client()
                self.uri_index += 1
                continue
            self.connecting_since = time.monotonic()
            self.sim.watch(self)
            return
        self.sim.event(self, "failed", "")
        self.schedule_reconnect()

    def on_connect(self, client, userdata, flags, rc):
        if client is not self.client:
            return
        if rc != 0:
            self.drop_client()
            self.uri_index += 1
            self.try_uri()
            return
        self.state = "connected"
        self.connected_at = time.monotonic()
        self.connecting_since = None
        self.sim.event(self, "connected", self.uris[self.uri_index])
        self.mid_seq.clear()
        for seq in list(self.unacked):
            self.publish(seq)

    def on_disconnect(self, client, userdata, rc):
        if client is not self.client:
            return
        was = self.state
        self.drop_client()
        if was == "connected":
            self.sim.event(self, "lost", self.uris[self.uri_index])
            if self.connected_at and time.monotonic() - self.connected_at >= STABLE_AFTER_S:
                self.attempt = 0
            self.connected_at = None
            self.schedule_reconnect()
        elif was == "connecting":
            self.uri_index += 1
            self.try_uri()

    def drop_client(self):
        c, self.client = self.client, None
        self.sim.unwatch(self)
        self.mid_seq.clear()
        if c is not None:
            c.on_connect = c.on_disconnect = c.on_publish = None
            try:
                c.socket() and c.socket().close()
            except OSError:
                pass
            try:
                c._reset_sockets()  # paho 1.6: closes the wake-up socket pair too (no fd leak)
            except Exception:
                pass

    def schedule_reconnect(self):
        self.state = "backoff"
        ceiling = min(RECONNECT_MAX_S, RECONNECT_MIN_S * math.pow(2, min(self.attempt, 30)))
        self.next_attempt = time.monotonic() + self.rng.uniform(0, ceiling)
        self.attempt += 1

    def tick(self, now):
        if self.state == "backoff" and now >= self.next_attempt and not self.sim.stopping_connects:
            self.start_attempt()
        elif self.state == "connecting" and self.connecting_since and now - self.connecting_since > CONNECT_TIMEOUT_S:
            self.drop_client()
            self.uri_index += 1
            self.try_uri()
        elif self.client is not None:
            self.client.loop_misc()


class Sim:
    def __init__(self, args):
        self.args = args
        self.period = args.period
        self.sel = selectors.DefaultSelector()
        self.events = open(args.events, "a", buffering=1)
        self.stopping = False
        self.stopping_connects = False
        uris = args.uris.split(",")
        self.sessions = [Session(self, i, f"{args.prefix}-{i:04d}", uris)
                         for i in range(args.first, args.first + args.count)]
        # The fleet does not start in one second: first connects spread over --ramp s.
        for s in self.sessions:
            s.next_attempt = time.monotonic() + random.uniform(0, args.ramp)

    def event(self, s, ev, uri):
        self.events.write(json.dumps({"t": time.time(), "gw": s.id, "ev": ev, "uri": uri}) + "\n")

    def watch(self, s):
        sock = s.client.socket()
        if sock is None:
            return
        ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if s.client.want_write() else 0)
        if s.registered and s.registered[0] is sock:
            if s.registered[1] != ev:
                self.sel.modify(sock, ev, s)
                s.registered = (sock, ev)
            return
        self.unwatch(s)
        self.sel.register(sock, ev, s)
        s.registered = (sock, ev)

    def unwatch(self, s):
        if s.registered:
            try:
                self.sel.unregister(s.registered[0])
            except (KeyError, ValueError, OSError):
                pass
            s.registered = None

    def run(self):
        last_misc = 0.0
        drain_deadline = None
        while True:
            now = time.monotonic()
            if self.stopping and drain_deadline is None:
                drain_deadline = now + self.args.drain_timeout
            if drain_deadline is not None:
                if all(not s.unacked for s in self.sessions) or now > drain_deadline:
                    break
            if not self.stopping:
                wall = time.time()
                for s in self.sessions:
                    if now >= s.next_reading:
                        s.make_reading(wall)
                        s.next_reading += self.period
            if now - last_misc >= 0.25:
                last_misc = now
                for s in self.sessions:
                    s.tick(now)
            for s in self.sessions:
                if s.client is not None:
                    self.watch(s)
            for key, mask in self.sel.select(timeout=0.05):
                s = key.data
                c = s.client
                if c is None:
                    continue
                if mask & selectors.EVENT_READ:
                    c.loop_read()
                if s.client is c and mask & selectors.EVENT_WRITE:
                    c.loop_write()
        summary = {s.id: {"epoch": s.epoch, "last_seq": s.seq, "unacked": len(s.unacked), "state": s.state}
                   for s in self.sessions}
        Path(self.args.summary).write_text(json.dumps(summary))
        for s in self.sessions:
            if s.client is not None and s.state == "connected":
                try:
                    s.client.disconnect()
                except Exception:
                    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uris", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--period", type=float, default=5.0, help="seconds between readings, per session")
    ap.add_argument("--ramp", type=float, default=10.0)
    ap.add_argument("--prefix", default="fleet-light")
    ap.add_argument("--events", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--drain-timeout", type=float, default=60.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sim = Sim(args)

    def on_term(signum, frame):
        sim.stopping = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sim.run()


if __name__ == "__main__":
    main()
