"""The checker itself, on synthetic streams: a conformant node passes every assertion it exercises,
and each kind of fault fails the assertion it breaks, with the offending message.

    CITYGATE_BUILD_DIR=build/default /usr/bin/python3 -m unittest tests/sparkplug/test_checker.py
"""
import json
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checker  # noqa: E402
from checker import spb  # noqa: E402

GROUP, EDGE = "district-7", "gw-sp"
NOW = int(time.time() * 1000)


class Node:
    """A synthetic edge node writing what a conformant one publishes into a checker Stream."""

    def __init__(self, devices=("air-1", "traffic-1"), bdseq=0):
        self.stream = checker.Stream()
        self.devices = list(devices)
        self.bdseq = bdseq
        self.seq = 0
        self.native = 0
        self.clock = NOW

    def ts(self):
        self.clock += 10
        return self.clock

    def send(self, typ, payload, device=None, qos=0, retain=False):
        topic = f"spBv1.0/{GROUP}/{typ}/{EDGE}" + (f"/{device}" if device else "")
        return self.stream.add(kind="message", topic=topic, qos=qos, retain=retain,
                               payload=payload.SerializeToString())

    def payload(self, seq=True):
        p = spb.Payload(timestamp=self.ts())
        if seq:
            p.seq = self.seq
            self.seq = (self.seq + 1) % 256
        return p

    def nbirth(self, **kw):
        self.seq = 0
        p = self.payload()
        p.metrics.add(name="bdSeq", datatype=4, long_value=self.bdseq, timestamp=p.timestamp)
        p.metrics.add(name=checker.REBIRTH, datatype=11, boolean_value=False, timestamp=p.timestamp)
        p.metrics.add(name="Spool/Bytes", alias=1, datatype=8, long_value=0, timestamp=p.timestamp)
        for k, v in kw.items():
            setattr(p, k, v)
        return self.send("NBIRTH", p)

    def alias(self, device, i):
        return 100 * (self.devices.index(device) + 1) + i

    def dbirth(self, device, name_alias_clash=False):
        p = self.payload()
        for i, name in enumerate(("pm25", "no2")):
            m = p.metrics.add(name=name, alias=self.alias(device, i), datatype=10, is_null=True, timestamp=p.timestamp)
            if name_alias_clash:
                m.alias = 1
            m.properties.keys.append("engUnit")
            m.properties.values.add(type=12, string_value="GQ")
        return self.send("DBIRTH", p, device)

    def ddata(self, device, by_name=False, quality=None, historical=False, datatype=False):
        p = self.payload()
        self.native += 1
        m = p.metrics.add(timestamp=p.timestamp, double_value=12.5, is_historical=historical)
        if by_name:
            m.name = "pm25"
        else:
            m.alias = self.alias(device, 0)
        if datatype:
            m.datatype = 10
        m.properties.keys.append("seq")
        m.properties.values.add(type=8, long_value=self.native)
        if quality is not None:
            m.properties.keys.append("Quality")
            m.properties.values.add(type=3, int_value=quality)
        return self.send("DDATA", p, device)

    def ddeath(self, device):
        return self.send("DDEATH", self.payload(), device)

    def ndeath(self, bdseq=None, qos=1, with_seq=False):
        p = spb.Payload(timestamp=self.ts())
        if with_seq:
            p.seq = 3
        p.metrics.add(name="bdSeq", datatype=4, long_value=self.bdseq if bdseq is None else bdseq)
        return self.send("NDEATH", p, qos=qos)

    def ncmd_rebirth(self):
        p = spb.Payload(timestamp=self.ts())
        p.metrics.add(name=checker.REBIRTH, datatype=11, boolean_value=True)
        return self.send("NCMD", p)

    def state(self, host, online, ts):
        return self.stream.add(kind="message", topic=f"spBv1.0/STATE/{host}", qos=1, retain=True,
                               payload=json.dumps({"online": online, "timestamp": ts}).encode())

    def event(self, name, **detail):
        return self.stream.add(kind="event", event=name, detail=detail)

    def births(self):
        self.nbirth()
        for d in self.devices:
            self.dbirth(d)

    def evaluate(self, **kw):
        kw.setdefault("devices", self.devices)
        return checker.evaluate(self.stream.snapshot(), GROUP, EDGE, **kw)


