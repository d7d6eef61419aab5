#!/usr/bin/python3
"""The fleet test's default platform consumer: one MQTT subscriber with a persistent session
(clean_session false, QoS 1; on RabbitMQ a durable queue of mqtt.durable_queue_type, quorum by
default) on citygate/v1/+/readings, recording every reading it receives.

    consumer_mqtt.py --mqtt URI[,URI...] --out READINGS.tsv --ready READY [--client-id ID]

It connects to the first broker of the list and moves to the next one whenever the link drops or
an attempt fails (0.2 s apart). The contract of a fleet consumer (any process can be one:
fleet.py --consumer):
  - create READY once it is subscribed (readings published from then on must reach it);
  - append one line per reading received: "<unix time of arrival>\\t<gateway_id>\\t<epoch>\\t<seq>"
    (duplicates included: the fleet test counts them);
  - on SIGTERM, flush and exit.
"""
import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
sys.path.insert(0, str(BUILD / "python"))
from citygate.v1 import reading_pb2  # noqa: E402  (generated)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mqtt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--client-id", default="fleet-platform")
    ap.add_argument("--topic", default="citygate/v1/+/readings")
    args = ap.parse_args()
    uris = [u.split("://", 1)[1].rsplit(":", 1) for u in args.mqtt.split(",")]
    out = open(args.out, "a", buffering=1 << 16)
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())

    def on_connect(client, userdata, flags, rc):
        if rc == 0:
            client.subscribe(args.topic, qos=1)

    def on_subscribe(client, userdata, mid, granted):
        if not os.path.exists(args.ready):
            Path(args.ready).write_text(str(time.time()))

    def on_message(client, userdata, msg):
        now = time.time()
        b = reading_pb2.ReadingBatch()
        try:
            b.ParseFromString(msg.payload)
        except Exception:
            return
        with lock:
            for r in b.readings:
                out.write(f"{now:.3f}\t{b.gateway_id}\t{b.epoch}\t{r.seq}\n")

    client = paho.Client(client_id=args.client_id, clean_session=False, protocol=paho.MQTTv311)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.max_inflight_messages_set(100)
    i = 0
    flushed = time.monotonic()
    while not stop.is_set():
        host, port = uris[i % len(uris)]
        try:
            client.connect(host, int(port), keepalive=10)
        except OSError:
            i += 1
            time.sleep(0.2)
            continue
        while not stop.is_set():
            rc = client.loop(timeout=0.2)
            if time.monotonic() - flushed > 1:
                with lock:
                    out.flush()
                flushed = time.monotonic()
            if rc != paho.MQTT_ERR_SUCCESS:
                break
        if not stop.is_set():
            i += 1
            time.sleep(0.2)
    try:
        client.disconnect()
    except Exception:
        pass
    with lock:
        out.flush()
        out.close()


if __name__ == "__main__":
    main()
