"""Issue 2: Modbus TCP -> normalised protobuf -> MQTT, end to end, against real peers."""
import os
import signal
import struct
import time
import unittest
from pathlib import Path

from harness import IntegrationTest, gateway_config, reading_pb2, status_pb2, wait_for

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
TYPES = {  # type -> (registers, test value)
    "INT16": (1, -12345), "UINT16": (1, 54321),
    "INT32": (2, -123456789), "UINT32": (2, 3456789012), "FLOAT32": (2, 123456.0),
    "INT64": (4, -1234567890123), "UINT64": (4, 9876543210123), "FLOAT64": (4, -2.718281828459045),
}


def all_types_profile():
    """A GENERIC profile with every numeric type in every order, plus scale/offset, bits, strings.
    Returns (profile text, simulator 'values', {point name: expected value})."""
    points, values, expected = [], [], {}
    addr = 0
    for typ, (regs, value) in TYPES.items():
        for order in ORDERS:
            name = f"{typ.lower()}_{order.lower()}"
            points.append(f'point {{ field: "{name}" table: HOLDING_REGISTER address: {addr} type: {typ} order: {order} }}')
            values.append({"table": "hr", "address": addr, "type": typ, "order": order, "value": value})
            expected[name] = struct.unpack(">f", struct.pack(">f", value))[0] if typ == "FLOAT32" else float(value)
            addr += regs
    # scale and offset: raw 2500 * 0.01 - 5 = 20
    points.append(f'point {{ field: "scaled" table: INPUT_REGISTER address: 7 type: UINT16 scale: 0.01 offset: -5 unit: "V" }}')
    values.append({"table": "ir", "address": 7, "type": "UINT16", "value": 2500})
    expected["scaled"] = 20.0
    # bits: a coil, a discrete input, and bit 3 of a register
    points.append('point { field: "coil_7" table: COIL address: 7 type: BOOL }')
    values.append({"table": "co", "address": 7, "value": 1})
    expected["coil_7"] = 1.0
    points.append('point { field: "input_9" table: DISCRETE_INPUT address: 9 type: BOOL }')
    values.append({"table": "di", "address": 9, "value": 0})
    expected["input_9"] = 0.0
    points.append('point { field: "flag_bit3" table: INPUT_REGISTER address: 20 type: BOOL bit: 3 }')
    values.append({"table": "ir", "address": 20, "type": "UINT16", "value": 0b1000})
    expected["flag_bit3"] = 1.0
    points.append('point { field: "serial" table: INPUT_REGISTER address: 30 type: STRING string_registers: 4 }')
    text = "CG-0042"
    for i in range(4):
        chunk = (text + "\0" * 8)[2 * i:2 * i + 2].encode()
        values.append({"table": "ir", "address": 30 + i, "type": "UINT16", "value": (chunk[0] << 8) | chunk[1]})
    profile = 'name: "all-types"\nkind: GENERIC\nmax_gap_registers: 4\n' + "\n".join(points) + "\n"
    return profile, values, expected


