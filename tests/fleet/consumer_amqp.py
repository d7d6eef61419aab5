#!/usr/bin/python3
"""A platform consumer over AMQP 0-9-1 (pika), the other way /work/shared's recipe names: a quorum
queue bound to amq.topic with routing key citygate.v1.*.readings (MQTT's '/' is AMQP's '.'),
consumed with manual acks. Same contract as consumer_mqtt.py:

    fleet.py --consumer '/usr/bin/python3 tests/fleet/consumer_amqp.py --amqp {amqp} --out {out} --ready {ready}'

It connects to the first URI and moves to the next one when the connection drops (0.5 s apart);
a reading's line is written before its delivery is acknowledged (at least once).
"""
import argparse
import os
import signal
import sys
import time
from pathlib import Path

import pika

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
sys.path.insert(0, str(BUILD / "python"))
from citygate.v1 import reading_pb2  # noqa: E402  (generated)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amqp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--queue", default="fleet-platform")
    args = ap.parse_args()
    uris = args.amqp.split(",")
    out = open(args.out, "a", buffering=1 << 16)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *a: stopping.append(1))
    i = 0
    while not stopping:
        try:
            params = pika.URLParameters(uris[i % len(uris)])
            params.heartbeat = 10
            params.blocked_connection_timeout = 30
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            ch.queue_declare(args.queue, durable=True, arguments={"x-queue-type": "quorum"})
            ch.queue_bind(args.queue, "amq.topic", routing_key="citygate.v1.*.readings")
            ch.basic_qos(prefetch_count=200)

            def on_message(channel, method, properties, body):
                now = time.time()
                b = reading_pb2.ReadingBatch()
                try:
                    b.ParseFromString(body)
                except Exception:
                    channel.basic_ack(method.delivery_tag)
                    return
                for r in b.readings:
                    out.write(f"{now:.3f}\t{b.gateway_id}\t{b.epoch}\t{r.seq}\n")
                out.flush()
                channel.basic_ack(method.delivery_tag)
            ch.basic_consume(args.queue, on_message)
            if not os.path.exists(args.ready):
                Path(args.ready).write_text(str(time.time()))
            while not stopping:
                conn.process_data_events(time_limit=0.5)
            conn.close()
        except Exception as e:  # noqa: BLE001  (a lost node: next one)
            print(f"consumer_amqp: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            i += 1
            time.sleep(0.5)
    out.close()


if __name__ == "__main__":
    main()