def conformant_run():
    """Births, data, a rebirth, a device down and back, a kill (will), a reconnect, a clean stop."""
    n = Node()
    n.births()
    for _ in range(3):
        for d in n.devices:
            n.ddata(d)
    n.ncmd_rebirth()
    n.births()
    n.ddata("air-1")
    n.event("device_down", device="traffic-1")
    n.ddeath("traffic-1")
    n.ddata("air-1")
    n.event("device_up", device="traffic-1")
    n.dbirth("traffic-1")
    n.ddata("traffic-1")
    n.event("daemon_killed")
    n.ndeath()
    n.bdseq += 1
    n.births()
    n.ddata("air-1", historical=True)
    n.ddata("air-1")
    n.event("clean_stop")
    n.ndeath()
    return n


class Conformant(unittest.TestCase):
    def test_a_conformant_node_fails_nothing(self):
        report = conformant_run().evaluate(fresh=True)
        self.assertEqual(report.failures(), [], report.table())
        for aid in ("tck-id-operational-behavior-data-commands-rebirth-action-1",
                    "tck-id-operational-behavior-data-commands-rebirth-action-2",
                    "tck-id-operational-behavior-data-commands-rebirth-action-3",
                    "tck-id-topics-nbirth-bdseq-increment", "tck-id-operational-behavior-device-ddeath",
                    "tck-id-message-flow-edge-node-birth-publish-will-message-qos",
                    "tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath",
                    "tck-id-operational-behavior-edge-node-intentional-disconnect-packet",
                    "tck-id-payloads-sequence-num-incrementing", "tck-id-payloads-alias-uniqueness",
                    "tck-id-payloads-ndeath-bdseq"):
            self.assertEqual(report.status(aid), "PASS", aid + "\n" + report.table())
        # STATE gating was not configured: nothing says it passed.
        self.assertEqual(report.status("tck-id-message-flow-edge-node-birth-publish-phid-wait"), "NOT EXERCISED")

    def test_the_table_has_one_line_per_assertion(self):
        table = conformant_run().evaluate().table()
        for aid, _ in checker.ASSERTIONS:
            self.assertEqual(sum(1 for line in table.splitlines() if line.split()[0] == aid), 1, aid)

    def test_readings_are_listed_with_their_native_seq(self):
        n = conformant_run()
        got = checker.ddata_readings(n.stream.snapshot(), GROUP, EDGE)
        self.assertEqual([s for s, *_ in got], list(range(1, n.native + 1)))
        self.assertTrue(got[-2][2])   # the historical one