class EndToEnd(IntegrationTest):
    def start_world(self, units, buses, profile_files=None, extra=""):
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus(units)
        prof_dir = env.path("profiles")
        os.makedirs(prof_dir, exist_ok=True)
        for name, text in (profile_files or {}).items():
            Path(prof_dir, name).write_text(text)
        cfg = gateway_config("gw-e2e", self.broker.uri, env, buses.replace("PORT", str(self.sim.port)),
                             extra=f'profile_dir: "{prof_dir}"\n' + extra)
        self.sub = env.subscriber(self.broker, "gw-e2e")
        self.gw = env.gateway(cfg)
        return cfg

    def test_every_type_and_order_arrives_exactly_as_the_profile_defines(self):
        profile, values, expected = all_types_profile()
        self.start_world({"7": {"values": values}},
                         'modbus_bus { name: "b" tcp { host: "127.0.0.1" port: PORT } '
                         'device { id: "meter" unit_id: 7 profile: "all-types" poll_interval_ms: 300 } }',
                         {"all-types.textproto": profile})
        r = self.sub.wait_for(lambda: self.sub.of("meter") and self.sub.of("meter")[0], 15, "a meter reading")
        got = r.generic.values
        for name, want in expected.items():
            self.assertIn(name, got, name)
            self.assertEqual(got[name].value, want, name)
            self.assertEqual(got[name].quality, reading_pb2.GOOD, name)
        self.assertEqual(got["scaled"].unit_code, "VLT")
        self.assertEqual(r.generic.text_values["serial"], "CG-0042")
        self.assertEqual(r.source.modbus.bus, "b")
        self.assertEqual(r.source.modbus.unit_id, 7)
        self.assertEqual(r.quality, reading_pb2.GOOD)

    def test_three_domains_with_unit_conversion_and_quality(self):
        air = {"hr": {"0": 20, "1": 3, "2": 40, "4": 1, "5": 30, "6": 5, "8": 123, "9": 456,
                      "10": 215, "11": 655, "12": 9650}}
        traffic_values = []
        for lane in range(4):
            base = lane * 10
            traffic_values += [
                {"table": "ir", "address": base, "type": "UINT32", "order": "ABCD", "value": 70000 + lane},  # implausible
                {"table": "ir", "address": base + 2, "type": "UINT16", "value": 250 + lane},
                {"table": "ir", "address": base + 3, "type": "UINT16", "value": 523},
                {"table": "ir", "address": base + 4, "type": "UINT16", "value": 456},
                {"table": "ir", "address": base + 5, "type": "UINT16", "value": 21},
            ]
        traffic_values[0]["value"] = 197  # lane 1 plausible
        parking = {"di": {"0": 1, "1": 0, "2": 1}}
        self.start_world(
            {"1": air, "3": {"values": traffic_values}, "5": parking},
            'modbus_bus { name: "cab" tcp { host: "127.0.0.1" port: PORT }\n'
            ' device { id: "air-1" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 300 }\n'
            ' device { id: "traffic-1" unit_id: 3 profile: "citygate-traffic-counter-4lane" poll_interval_ms: 300 }\n'
            ' device { id: "parking-1" unit_id: 5 profile: "parking-guidance-8bay" poll_interval_ms: 300 ref_parking_site: "pilatusplatz" }\n'
            '}')
        sub = self.sub
        sub.wait_for(lambda: sub.of("air-1") and len(sub.of("traffic-1")) >= 4 and len(sub.of("parking-1")) >= 8, 15,
                     "readings of all three domains")
        a = sub.of("air-1")[0].air_quality_observed
        self.assertAlmostEqual(a.no2.value, 20 * 1.912, places=9)
        self.assertEqual(a.no2.unit_code, "GQ")
        self.assertAlmostEqual(a.so2.value, 3 * 2.663, places=9)
        self.assertAlmostEqual(a.co.value, 40 * 0.001164, places=12)
        self.assertEqual(a.co.unit_code, "GP")
        self.assertAlmostEqual(a.o3.value, 30 * 1.995, places=9)
        self.assertAlmostEqual(a.pm25.value, 12.3, places=9)
        self.assertAlmostEqual(a.pm10.value, 45.6, places=9)
        self.assertAlmostEqual(a.temperature.value, 21.5, places=9)
        self.assertEqual(a.temperature.unit_code, "CEL")
        self.assertAlmostEqual(a.relative_humidity.value, 0.655, places=9)
        self.assertEqual(a.relative_humidity.unit_code, "C62")
        self.assertAlmostEqual(a.pressure.value, 965.0, places=9)
        self.assertEqual(a.id, "urn:ngsi-ld:AirQualityObserved:air-1")
        self.assertAlmostEqual(a.location.lat, 47.05)

        lanes = {r.traffic_flow_observed.lane_id: r for r in sub.of("traffic-1")[:4]}
        self.assertEqual(sorted(lanes), [1, 2, 3, 4])
        t1 = lanes[1].traffic_flow_observed
        self.assertEqual(t1.intensity.value, 197)
        self.assertAlmostEqual(t1.occupancy.value, 0.25, places=9)
        self.assertAlmostEqual(t1.average_vehicle_speed.value, 52.3, places=9)
        self.assertAlmostEqual(t1.average_vehicle_length.value, 4.56, places=9)
        self.assertAlmostEqual(t1.average_headway_time.value, 2.1, places=9)
        self.assertEqual(t1.lane_direction, reading_pb2.FORWARD)
        self.assertEqual(lanes[1].quality, reading_pb2.GOOD)
        self.assertEqual(lanes[3].traffic_flow_observed.lane_direction, reading_pb2.BACKWARD)
        # 70002 vehicles in a period is outside the plausible range: kept, but UNCERTAIN
        self.assertEqual(lanes[3].traffic_flow_observed.intensity.value, 70002)
        self.assertEqual(lanes[3].quality, reading_pb2.UNCERTAIN)
        self.assertEqual(lanes[3].traffic_flow_observed.intensity.quality, reading_pb2.UNCERTAIN)
        frm = t1.date_observed_from.seconds + t1.date_observed_from.nanos / 1e9
        to = t1.date_observed_to.seconds + t1.date_observed_to.nanos / 1e9
        self.assertGreater(to, frm)

        bays = {r.parking_spot.bay: r.parking_spot for r in sub.of("parking-1")[:8]}
        self.assertEqual(bays["B01"].status, reading_pb2.OCCUPIED)
        self.assertEqual(bays["B02"].status, reading_pb2.FREE)
        self.assertEqual(bays["B03"].status, reading_pb2.OCCUPIED)
        self.assertEqual(bays["B01"].ref_parking_site, "pilatusplatz")
        self.assertEqual(list(bays["B01"].category), ["onStreet"])

        seqs = sub.seqs()
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(seqs), len(set(seqs)))
        # birth: retained ONLINE status with this boot's id
        st = sub.wait_for(lambda: [s for s in sub.status if s.state == status_pb2.ONLINE], 5, "birth")[-1]
        self.assertEqual(st.gateway_id, "gw-e2e")
        self.assertTrue(st.boot_id)
        self.assertEqual(sub.batches[0].boot_id, st.boot_id)
        # health: per device state and counters
        h = sub.wait_for(lambda: [x for x in sub.health if len(x.devices) == 3 and all(d.polls_ok for d in x.devices)],
                         10, "health with three devices")[-1]
        self.assertEqual({d.sensor_id for d in h.devices}, {"air-1", "traffic-1", "parking-1"})
        self.assertTrue(all(d.state == status_pb2.OK for d in h.devices))
        self.assertGreater(h.process.rss_bytes, 0)
        self.assertGreater(h.mqtt.acked, 0)

    def test_broker_outage_reconnects_republishes_birth_and_resumes(self):
        self.start_world({"1": {"hr": {"0": 5}}},
                         'modbus_bus { name: "b" tcp { host: "127.0.0.1" port: PORT } '
                         'device { id: "g" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 200 } }')
        sub = self.sub
        sub.wait_for(lambda: len(sub.of("g")) >= 3, 15, "first readings")
        births = len([s for s in sub.status if s.state == status_pb2.ONLINE])
        self.broker.stop()
        wait_for(lambda: "lost the broker" in self.gw.log(), 10, what="the gateway to notice")
        before = len(sub.of("g"))
        # The outage is the test's input: 10 s without a broker while the gateway keeps polling.
        time.sleep(10)
        self.assertTrue(self.gw.process.running())
        self.broker.start()
        sub.wait_for(lambda: len([s for s in sub.status if s.state == status_pb2.ONLINE]) > births, 30,
                     "a second birth after the broker came back")
        sub.wait_for(lambda: len(sub.of("g")) >= before + 55, 30, "readings to resume, outage included")
        seqs = sorted(set(r.seq for r in sub.of("g")))
        self.assertEqual(seqs, list(range(seqs[0], seqs[-1] + 1)), "a gap in seq across the outage")
        self.assertIn("connected to the broker", self.gw.log())

    def test_seq_never_repeats_across_restarts_even_after_kill(self):
        self.start_world({"1": {"hr": {"0": 5}}},
                         'modbus_bus { name: "b" tcp { host: "127.0.0.1" port: PORT } '
                         'device { id: "g" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 100 } }')
        sub = self.sub
        sub.wait_for(lambda: len(sub.of("g")) >= 5, 15, "first readings")
        self.assertEqual(self.gw.stop(), 0)  # clean stop: SIGTERM
        first = set(sub.seqs())
        self.gw.start()
        sub.wait_for(lambda: len(sub.seqs()) >= len(first) + 5, 15, "readings after a clean restart")
        self.gw.kill()  # no chance to save anything
        second = set(sub.seqs())
        self.gw.start()
        sub.wait_for(lambda: len(sub.seqs()) >= len(second) + 5, 15, "readings after kill -9")
        boots = {b.boot_id for b in sub.batches}
        self.assertEqual(len(boots), 3)
        # A seq may arrive twice (a reading replayed after the crash), but always as the same
        # reading: never reused for a new one.
        first_seen = {}
        for r in sub.readings:
            blob = r.SerializeToString(deterministic=True)
            self.assertEqual(first_seen.setdefault(r.seq, blob), blob, f"seq {r.seq} was reused for another reading")
        seqs = sorted(first_seen)
        self.assertEqual(seqs, list(range(seqs[0], seqs[-1] + 1)), "a gap in seq across the restarts")


