#!/usr/bin/python3
"""The traffic node's register map, generated from the profile the gateway polls it by.

    gen_register_map.py --python DIR --profile FILE --out HEADER

DIR holds the citygate.v1 Python modules (protoc --python_out of proto/); FILE is
gateway/profiles/citygate-traffic-counter-4lane.textproto, parsed with Debian's python3-protobuf
text_format as a citygate.v1.DeviceProfile. The header is a constexpr table, one row per point:
lane, field, address, type, word order, and the exact rational that turns the node's native
accumulation unit into register counts (register = round(native * num / den)).

Native units of the node (nodes/traffic/aggregator.hpp): intensity in vehicles, occupancy as the
fraction of the period, speed in 0.1 km/h, length in cm, headway in ms. A point whose unit and
scale the node cannot serve exactly, a table other than input registers, two points on one
register, a point without all_ones_not_available (the gateway would take the node's "no value",
all bits set, for a number), or that value inside the point's plausible range stops the build
with FILE: message (firmware/README.md, "Before the first complete period").
"""

import argparse
import sys
from fractions import Fraction
from pathlib import Path

FIELDS = {
    # profile field: (C++ enumerator, dimension, native unit in the dimension's base unit)
    "intensity": ("Intensity", "count", Fraction(1)),
    "occupancy": ("Occupancy", "fraction", Fraction(1)),
    "average_vehicle_speed": ("Speed", "speed", Fraction(1, 10)),      # 0.1 km/h
    "average_vehicle_length": ("Length", "length", Fraction(1, 100)),  # cm in m
    "average_headway_time": ("Headway", "time", Fraction(1, 1000)),    # ms in s
}

# Source units (as gateway/src/core/fields.cpp names them) of the dimensions above, in base units.
UNITS = {
    "count": ("count", Fraction(1)), "H87": ("count", Fraction(1)),
    "fraction": ("fraction", Fraction(1)), "C62": ("fraction", Fraction(1)),
    "%": ("fraction", Fraction(1, 100)), "P1": ("fraction", Fraction(1, 100)),
    "km/h": ("speed", Fraction(1)), "KMH": ("speed", Fraction(1)),
    "m/s": ("speed", Fraction(36, 10)), "MTS": ("speed", Fraction(36, 10)),
    "m": ("length", Fraction(1)), "MTR": ("length", Fraction(1)), "dm": ("length", Fraction(1, 10)),
    "cm": ("length", Fraction(1, 100)), "mm": ("length", Fraction(1, 1000)),
    "s": ("time", Fraction(1)), "SEC": ("time", Fraction(1)), "ds": ("time", Fraction(1, 10)),
    "ms": ("time", Fraction(1, 1000)),
}
CANONICAL = {"count": "count", "fraction": "fraction", "speed": "km/h", "length": "m", "time": "s"}

TYPES = {"UINT16": (1, 0xFFFF), "UINT32": (2, 0xFFFFFFFF)}
ORDERS = {"ABCD": "Abcd", "CDAB": "Cdab", "BADC": "Badc", "DCBA": "Dcba"}


def fail(path, message):
    print(f"{path}: {message}", file=sys.stderr)
    sys.exit(1)


def exact(x):
    return Fraction(repr(x)) if x else Fraction(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.python)
    from google.protobuf import text_format
    from citygate.v1 import node_pb2

    path = args.profile
    profile = node_pb2.DeviceProfile()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), profile)
    except (OSError, text_format.ParseError) as e:
        fail(path, str(e))
    if profile.kind != node_pb2.TRAFFIC:
        fail(path, "not a TRAFFIC profile")
    default_order = node_pb2.WordOrder.Name(profile.default_order or node_pb2.ABCD)

    rows, used, lanes = [], {}, set()
    for p in profile.point:
        where = f"point {p.field!r} of lane {p.lane_id}"
        if p.field not in FIELDS:
            fail(path, f"{where}: the node does not compute {p.field!r}")
        enum, dim, native = FIELDS[p.field]
        if p.table != node_pb2.INPUT_REGISTER:
            fail(path, f"{where}: the node serves input registers only")
        if not 1 <= p.lane_id <= 8:
            fail(path, f"{where}: lane_id must be 1..8")
        type_name = node_pb2.DataType.Name(p.type)
        if type_name not in TYPES:
            fail(path, f"{where}: type {type_name} (the node serves UINT16 and UINT32)")
        words, na = TYPES[type_name]
        order = node_pb2.WordOrder.Name(p.order) if p.order else default_order
        if order == "WORD_ORDER_UNSPECIFIED":
            order = "ABCD"
        unit = p.unit or CANONICAL[dim]
        if unit not in UNITS or UNITS[unit][0] != dim:
            fail(path, f"{where}: unit {unit!r} is not a {dim}")
        if p.offset:
            fail(path, f"{where}: an offset is not served")
        scale = exact(p.scale) if p.scale else Fraction(1)
        ratio = native / (scale * UNITS[unit][1])  # register counts per native unit
        if ratio.numerator > 0xFFFFFFFF or ratio.denominator > 0xFFFFFFFF:
            fail(path, f"{where}: scale {p.scale} is too fine")
        # The gateway must know the "not available" value (BAD, no value), and it must be outside
        # the plausible range (canonical units), for a gateway that reads the map without the flag.
        if not p.all_ones_not_available:
            fail(path, f"{where}: needs all_ones_not_available: true (the node serves all ones for no value)")
        if p.HasField("plausible"):
            na_canonical = na * scale * UNITS[unit][1]
            if exact(p.plausible.min) <= na_canonical <= exact(p.plausible.max):
                fail(path, f"{where}: the not-available value {na:#x} is inside the plausible range")
        else:
            fail(path, f"{where}: needs a plausible range (the not-available value must fall outside it)")
        for a in range(p.address, p.address + words):
            if a in used:
                fail(path, f"{where}: register {a} is also {used[a]}")
            used[a] = where
        lanes.add(p.lane_id)
        rows.append((p.lane_id, enum, p.address, words, ORDERS[order], ratio, na, p.field))

    if not rows:
        fail(path, "no points")
    register_count = max(r[2] + r[3] for r in rows)
    if register_count > 125 * 4:
        fail(path, "the map is too large for the node")
    lane_count = max(lanes)

    out = [
        f"// Generated by firmware/nodes/traffic/gen_register_map.py from {Path(path).name}: do not edit.",
        "#pragma once",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        '#include "nodes/traffic/register_types.hpp"',
        "",
        "namespace citygate::fw::traffic::regmap {",
        "",
        f'constexpr const char kProfileName[] = "{profile.name}";',
        f"constexpr uint16_t kRegisterCount = {register_count};  // input registers 0..{register_count - 1}",
        f"constexpr uint8_t kLaneCount = {lane_count};",
        "",
        "constexpr Point kPoints[] = {",
    ]
    for lane, enum, address, words, order, ratio, na, field in rows:
        out.append(f"    {{{lane}, Field::{enum}, {address}, {words}, Order::{order}, {ratio.numerator}u, "
                   f"{ratio.denominator}u}},  // {field}")
    out += [
        "};",
        "constexpr size_t kPointCount = sizeof(kPoints) / sizeof(kPoints[0]);",
        "",
        "}  // namespace citygate::fw::traffic::regmap",
        "",
    ]
    text = "\n".join(out)
    outp = Path(args.out)
    if not outp.exists() or outp.read_text() != text:
        outp.parent.mkdir(parents=True, exist_ok=True)
        outp.write_text(text)


if __name__ == "__main__":
    main()