class Faults(unittest.TestCase):
    """Each fault fails its assertion, and the detail names the offending message."""

    def assertFails(self, report, aid, index=None):
        v = report.verdicts[aid]
        self.assertEqual(v.status, "FAIL", aid + "\n" + report.table())
        if index is not None:
            self.assertIn(f"#{index} ", v.detail)

    def test_a_seq_gap(self):
        n = Node()
        n.births()
        n.ddata("air-1")
        n.seq += 1
        bad = n.ddata("air-1")
        self.assertFails(n.evaluate(), "tck-id-payloads-sequence-num-incrementing", bad.index)
        self.assertFails(n.evaluate(), "tck-id-topics-ddata-seq-num", bad.index)

    def test_a_seq_gap_while_the_recorder_was_away_is_not_judged(self):
        n = Node()
        n.births()
        n.ddata("air-1")
        n.event("recorder_disconnected")
        n.seq += 3
        n.ddata("air-1")
        n.ddata("air-1")
        self.assertEqual(n.evaluate().status("tck-id-payloads-sequence-num-incrementing"), "PASS")

    def test_nbirth_seq_not_zero(self):
        n = Node()
        n.seq = 5
        p = n.payload()
        p.seq = 5
        p.metrics.add(name="bdSeq", datatype=4, long_value=0, timestamp=p.timestamp)
        bad = n.send("NBIRTH", p)
        self.assertFails(n.evaluate(), "tck-id-topics-nbirth-seq-num", bad.index)

    def test_retained_or_qos1_data(self):
        n = Node()
        n.births()
        p = n.payload()
        p.metrics.add(alias=n.alias("air-1", 0), timestamp=p.timestamp, double_value=1)
        bad = n.send("DDATA", p, "air-1", retain=True)
        self.assertFails(n.evaluate(), "tck-id-payloads-ddata-retain", bad.index)
        p = n.payload()
        bad = n.send("NDATA", p, qos=1)
        self.assertFails(n.evaluate(), "tck-id-topics-ndata-mqtt", bad.index)

    def test_a_reconnect_that_reuses_the_will(self):
        n = Node()
        n.births()
        n.event("daemon_killed")
        n.ndeath()
        n.births()   # same bdSeq: the reconnect reused the previous CONNECT's will
        report = n.evaluate()
        self.assertFails(report, "tck-id-topics-nbirth-bdseq-increment")
        self.assertIn("reused the will", report.verdicts["tck-id-topics-nbirth-bdseq-increment"].detail)

    def test_a_bdseq_that_jumps(self):
        n = Node()
        n.births()
        n.event("daemon_killed")
        n.ndeath()
        n.bdseq += 2
        bad = n.nbirth()
        self.assertFails(n.evaluate(), "tck-id-topics-nbirth-bdseq-increment", bad.index)

    def test_a_bdseq_that_jumps_across_a_broker_outage(self):
        """Connection attempts that never reached a broker are no MQTT CONNECT: no new bdSeq."""
        n = Node()
        n.births()
        n.event("recorder_disconnected")
        n.event("recorder_connected", session_present=True)
        n.bdseq += 22
        bad = n.nbirth()
        self.assertFails(n.evaluate(queued_while_away=True), "tck-id-topics-nbirth-bdseq-increment", bad.index)
        # Without the broker queueing for the recorder, a whole session may have gone unseen.
        report = n.evaluate()
        self.assertEqual(report.status("tck-id-topics-nbirth-bdseq-increment"), "NOT EXERCISED")
        self.assertIn("across a recorder gap", "\n".join(report.notes))

    def test_a_first_bdseq_not_zero_on_a_fresh_state_dir(self):
        n = Node(bdseq=4)
        n.births()
        self.assertFails(n.evaluate(fresh=True), "tck-id-topics-nbirth-bdseq-increment")
        self.assertEqual(n.evaluate().status("tck-id-topics-nbirth-bdseq-increment"), "NOT EXERCISED")

    def test_an_ndeath_naming_no_session(self):
        n = Node()
        n.births()
        n.event("daemon_killed")
        bad = n.ndeath(bdseq=9)
        self.assertFails(n.evaluate(), "tck-id-payloads-ndeath-bdseq", bad.index)

    def test_ndeath_with_seq_or_qos0(self):
        n = Node()
        n.births()
        bad = n.ndeath(with_seq=True, qos=0)
        report = n.evaluate()
        self.assertFails(report, "tck-id-topics-ndeath-seq", bad.index)
        self.assertFails(report, "tck-id-payloads-ndeath-will-message-qos", bad.index)

    def test_quality_uncertain_64_is_not_a_sparkplug_quality(self):
        n = Node()
        n.births()
        bad = n.ddata("air-1", quality=64)
        self.assertFails(n.evaluate(), "tck-id-payloads-propertyset-quality-value-value", bad.index)

    def test_data_by_name_or_with_datatype(self):
        n = Node()
        n.births()
        bad = n.ddata("air-1", by_name=True)
        self.assertFails(n.evaluate(), "tck-id-payloads-alias-data-cmd-requirement", bad.index)
        bad = n.ddata("air-1", datatype=True)
        self.assertFails(n.evaluate(), "tck-id-payloads-metric-datatype-not-req", bad.index)

    def test_data_of_a_metric_not_born(self):
        n = Node()
        n.births()
        p = n.payload()
        p.metrics.add(alias=999, timestamp=p.timestamp, double_value=1)
        bad = n.send("DDATA", p, "air-1")
        self.assertFails(n.evaluate(), "tck-id-topics-dbirth-metric-reqs", bad.index)

    def test_a_value_in_the_wrong_field(self):
        n = Node()
        n.births()
        p = n.payload()
        p.metrics.add(alias=n.alias("air-1", 0), timestamp=p.timestamp, float_value=1.5)
        bad = n.send("DDATA", p, "air-1")
        self.assertFails(n.evaluate(), "tck-id-topics-ddata-payload", bad.index)

    def test_values_of_one_metric_out_of_time_order_in_a_ddata(self):
        n = Node()
        n.births()
        p = n.payload()
        for at in (p.timestamp, p.timestamp + 100):  # two readings, oldest first
            p.metrics.add(alias=n.alias("air-1", 0), timestamp=at, double_value=1)
        n.send("DDATA", p, "air-1")
        report = n.evaluate()
        self.assertEqual(report.status("tck-id-operational-behavior-data-publish-dbirth-order"), "PASS")
        p = n.payload()
        for at in (p.timestamp + 100, p.timestamp):
            p.metrics.add(alias=n.alias("air-1", 0), timestamp=at, double_value=1)
        bad = n.send("DDATA", p, "air-1")
        self.assertFails(n.evaluate(), "tck-id-operational-behavior-data-publish-dbirth-order", bad.index)

    def test_a_birth_metric_without_a_name(self):
        n = Node()
        n.nbirth()
        p = n.payload()
        p.metrics.add(alias=n.alias("air-1", 0), datatype=10, is_null=True, timestamp=p.timestamp)
        bad = n.send("DBIRTH", p, "air-1")
        self.assertFails(n.evaluate(), "tck-id-payloads-name-requirement", bad.index)

    def test_ddata_before_its_dbirth_and_after_its_ddeath(self):
        n = Node()
        n.nbirth()
        bad = n.ddata("air-1")
        self.assertFails(n.evaluate(), "tck-id-payloads-ddata-order", bad.index)
        n = Node()
        n.births()
        n.ddeath("air-1")
        bad = n.ddata("air-1")
        self.assertFails(n.evaluate(), "tck-id-payloads-ddata-order", bad.index)

    def test_an_alias_used_twice(self):
        n = Node()
        n.nbirth()
        bad = n.dbirth("air-1", name_alias_clash=True)
        self.assertFails(n.evaluate(), "tck-id-payloads-alias-uniqueness", bad.index)

    def test_rebirth_with_a_new_bdseq(self):
        n = Node()
        n.births()
        n.ncmd_rebirth()
        n.bdseq += 1
        bad = n.nbirth()
        self.assertFails(n.evaluate(), "tck-id-operational-behavior-data-commands-rebirth-action-3", bad.index)

    def test_rebirth_ignored(self):
        n = Node()
        n.births()
        asked = n.ncmd_rebirth()
        # Data a while after the request, and no NBIRTH.
        bad = n.ddata("air-1")
        bad.t = asked.t + 5
        self.assertFails(n.evaluate(), "tck-id-operational-behavior-data-commands-rebirth-action-1", bad.index)

    def test_rebirth_without_a_device_birth(self):
        n = Node()
        n.births()
        n.ncmd_rebirth()
        n.nbirth()
        n.dbirth("air-1")
        bad = n.ddata("air-1")   # traffic-1 was alive and got no DBIRTH
        report = n.evaluate()
        self.assertFails(report, "tck-id-operational-behavior-data-commands-rebirth-action-2", bad.index)
        self.assertIn("traffic-1", report.verdicts["tck-id-operational-behavior-data-commands-rebirth-action-2"].detail)

    def test_device_down_without_ddeath(self):
        n = Node()
        n.births()
        down = n.event("device_down", device="traffic-1")
        last = n.ddata("air-1")
        last.t = down.t + 30
        self.assertFails(n.evaluate(), "tck-id-operational-behavior-device-ddeath", down.index)

    def test_clean_stop_without_ndeath_or_followed_by_the_will(self):
        n = Node()
        n.births()
        n.event("clean_stop")
        self.assertFails(n.evaluate(), "tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath")
        n.ndeath()
        n.ndeath()   # the broker's will as well: no DISCONNECT was sent
        self.assertFails(n.evaluate(), "tck-id-operational-behavior-edge-node-intentional-disconnect-packet")

    def test_an_undecodable_payload(self):
        n = Node()
        n.births()
        bad = n.stream.add(kind="message", topic=f"spBv1.0/{GROUP}/DDATA/{EDGE}/air-1", qos=0, retain=False,
                           payload=b"\xff\xff\xff")
        self.assertFails(n.evaluate(), "tck-id-payloads-sequence-num-always-included", bad.index)

    def test_a_topic_with_a_device_on_a_node_message(self):
        n = Node()
        n.births()
        p = n.payload()
        bad = n.send("NDATA", p, device="air-1")
        self.assertFails(n.evaluate(),
                         "tck-id-topic-structure-namespace-device-id-non-associated-message-types", bad.index)


