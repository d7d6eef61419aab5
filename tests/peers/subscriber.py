#!/usr/bin/python3
"""The platform side, as a person reads it: subscribes to <prefix>/<gateway>/# and prints every
reading as one line (sensor, kind, values with units, quality, seq), plus the gateway's status.

    subscriber.py --port 1883 --gateway luz-demo-01 [--build build/default] [--count N] [--timeout S]
                  [--tag PREFIX=TEXT ...]

--tag ends the line of every reading whose sensor id starts with PREFIX with "<- TEXT" (the demo
marks the readings of the nodes' firmware so).
"""
import argparse
import os
import sys
import threading
import time

SYMBOL = {"GQ": "µg/m³", "GP": "mg/m³", "CEL": "°C", "C62": "", "A97": "hPa", "KMH": "km/h", "MTR": "m",
          "SEC": "s", "MTS": "m/s", "DD": "°", "H87": "veh", "VLT": "V", "P1": "%", "61": "ppb", "59": "ppm"}
QUALITY = {0: "?", 1: "GOOD", 2: "UNCERTAIN", 3: "BAD"}


def fmt(m, name):
    unit = SYMBOL.get(m.unit_code, m.unit_code)
    if m.unit_code == "C62":
        return f"{name} {m.value * 100:.1f} %" if name in ("rh", "occupancy") else f"{name} {m.value:.3g}"
    return f"{name} {m.value:.4g}{(' ' + unit) if unit else ''}"


def line(r, pb, tags=()):
    kind = r.WhichOneof("observation")
    parts = []
    if kind == "air_quality_observed":
        a = r.air_quality_observed
        short = {"relative_humidity": "rh", "temperature": "t", "pressure": "p"}
        for f in ("no2", "no", "o3", "co", "so2", "sh2", "pm1", "pm25", "pm4", "pm10", "temperature", "relative_humidity",
                  "pressure"):
            if a.HasField(f):
                parts.append(fmt(getattr(a, f), short.get(f, f)))
        label = "AirQualityObserved"
    elif kind == "traffic_flow_observed":
        t = r.traffic_flow_observed
        label = f"TrafficFlowObserved lane {t.lane_id}"
        for f, short in (("intensity", "vehicles"), ("occupancy", "occupancy"), ("average_vehicle_speed", "speed"),
                         ("average_vehicle_length", "length"), ("average_headway_time", "headway")):
            if t.HasField(f):
                parts.append(fmt(getattr(t, f), short))
        span = t.date_observed_to.seconds - t.date_observed_from.seconds
        parts.append(f"over {span} s")
    elif kind == "parking_spot":
        p = r.parking_spot
        status = pb.ParkingStatus.Name(p.status)
        label = "ParkingSpot" + (f" {p.bay}" if p.bay else "")
        parts.append(status)
        if p.HasField("temperature"):
            parts.append(fmt(p.temperature, "t"))
        if p.HasField("battery_voltage"):
            parts.append(fmt(p.battery_voltage, "battery"))
    else:
        label = "Generic"
        for k, m in sorted(r.generic.values.items()):
            parts.append(fmt(m, k))
    src = ""
    if r.source.HasField("lorawan"):
        l = r.source.lorawan
        src = f"  [lora {l.dev_addr} fcnt {l.f_cnt} rssi {l.rssi:.0f} snr {l.snr:.1f}]"
    elif r.source.HasField("modbus"):
        src = f"  [modbus {r.source.modbus.bus}/{r.source.modbus.unit_id}]"
    tag = next((f"  <- {text}" for prefix, text in tags if r.sensor_id.startswith(prefix)), "")
    return f"seq {r.seq:<6} {r.sensor_id:<24} {label:<32} {', '.join(parts)}  {QUALITY.get(r.quality, '?')}{src}{tag}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--prefix", default="citygate/v1")
    ap.add_argument("--build", default=os.environ.get("CITYGATE_BUILD_DIR", "build/default"))
    ap.add_argument("--count", type=int, default=0, help="exit after this many readings")
    ap.add_argument("--timeout", type=float, default=0, help="exit after this many seconds")
    ap.add_argument("--tag", action="append", default=[], metavar="PREFIX=TEXT",
                    help="end the lines of the sensors whose id starts with PREFIX with '<- TEXT'")
    args = ap.parse_args()
    tags = [tuple(t.split("=", 1)) for t in args.tag if "=" in t]
    sys.path.insert(0, os.path.join(args.build, "python"))
    from citygate.v1 import reading_pb2, status_pb2
    import paho.mqtt.client as paho

    done = threading.Event()
    seen = [0]

    def on_connect(client, userdata, flags, rc):
        client.subscribe(f"{args.prefix}/{args.gateway}/#", qos=1)

    def on_message(client, userdata, msg):
        leaf = msg.topic.rsplit("/", 1)[-1]
        if leaf == "readings":
            b = reading_pb2.ReadingBatch()
            b.ParseFromString(msg.payload)
            for r in b.readings:
                print(line(r, reading_pb2, tags), flush=True)
                seen[0] += 1
                if args.count and seen[0] >= args.count:
                    done.set()
        elif leaf == "status":
            s = status_pb2.GatewayStatus()
            s.ParseFromString(msg.payload)
            print(f"-- gateway {s.gateway_id} {status_pb2.GatewayState.Name(s.state)} (version {s.version}, boot {s.boot_id[:8]})",
                  flush=True)

    c = paho.Client(client_id=f"platform-demo-{os.getpid()}")
    c.on_connect = on_connect
    c.on_message = on_message
    c.connect(args.host, args.port, keepalive=30)
    c.loop_start()
    try:
        done.wait(args.timeout if args.timeout else None)
    except KeyboardInterrupt:
        pass
    c.loop_stop()
    return 0 if (not args.count or seen[0] >= args.count) else 1


if __name__ == "__main__":
    sys.exit(main())