class BadConfig(IntegrationTest):
    def run_bad(self, text, expect):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"1": {}})
        sub = env.subscriber(broker, "gw-bad")
        cfg = gateway_config("gw-bad", broker.uri, env,
                             f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {sim.port} }} {text} }}')
        gw = env.gateway(cfg)
        rc = gw.process.wait(15)
        self.assertEqual(rc, 78)
        log = gw.log()
        self.assertRegex(log, expect)
        self.assertIn("not starting", log)
        # nothing opened: no spool directory, no connection to the broker, no Modbus request
        self.assertFalse(os.path.exists(env.path("spool")))
        self.assertFalse(os.path.exists(env.path("control.sock")))
        self.assertEqual(sim.stats(), {})
        self.assertEqual(sub.status, [])

    def test_unknown_field(self):
        self.run_bad('device { id: "a" unit_id: 1 profile: "vaisala-aqt530" colour: "red" }',
                     r"citygated\.textproto:\d+:\d+: unknown field \"colour\" in ModbusDevice")

    def test_duplicate_device_id(self):
        self.run_bad('device { id: "a" unit_id: 1 profile: "vaisala-aqt530" }\n'
                     'device { id: "a" unit_id: 2 profile: "vaisala-aqt530" }',
                     r"citygated\.textproto:\d+:\d+: duplicate device id 'a'")

    def test_point_outside_the_table(self):
        prof = self.env.path("profiles")
        os.makedirs(prof)
        Path(prof, "far.textproto").write_text(
            'name: "far"\nkind: GENERIC\npoint { field: "x" table: HOLDING_REGISTER address: 65536 type: UINT16 }\n')
        env = self.env
        broker = env.broker()
        cfg = gateway_config("gw-bad", broker.uri, env,
                             'modbus_bus { name: "b" tcp { host: "127.0.0.1" port: 1 } '
                             'device { id: "a" unit_id: 1 profile: "far" } }', extra=f'profile_dir: "{prof}"')
        gw = env.gateway(cfg)
        self.assertEqual(gw.process.wait(15), 78)
        self.assertRegex(gw.log(), r"far\.textproto:3:\d+: point 'x' at address 65536 .* outside the table 0\.\.65535")
        self.assertFalse(os.path.exists(env.path("spool")))


if __name__ == "__main__":
    unittest.main()