class PrimaryHost(unittest.TestCase):
    def test_births_wait_for_the_host_and_offline_ends_the_session(self):
        n = Node()
        n.state("scada", False, NOW - 1000)
        n.state("scada", True, NOW)
        n.births()
        n.ddata("air-1")
        n.state("scada", False, NOW - 500)   # older than the last: ignored
        n.ddata("air-1")
        n.state("scada", False, NOW + 1000)
        n.ndeath()
        n.bdseq += 1
        n.state("scada", True, NOW + 2000)
        n.births()
        n.ddata("air-1")
        report = n.evaluate(host_id="scada")
        self.assertEqual(report.failures(), [], report.table())
        for aid in ("tck-id-message-flow-edge-node-birth-publish-phid-wait",
                    "tck-id-message-flow-edge-node-birth-publish-phid-offline",
                    "tck-id-operational-behavior-edge-node-termination-host-offline-reconnect",
                    "tck-id-operational-behavior-edge-node-termination-host-offline-timestamp"):
            self.assertEqual(report.status(aid), "PASS", aid + "\n" + report.table())

    def test_a_birth_before_the_host_is_online(self):
        n = Node()
        n.state("other-host", True, NOW)
        bad = n.nbirth()
        report = n.evaluate(host_id="scada")
        v = report.verdicts["tck-id-message-flow-edge-node-birth-publish-phid-wait"]
        self.assertEqual(v.status, "FAIL")
        self.assertIn(f"#{bad.index} ", v.detail)

    def test_data_going_on_after_the_host_went_offline(self):
        n = Node()
        n.state("scada", True, NOW)
        n.births()
        off = n.state("scada", False, NOW + 1)
        bad = n.ddata("air-1")
        bad.t = off.t + 5
        report = n.evaluate(host_id="scada")
        self.assertEqual(report.status("tck-id-message-flow-edge-node-birth-publish-phid-offline"), "FAIL")

    def test_a_stale_offline_that_is_obeyed(self):
        n = Node()
        n.state("scada", True, NOW)
        n.births()
        n.state("scada", False, NOW - 1)
        n.ndeath()
        report = n.evaluate(host_id="scada")
        self.assertEqual(report.status("tck-id-operational-behavior-edge-node-termination-host-offline-timestamp"),
                         "FAIL")


if __name__ == "__main__":
    unittest.main()
