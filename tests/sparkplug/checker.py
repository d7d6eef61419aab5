#!/usr/bin/python3
"""A Sparkplug B 3.0 edge-node conformance checker, keyed by the Eclipse Sparkplug TCK assertion ids.

It listens like a host application would (spBv1.0/# on a real broker), records every message with
its QoS, retain flag and arrival order, decodes the payloads with the module generated from
proto/sparkplug_b/sparkplug_b.proto ($CITYGATE_BUILD_DIR/python), and afterwards judges each
assertion over the whole recorded stream: PASS, FAIL (with the first offending message) or NOT
EXERCISED (nothing in the stream could have broken it).

What the stream cannot show by itself (a daemon killed, a device switched off, a clean stop) the
caller adds as events (Recorder.event), in the same order as the messages.

    checker.py --host 127.0.0.1 --port 1883 --group district-7 --edge gw-1 --seconds 30 [--rebirth]

As a library (tests/integration/test_sparkplug.py):

    rec = Recorder("127.0.0.1", port, group, edge).start()
    ...; rec.event("device_down", device="air-1"); ...
    report = evaluate(rec.snapshot(), group, edge, devices=[...], host_id=None)
    print(report.table()); assert report.failures() == []

The assertion ids and their wording are those of the Sparkplug 3.0 specification
(eclipse-sparkplug/sparkplug, specification/src/main/asciidoc/chapters/Sparkplug_4_Topics.adoc,
Sparkplug_5_Operational_Behavior.adoc, Sparkplug_6_Payloads.adoc; the TCK's Requirements.java
lists the same ids). Host-side, broker-side and template/dataset assertions are in EXCLUDED with
the reason.
"""
import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
sys.path.insert(0, str(BUILD / "python"))

from sparkplug_b import sparkplug_b_pb2 as spb  # noqa: E402  (generated)

NAMESPACE = "spBv1.0"
NODE_TYPES = ("NBIRTH", "NDEATH", "NDATA", "NCMD")
DEVICE_TYPES = ("DBIRTH", "DDEATH", "DDATA", "DCMD")
EDGE_SENT = ("NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA")
REBIRTH = "Node Control/Rebirth"

# Metric.datatype -> the value field the specification puts it in (Sparkplug_6_Payloads, "Datatypes").
VALUE_FIELD = {1: "int_value", 2: "int_value", 3: "int_value", 4: "long_value", 5: "int_value", 6: "int_value",
               7: "int_value", 8: "long_value", 9: "float_value", 10: "double_value", 11: "boolean_value",
               12: "string_value", 13: "long_value", 14: "string_value", 15: "string_value", 16: "dataset_value",
               17: "bytes_value", 18: "bytes_value", 19: "template_value"}
VALUE_FIELD.update({t: "bytes_value" for t in range(22, 35)})
PROPERTY_FIELD = {1: "int_value", 2: "int_value", 3: "int_value", 4: "long_value", 5: "int_value", 6: "int_value",
                  7: "int_value", 8: "long_value", 9: "float_value", 10: "double_value", 11: "boolean_value",
                  12: "string_value", 13: "long_value", 14: "string_value", 15: "string_value",
                  20: "propertyset_value", 21: "propertysets_value"}
QUALITY_CODES = (0, 192, 500)

# Timestamps are UTC milliseconds: anything before 2001-09-09 (1e12 ms) is seconds or garbage,
# anything a day ahead of the recorder's clock is not "now".
MIN_UTC_MS = 10**12
FUTURE_SLACK_MS = 86_400_000

# (id, what it asks of an edge node). The order is the table's.
ASSERTIONS = [
    ("tck-id-topic-structure", "topics are namespace/group_id/message_type/edge_node_id/[device_id]"),
    ("tck-id-topic-structure-namespace-a", "the namespace is spBv1.0"),
    ("tck-id-topic-structure-namespace-valid-group-id", "group_id is UTF-8 without + / #"),
    ("tck-id-topic-structure-namespace-valid-edge-node-id", "edge_node_id is UTF-8 without + / #"),
    ("tck-id-topic-structure-namespace-valid-device-id", "device_id is UTF-8 without + / #"),
    ("tck-id-topic-structure-namespace-device-id-associated-message-types",
     "device_id present on DBIRTH, DDEATH, DDATA, DCMD"),
    ("tck-id-topic-structure-namespace-device-id-non-associated-message-types",
     "no device_id on NBIRTH, NDEATH, NDATA, NCMD"),
    ("tck-id-topics-nbirth-topic", "NBIRTH topic form"),
    ("tck-id-topics-nbirth-mqtt", "NBIRTH QoS 0, retain false"),
    ("tck-id-topics-nbirth-seq-num", "NBIRTH seq is 0"),
    ("tck-id-topics-nbirth-timestamp", "NBIRTH has a payload timestamp"),
    ("tck-id-topics-nbirth-metric-reqs", "NBIRTH has every metric the node later reports"),
    ("tck-id-topics-nbirth-metrics", "NBIRTH metrics have name, datatype and a value (or is_null)"),
    ("tck-id-topics-nbirth-bdseq-included", "NBIRTH has a bdSeq metric"),
    ("tck-id-topics-nbirth-bdseq-matching", "NBIRTH bdSeq is the one of the will (NDEATH) of the session"),
    ("tck-id-topics-nbirth-bdseq-increment", "bdSeq starts at 0 and is +1 per MQTT CONNECT"),
    ("tck-id-topics-nbirth-rebirth-metric", "NBIRTH has Node Control/Rebirth, Boolean, false"),
    ("tck-id-topics-ndata-topic", "NDATA topic form"),
    ("tck-id-topics-ndata-mqtt", "NDATA QoS 0, retain false"),
    ("tck-id-topics-ndata-seq-num", "NDATA seq is previous+1 (255 -> 0)"),
    ("tck-id-topics-ndata-timestamp", "NDATA has a payload timestamp"),
    ("tck-id-topics-ndata-payload", "NDATA metrics are node metrics of the NBIRTH"),
    ("tck-id-topics-ndeath-topic", "NDEATH topic form"),
    ("tck-id-topics-ndeath-payload", "NDEATH has exactly one metric, bdSeq"),
    ("tck-id-topics-ndeath-seq", "NDEATH has no seq"),
    ("tck-id-topics-dbirth-topic", "DBIRTH topic form"),
    ("tck-id-topics-dbirth-mqtt", "DBIRTH QoS 0, retain false"),
    ("tck-id-topics-dbirth-seq", "DBIRTH seq is previous+1"),
    ("tck-id-topics-dbirth-timestamp", "DBIRTH has a payload timestamp"),
    ("tck-id-topics-dbirth-metric-reqs", "DBIRTH has every metric the device later reports"),
    ("tck-id-topics-dbirth-metrics", "DBIRTH metrics have name, datatype and a value (or is_null)"),
    ("tck-id-topics-ddata-topic", "DDATA topic form"),
    ("tck-id-topics-ddata-mqtt", "DDATA QoS 0, retain false"),
    ("tck-id-topics-ddata-seq-num", "DDATA seq is previous+1"),
    ("tck-id-topics-ddata-timestamp", "DDATA has a payload timestamp"),
    ("tck-id-topics-ddata-payload", "DDATA metrics are metrics of the device's DBIRTH, values of their datatype"),
    ("tck-id-topics-ddeath-topic", "DDEATH topic form"),
    ("tck-id-topics-ddeath-mqtt", "DDEATH QoS 0, retain false"),
    ("tck-id-topics-ddeath-seq-num", "DDEATH seq is previous+1"),
    ("tck-id-message-flow-edge-node-birth-publish-will-message", "the CONNECT carries a will (seen as NDEATH when the node dies)"),
    ("tck-id-message-flow-edge-node-birth-publish-will-message-topic", "will topic spBv1.0/group/NDEATH/edge"),
    ("tck-id-message-flow-edge-node-birth-publish-will-message-payload", "will payload is a Sparkplug B payload"),
    ("tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq", "will bdSeq is Int64, 0..255"),
    ("tck-id-message-flow-edge-node-birth-publish-will-message-qos", "will QoS 1"),
    ("tck-id-message-flow-edge-node-birth-publish-will-message-will-retained", "will retain false"),
    ("tck-id-message-flow-edge-node-birth-publish-subscribe", "with a primary host: births only after its STATE says online"),
    ("tck-id-message-flow-edge-node-birth-publish-phid-wait", "waits for the primary host before births"),
    ("tck-id-message-flow-edge-node-birth-publish-phid-wait-id", "only the configured host's STATE counts"),
    ("tck-id-message-flow-edge-node-birth-publish-phid-wait-online", "only online:true opens the births"),
    ("tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp", "a STATE older than the last seen is ignored"),
    ("tck-id-message-flow-edge-node-birth-publish-phid-offline", "host online:false -> NDEATH (and a new session)"),
    ("tck-id-message-flow-edge-node-birth-publish-nbirth-payload-bdSeq", "NBIRTH bdSeq Int64 equal to the will's"),
    ("tck-id-message-flow-edge-node-birth-publish-nbirth-qos", "NBIRTH QoS 0"),
    ("tck-id-message-flow-edge-node-birth-publish-nbirth-retained", "NBIRTH retain false"),
    ("tck-id-message-flow-edge-node-birth-publish-nbirth-payload-seq", "NBIRTH seq 0"),
    ("tck-id-message-flow-device-birth-publish-nbirth-wait", "DBIRTH only after the NBIRTH of the session"),
    ("tck-id-message-flow-device-birth-publish-dbirth-qos", "DBIRTH QoS 0"),
    ("tck-id-message-flow-device-birth-publish-dbirth-retained", "DBIRTH retain false"),
    ("tck-id-message-flow-device-birth-publish-dbirth-payload-seq", "DBIRTH seq previous+1"),
    ("tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath", "a clean stop publishes NDEATH (current bdSeq)"),
    ("tck-id-operational-behavior-edge-node-intentional-disconnect-packet", "then DISCONNECT: the broker's will does not follow"),
    ("tck-id-operational-behavior-edge-node-termination-host-offline", "host offline STATE -> disconnect"),
    ("tck-id-operational-behavior-edge-node-termination-host-offline-reconnect", "and a new session (bdSeq+1) afterwards"),
    ("tck-id-operational-behavior-edge-node-termination-host-offline-timestamp", "an offline STATE older than the last is ignored"),
    ("tck-id-operational-behavior-edge-node-birth-sequence-wait", "births wait for an online STATE"),
    ("tck-id-operational-behavior-device-ddeath", "a device lost -> DDEATH"),
    ("tck-id-operational-behavior-data-publish-nbirth-values", "NBIRTH metrics carry a value or is_null"),
    ("tck-id-operational-behavior-data-publish-nbirth-order", "non-historical NDATA/NBIRTH values in time order within a payload"),
    ("tck-id-operational-behavior-data-publish-dbirth", "DBIRTH has every metric the device reports in the session"),
    ("tck-id-operational-behavior-data-publish-dbirth-values", "DBIRTH metrics carry a value or is_null"),
    ("tck-id-operational-behavior-data-publish-dbirth-order", "non-historical DDATA/DBIRTH values in time order within a payload"),
    ("tck-id-operational-behavior-data-commands-rebirth-name", "NBIRTH has Node Control/Rebirth"),
    ("tck-id-operational-behavior-data-commands-rebirth-name-aliases", "Node Control/Rebirth has no alias"),
    ("tck-id-operational-behavior-data-commands-rebirth-datatype", "Node Control/Rebirth is Boolean"),
    ("tck-id-operational-behavior-data-commands-rebirth-value", "Node Control/Rebirth is false in NBIRTH"),
    ("tck-id-operational-behavior-data-commands-rebirth-action-1", "after a rebirth request: no more DATA of the old births"),
    ("tck-id-operational-behavior-data-commands-rebirth-action-2", "then NBIRTH and the DBIRTH of every live device before DATA"),
    ("tck-id-operational-behavior-data-commands-rebirth-action-3", "the rebirth NBIRTH keeps the bdSeq"),
    ("tck-id-payloads-timestamp-in-UTC", "payload timestamps are UTC ms"),
    ("tck-id-payloads-sequence-num-always-included", "every edge message except NDEATH has seq"),
    ("tck-id-payloads-sequence-num-zero-nbirth", "NBIRTH seq 0"),
    ("tck-id-payloads-sequence-num-incrementing", "one seq counter per node, +1 per message, 255 -> 0"),
    ("tck-id-payloads-name-requirement", "a metric has a name unless an alias was born for it"),
    ("tck-id-payloads-alias-uniqueness", "an alias is unique across the node and all its devices"),
    ("tck-id-payloads-alias-birth-requirement", "a birth metric with an alias also has its name"),
    ("tck-id-payloads-alias-data-cmd-requirement", "DATA metrics with a born alias carry the alias, not the name"),
    ("tck-id-payloads-name-birth-data-requirement", "metrics of NBIRTH, DBIRTH, NDATA, DDATA have a timestamp"),
    ("tck-id-payloads-metric-timestamp-in-UTC", "metric timestamps are UTC ms"),
    ("tck-id-payloads-metric-datatype-value", "datatype is a known DataType"),
    ("tck-id-payloads-metric-datatype-req", "births: datatype on every metric"),
    ("tck-id-payloads-metric-datatype-not-req", "DATA: no datatype (SHOULD NOT)"),
    ("tck-id-payloads-propertyset-keys-array-size", "PropertySet keys as many as values"),
    ("tck-id-payloads-propertyset-values-array-size", "PropertySet values as many as keys"),
    ("tck-id-payloads-metric-propertyvalue-type-value", "PropertyValue type known, value in its field"),
    ("tck-id-payloads-metric-propertyvalue-type-req", "PropertyValue type present"),
    ("tck-id-payloads-propertyset-quality-value-type", "Quality property is Int32 (3)"),
    ("tck-id-payloads-propertyset-quality-value-value", "Quality is 0, 192 or 500"),
    ("tck-id-payloads-nbirth-timestamp", "NBIRTH timestamp"),
    ("tck-id-payloads-nbirth-seq", "NBIRTH seq"),
    ("tck-id-payloads-nbirth-bdseq", "NBIRTH bdSeq metric"),
    ("tck-id-payloads-nbirth-bdseq-repeat", "NBIRTH bdSeq = the will's"),
    ("tck-id-payloads-nbirth-rebirth-req", "NBIRTH Node Control/Rebirth"),
    ("tck-id-payloads-nbirth-qos", "NBIRTH QoS 0"),
    ("tck-id-payloads-nbirth-retain", "NBIRTH retain false"),
    ("tck-id-payloads-dbirth-timestamp", "DBIRTH timestamp"),
    ("tck-id-payloads-dbirth-seq", "DBIRTH seq"),
    ("tck-id-payloads-dbirth-seq-inc", "DBIRTH seq +1"),
    ("tck-id-payloads-dbirth-order", "DBIRTH after the NBIRTH, inside the node's session"),
    ("tck-id-payloads-dbirth-qos", "DBIRTH QoS 0"),
    ("tck-id-payloads-dbirth-retain", "DBIRTH retain false"),
    ("tck-id-payloads-ndata-timestamp", "NDATA timestamp"),
    ("tck-id-payloads-ndata-seq", "NDATA seq"),
    ("tck-id-payloads-ndata-seq-inc", "NDATA seq +1"),
    ("tck-id-payloads-ndata-order", "NDATA only after the NBIRTH of the session"),
    ("tck-id-payloads-ndata-qos", "NDATA QoS 0"),
    ("tck-id-payloads-ndata-retain", "NDATA retain false"),
    ("tck-id-payloads-ddata-timestamp", "DDATA timestamp"),
    ("tck-id-payloads-ddata-seq", "DDATA seq"),
    ("tck-id-payloads-ddata-seq-inc", "DDATA seq +1"),
    ("tck-id-payloads-ddata-order", "DDATA only after NBIRTH and the device's DBIRTH"),
    ("tck-id-payloads-ddata-qos", "DDATA QoS 0"),
    ("tck-id-payloads-ddata-retain", "DDATA retain false"),
    ("tck-id-payloads-ndeath-seq", "NDEATH no seq"),
    ("tck-id-payloads-ndeath-will-message", "NDEATH is the will"),
    ("tck-id-payloads-ndeath-will-message-qos", "NDEATH QoS 1"),
    ("tck-id-payloads-ndeath-will-message-retain", "NDEATH retain false"),
    ("tck-id-payloads-ndeath-bdseq", "NDEATH bdSeq = the NBIRTH's of its session"),
    ("tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt311",
     "clean stop (3.1.1): NDEATH published, then DISCONNECT"),
    ("tck-id-payloads-ddeath-timestamp", "DDEATH timestamp"),
    ("tck-id-payloads-ddeath-seq", "DDEATH seq"),
    ("tck-id-payloads-ddeath-seq-inc", "DDEATH seq +1"),
    ("tck-id-payloads-ddeath-seq-number", "DDEATH seq in the node's counter"),
]

# Spec ids deliberately not judged here, and why.
EXCLUDED = [
    ("tck-id-topic-structure-namespace-unique-edge-node-descriptor", "deployment property (unique group/edge), not visible in one node's stream"),
    ("tck-id-topic-structure-namespace-unique-device-id", "guaranteed by the config validator (unique device ids); a stream cannot show a collision"),
    ("tck-id-topic-structure-namespace-duplicate-device-id-across-edge-node", "MAY; a permission, nothing to fail"),
    ("tck-id-case-sensitivity-sparkplug-ids / -metric-names", "SHOULD NOT on id choice; the config's ids"),
    ("tck-id-topics-nbirth-templates, tck-id-payloads-template-*", "citygate publishes no templates"),
    ("tck-id-payloads-dataset-*", "citygate publishes no DataSet metrics"),
    ("tck-id-topics-ncmd-*, tck-id-topics-dcmd-*, tck-id-payloads-ncmd-*, tck-id-payloads-dcmd-*", "obligations of the host that sends commands"),
    ("tck-id-operational-behavior-data-commands-ncmd-*/-dcmd-*", "host obligations (verb, name, value of a command)"),
    ("tck-id-host-topic-phid-*, tck-id-message-flow-phid-*, tck-id-operational-behavior-host-application-*, "
     "tck-id-payloads-state-*", "host application (STATE publisher) obligations"),
    ("tck-id-operational-behavior-host-reordering-*", "host application reorder timeout"),
    ("tck-id-operational-behavior-edge-node-termination-host-action-*", "what a host does on NDEATH/DDEATH"),
    ("tck-id-conformance-mqtt-*", "MQTT server (mosquitto) obligations"),
    ("tck-id-principles-persistence-clean-session-311/-50, tck-id-message-flow-edge-node-birth-publish-connect",
     "CONNECT flags are invisible to a subscriber; needs the TCK's broker-side interceptor"),
    ("tck-id-message-flow-edge-node-ncmd-subscribe, tck-id-message-flow-device-dcmd-subscribe",
     "SUBSCRIBE packets are invisible to a subscriber; exercised indirectly (rebirth, DCMD answered)"),
    ("tck-id-operational-behavior-primary-application-state-with-multiple-servers-*",
     "needs several brokers with one primary host; the daemon's failover list is not under test here"),
    ("tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt50", "the daemon speaks MQTT 3.1.1"),
    ("tck-id-operational-behavior-data-publish-nbirth-change / -dbirth-change",
     "report by exception: citygate reports every poll (time based reporting, which the spec allows but discourages)"),
    ("tck-id-topics-ndata-payload 'changed since'", "judged only as 'metrics of the NBIRTH'; RBE as above"),
]


@dataclass
class Record:
    """One message or one caller event, in arrival order."""
    index: int
    t: float                    # time.monotonic() at arrival
    wall_ms: int                # time.time() in ms at arrival
    kind: str                   # "message" | "event"
    topic: str = ""
    qos: int = 0
    retain: bool = False
    payload: bytes = b""
    event: str = ""
    detail: dict = field(default_factory=dict)
    parts: tuple = ()           # (namespace, group, type, edge, device or None) for spBv1.0 topics
    decoded: object = None      # spb.Payload
    decode_error: str = ""

    def describe(self):
        if self.kind == "event":
            return f"#{self.index} event {self.event} {self.detail}"
        seq = self.decoded.seq if self.decoded is not None and self.decoded.HasField("seq") else None
        return (f"#{self.index} {self.topic} qos={self.qos} retain={int(self.retain)} seq={seq}"
                + (f" undecodable: {self.decode_error}" if self.decode_error else ""))


def parse_topic(topic):
    parts = topic.split("/")
    if parts[0] != NAMESPACE:
        return None
    if len(parts) == 3 and parts[1] == "STATE":
        return (parts[0], None, "STATE", parts[2], None)
    if len(parts) == 4:
        return (parts[0], parts[1], parts[2], parts[3], None)
    if len(parts) == 5:
        return (parts[0], parts[1], parts[2], parts[3], parts[4])
    return (parts[0], None, None, None, None)


class Stream:
    """The recorded messages and events. Thread-safe; add() is called from the MQTT thread."""

    def __init__(self):
        self.lock = threading.Condition()
        self.records = []

    def add(self, **kw):
        with self.lock:
            r = Record(index=len(self.records), t=time.monotonic(), wall_ms=int(time.time() * 1000), **kw)
            if r.kind == "message":
                r.parts = parse_topic(r.topic) or ()
                if r.parts and r.parts[2] != "STATE":
                    try:
                        p = spb.Payload()
                        p.ParseFromString(r.payload)
                        r.decoded = p
                    except Exception as e:  # protobuf's DecodeError: the offending message is the finding
                        r.decode_error = str(e) or type(e).__name__
            self.records.append(r)
            self.lock.notify_all()
            return r

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def wait_for(self, predicate, timeout, what="condition"):
        """Blocks until predicate(records) is truthy (returned) or raises AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                value = predicate(self.records)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self.lock.wait(min(left, 0.2))


class Recorder:
    """A paho-mqtt (MQTT 5) subscriber on spBv1.0/# with a persistent session, so that it is back
    with its subscription after a broker outage. MQTT 5 because of retain-as-published: a 3.1.1
    broker clears the retain flag on live deliveries, and retain=true on a birth or data message is
    one of the things to catch. extra_topics (e.g. the daemon's delivery mark) are recorded too."""

    def __init__(self, host, port, group, edge, extra_topics=(), client_id=None, stream=None):
        import paho.mqtt.client as paho
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        from paho.mqtt.subscribeoptions import SubscribeOptions
        self._paho = paho
        self.host, self.port, self.group, self.edge = host, port, group, edge
        self.stream = stream or Stream()
        self.connected = False
        self.subscribed = False
        self._options = SubscribeOptions
        self.topics = [f"{NAMESPACE}/#"] + list(extra_topics)
        self.client = paho.Client(client_id=client_id or f"sp-checker-{os.getpid()}-{id(self)}",
                                  protocol=paho.MQTTv5)
        self._props = Properties(PacketTypes.CONNECT)
        self._props.SessionExpiryInterval = 3600  # the session outlives a broker outage
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)

    def start(self, timeout=15):
        self.client.connect_async(self.host, self.port, keepalive=10, clean_start=False, properties=self._props)
        self.client.loop_start()
        self.stream.wait_for(lambda _: self.subscribed, timeout, "the checker to subscribe")
        return self

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def event(self, name, **detail):
        """Something the stream cannot show (device_down, device_up, daemon_killed, clean_stop,
        broker_down, broker_up), recorded in order with the messages."""
        return self.stream.add(kind="event", event=name, detail=detail)

    def snapshot(self):
        return self.stream.snapshot()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc == 0:
            subs = [(t, self._options(qos=1, retainAsPublished=True)) for t in self.topics]
            client.subscribe(subs)
            present = flags.get("session present", 0) if isinstance(flags, dict) else 0
            self.stream.add(kind="event", event="recorder_connected", detail={"session_present": bool(present)})
            with self.stream.lock:
                self.connected = True
                self.stream.lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.stream.lock:
            self.subscribed = True
            self.stream.lock.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.stream.lock:
            was = self.connected
            self.connected = False
        if was:
            self.stream.add(kind="event", event="recorder_disconnected", detail={"rc": str(rc)})

    def _on_message(self, client, userdata, msg):
        self.stream.add(kind="message", topic=msg.topic, qos=msg.qos, retain=bool(msg.retain),
                        payload=bytes(msg.payload))


# ----------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class Verdict:
    id: str
    text: str
    status: str = "NOT EXERCISED"   # PASS | FAIL | NOT EXERCISED
    detail: str = ""
    count: int = 0                  # how many times it was checked
    failed: int = 0                 # how many of those failed


class Report:
    def __init__(self):
        self.verdicts = {aid: Verdict(aid, text) for aid, text in ASSERTIONS}
        self.notes = []

    def ok(self, aid):
        v = self.verdicts[aid]
        v.count += 1
        if v.status == "NOT EXERCISED":
            v.status = "PASS"

    def fail(self, aid, record, why):
        v = self.verdicts[aid]
        v.count += 1
        v.failed += 1
        if v.status != "FAIL":   # the first offending message is the one to look at
            v.status = "FAIL"
            v.detail = f"{why}: {record.describe() if record is not None else '(end of stream)'}"

    def check(self, aid, cond, record, why):
        if cond:
            self.ok(aid)
        else:
            self.fail(aid, record, why)
        return cond

    def failures(self):
        return [v for v in self.verdicts.values() if v.status == "FAIL"]

    def status(self, aid):
        return self.verdicts[aid].status

    def table(self):
        width = max(len(a) for a, _ in ASSERTIONS)
        lines = []
        for v in self.verdicts.values():
            line = f"{v.id:<{width}}  {v.status:<13}"
            if v.status == "FAIL":
                line += f"  ({v.failed} of {v.count} checks; first) {v.detail}"
            elif v.status == "PASS":
                line += f"  ({v.count} checks)"
            lines.append(line)
        counts = {s: sum(1 for v in self.verdicts.values() if v.status == s) for s in ("PASS", "FAIL", "NOT EXERCISED")}
        lines.append(f"-- {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['NOT EXERCISED']} NOT EXERCISED; "
                     f"{len(EXCLUDED)} groups excluded (see EXCLUDED)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self):
        return {v.id: {"status": v.status, "detail": v.detail, "checks": v.count, "failed": v.failed}
                for v in self.verdicts.values()}


def _valid_id(s):
    return bool(s) and not any(c in s for c in "+/#")


def _metric_value_field(m):
    return m.WhichOneof("value")


def _props(m):
    """The metric's properties as {key: PropertyValue}."""
    if not m.HasField("properties"):
        return {}
    return dict(zip(m.properties.keys, m.properties.values))


@dataclass
class _Device:
    born: bool = False
    metrics: dict = field(default_factory=dict)   # alias or name -> (name, datatype)


@dataclass
class _Session:
    bdseq: int
    birth: Record
    alive: bool = True
    node_metrics: dict = field(default_factory=dict)   # alias or name -> (name, datatype)
    aliases: dict = field(default_factory=dict)        # alias -> (device or None, name)
    devices: dict = field(default_factory=dict)        # device -> _Device
    data_started: bool = False


class _Evaluator:
    def __init__(self, records, group, edge, devices, host_id, fresh, grace_s, deadline_s, queued_while_away):
        self.records = records
        self.queued_while_away = queued_while_away
        self.group, self.edge = group, edge
        self.expected_devices = set(devices or ())
        self.host_id = host_id
        self.fresh = fresh
        self.grace_s = grace_s          # DATA already in flight when a command or STATE arrived
        self.deadline_s = deadline_s    # how long a reaction may take
        self.r = Report()
        self.session = None
        self.sessions = []              # every _Session in order
        self.last_bdseq = None          # of the last NBIRTH or NDEATH seen
        self.expected_seq = None        # None: unknown (start, or the recorder was away)
        self.recorder_gap = False
        self.rebirth_pending = None     # the NCMD record that asked
        self.rebirth_live = None        # devices alive when the rebirth was asked
        self.rebirth_nbirth = None
        self.state_ts = None            # last accepted STATE timestamp
        self.host_online = None         # None: no STATE seen yet
        self.offline_pending = None     # accepted offline STATE awaiting the NDEATH
        self.stale_offline = None       # a stale offline STATE (must be ignored)
        self.stop_pending = None        # clean_stop event awaiting NDEATH
        self.kill_pending = None        # daemon_killed event awaiting the will
        self.device_down = {}           # device -> event awaiting DDEATH
        self.ndeaths = {}               # bdSeq -> [records]
        self.offline_ndeath_bdseq = None

    # -- helpers
    def ours(self, rec):
        return rec.parts and rec.parts[1] == self.group and rec.parts[3] == self.edge

    def run(self):
        for rec in self.records:
            if rec.kind == "event":
                self.on_event(rec)
            elif rec.parts and rec.parts[2] == "STATE":
                self.on_state(rec)
            elif rec.parts:
                self.on_topic(rec)
                if self.ours(rec) and rec.parts[2] in EDGE_SENT:
                    self.on_edge_message(rec)
                elif self.ours(rec) and rec.parts[2] == "NCMD":
                    self.on_ncmd(rec)
        self.finish()
        return self.r

    # -- events
    def on_event(self, rec):
        e = rec.event
        if e == "recorder_disconnected":
            self.recorder_gap = True
            self.expected_seq = None
        elif e == "recorder_connected" and rec.detail.get("session_present") and self.queued_while_away:
            # The broker kept the recorder's session and queued even QoS 0 for it: nothing was
            # missed while it was away, so the stream is judged as if it had never left.
            self.recorder_gap = False
        elif e == "device_down":
            self.device_down[rec.detail["device"]] = rec
        elif e == "clean_stop":
            self.stop_pending = rec
        elif e == "daemon_killed":
            self.kill_pending = rec

    # -- the primary host's STATE
    def on_state(self, rec):
        host = rec.parts[3]
        if self.host_id is None or host != self.host_id:
            return  # another host's STATE: it must change nothing (checked at the NBIRTH: phid-wait-id)
        text = rec.payload.decode("utf-8", "replace").strip()
        online, ts = None, None
        try:
            j = json.loads(text)
            online, ts = bool(j.get("online")), int(j.get("timestamp", 0))
        except (ValueError, AttributeError, TypeError):
            if text in ("ONLINE", "OFFLINE"):   # Sparkplug 2.2 form
                online = text == "ONLINE"
        if online is None:
            return
        if ts is not None and self.state_ts is not None and ts < self.state_ts:
            if not online and self.session and self.session.alive:
                self.stale_offline = rec
            return
        if self.stale_offline is not None:
            # The stale offline STATE was ignored until this newer one: what it had to be.
            for aid in ("tck-id-operational-behavior-edge-node-termination-host-offline-timestamp",
                        "tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp"):
                self.r.ok(aid)
            self.stale_offline = None
        if ts is not None:
            self.state_ts = ts
        self.host_online = online
        if not online and self.session and self.session.alive:
            self.offline_pending = rec

    def on_ncmd(self, rec):
        p = rec.decoded
        if p is None:
            return
        for m in p.metrics:
            if m.name == REBIRTH and m.WhichOneof("value") == "boolean_value" and m.boolean_value:
                if self.session and self.session.alive:
                    self.rebirth_pending = rec
                    self.rebirth_live = {d for d, s in self.session.devices.items() if s.born}

    # -- topic form (every spBv1.0 message of this node, also commands)
    def on_topic(self, rec):
        ns, group, typ, edge, device = rec.parts
        r = self.r
        if group != self.group or edge != self.edge:
            return
        r.check("tck-id-topic-structure-namespace-a", ns == NAMESPACE, rec, "namespace")
        r.check("tck-id-topic-structure-namespace-valid-group-id", _valid_id(group), rec, "group_id")
        r.check("tck-id-topic-structure-namespace-valid-edge-node-id", _valid_id(edge), rec, "edge_node_id")
        known = typ in NODE_TYPES + DEVICE_TYPES
        r.check("tck-id-topic-structure", known and ((typ in NODE_TYPES) == (device is None)), rec,
                "not namespace/group_id/message_type/edge_node_id/[device_id]")
        if typ in DEVICE_TYPES:
            r.check("tck-id-topic-structure-namespace-device-id-associated-message-types", device is not None, rec,
                    f"{typ} without device_id")
            if device is not None:
                r.check("tck-id-topic-structure-namespace-valid-device-id", _valid_id(device), rec, "device_id")
        elif typ in NODE_TYPES:
            r.check("tck-id-topic-structure-namespace-device-id-non-associated-message-types", device is None, rec,
                    f"{typ} with a device_id")
        if typ in EDGE_SENT:
            tid = {"NBIRTH": "tck-id-topics-nbirth-topic", "NDATA": "tck-id-topics-ndata-topic",
                   "NDEATH": "tck-id-topics-ndeath-topic", "DBIRTH": "tck-id-topics-dbirth-topic",
                   "DDATA": "tck-id-topics-ddata-topic", "DDEATH": "tck-id-topics-ddeath-topic"}[typ]
            r.check(tid, (typ in NODE_TYPES) == (device is None), rec, "topic form")

    # -- what the node sent
    def on_edge_message(self, rec):
        typ = rec.parts[2]
        p = rec.decoded
        if p is None:
            # An undecodable payload fails every payload assertion of its type; one is enough to show it.
            aid = {"NDEATH": "tck-id-message-flow-edge-node-birth-publish-will-message-payload"}.get(
                typ, "tck-id-payloads-sequence-num-always-included")
            self.r.fail(aid, rec, "payload is not a Sparkplug B Payload")
            return
        self.check_mqtt_flags(rec, typ)
        if typ == "NDEATH":
            self.on_ndeath(rec, p)
            return
        self.check_timestamp(rec, typ, p)
        self.check_seq(rec, typ, p)
        self.check_metrics_common(rec, typ, p)
        handler = {"NBIRTH": self.on_nbirth, "DBIRTH": self.on_dbirth, "NDATA": self.on_ndata,
                   "DDATA": self.on_ddata, "DDEATH": self.on_ddeath}[typ]
        handler(rec, p)

    def check_mqtt_flags(self, rec, typ):
        r = self.r
        if typ == "NDEATH":
            r.check("tck-id-payloads-ndeath-will-message-qos", rec.qos == 1, rec, "NDEATH not QoS 1")
            r.check("tck-id-payloads-ndeath-will-message-retain", not rec.retain, rec, "NDEATH retained")
            return
        q0 = rec.qos == 0
        nr = not rec.retain
        ids = {"NBIRTH": ("tck-id-topics-nbirth-mqtt", "tck-id-payloads-nbirth-qos", "tck-id-payloads-nbirth-retain",
                          "tck-id-message-flow-edge-node-birth-publish-nbirth-qos",
                          "tck-id-message-flow-edge-node-birth-publish-nbirth-retained"),
               "DBIRTH": ("tck-id-topics-dbirth-mqtt", "tck-id-payloads-dbirth-qos", "tck-id-payloads-dbirth-retain",
                          "tck-id-message-flow-device-birth-publish-dbirth-qos",
                          "tck-id-message-flow-device-birth-publish-dbirth-retained"),
               "NDATA": ("tck-id-topics-ndata-mqtt", "tck-id-payloads-ndata-qos", "tck-id-payloads-ndata-retain"),
               "DDATA": ("tck-id-topics-ddata-mqtt", "tck-id-payloads-ddata-qos", "tck-id-payloads-ddata-retain"),
               "DDEATH": ("tck-id-topics-ddeath-mqtt",)}[typ]
        r.check(ids[0], q0 and nr, rec, f"{typ} not QoS 0 / retain false")
        if len(ids) >= 3:
            r.check(ids[1], q0, rec, f"{typ} not QoS 0")
            r.check(ids[2], nr, rec, f"{typ} retained")
        if len(ids) == 5:
            r.check(ids[3], q0, rec, f"{typ} not QoS 0")
            r.check(ids[4], nr, rec, f"{typ} retained")

    def check_timestamp(self, rec, typ, p):
        ids = {"NBIRTH": ("tck-id-topics-nbirth-timestamp", "tck-id-payloads-nbirth-timestamp"),
               "DBIRTH": ("tck-id-topics-dbirth-timestamp", "tck-id-payloads-dbirth-timestamp"),
               "NDATA": ("tck-id-topics-ndata-timestamp", "tck-id-payloads-ndata-timestamp"),
               "DDATA": ("tck-id-topics-ddata-timestamp", "tck-id-payloads-ddata-timestamp"),
               "DDEATH": ("tck-id-payloads-ddeath-timestamp",)}[typ]
        has = p.HasField("timestamp")
        for aid in ids:
            self.r.check(aid, has, rec, f"{typ} without a payload timestamp")
        if has:
            self.r.check("tck-id-payloads-timestamp-in-UTC",
                         MIN_UTC_MS <= p.timestamp <= rec.wall_ms + FUTURE_SLACK_MS, rec,
                         f"payload timestamp {p.timestamp} is not UTC ms now")

    def check_seq(self, rec, typ, p):
        r = self.r
        has = p.HasField("seq")
        r.check("tck-id-payloads-sequence-num-always-included", has, rec, f"{typ} without seq")
        per_type = {"NBIRTH": ("tck-id-payloads-nbirth-seq",), "DBIRTH": ("tck-id-payloads-dbirth-seq",),
                    "NDATA": ("tck-id-payloads-ndata-seq",), "DDATA": ("tck-id-payloads-ddata-seq",),
                    "DDEATH": ("tck-id-payloads-ddeath-seq",)}[typ]
        for aid in per_type:
            r.check(aid, has, rec, f"{typ} without seq")
        if not has:
            self.expected_seq = None
            return
        seq = p.seq
        if typ == "NBIRTH":
            for aid in ("tck-id-topics-nbirth-seq-num", "tck-id-payloads-sequence-num-zero-nbirth",
                        "tck-id-message-flow-edge-node-birth-publish-nbirth-payload-seq"):
                r.check(aid, seq == 0, rec, f"NBIRTH seq {seq}, not 0")
            self.expected_seq = (seq + 1) % 256
            return
        if self.expected_seq is None:
            # The recorder was away (or this is the first message it saw): pick the counter up here.
            self.expected_seq = (seq + 1) % 256
            return
        good = seq == self.expected_seq
        why = f"{typ} seq {seq}, expected {self.expected_seq}"
        r.check("tck-id-payloads-sequence-num-incrementing", good, rec, why)
        for aid in {"DBIRTH": ("tck-id-topics-dbirth-seq", "tck-id-payloads-dbirth-seq-inc",
                               "tck-id-message-flow-device-birth-publish-dbirth-payload-seq"),
                    "NDATA": ("tck-id-topics-ndata-seq-num", "tck-id-payloads-ndata-seq-inc"),
                    "DDATA": ("tck-id-topics-ddata-seq-num", "tck-id-payloads-ddata-seq-inc"),
                    "DDEATH": ("tck-id-topics-ddeath-seq-num", "tck-id-payloads-ddeath-seq-inc",
                               "tck-id-payloads-ddeath-seq-number")}[typ]:
            r.check(aid, good, rec, why)
        self.expected_seq = (seq + 1) % 256

    def check_metrics_common(self, rec, typ, p):
        r = self.r
        birth = typ in ("NBIRTH", "DBIRTH")
        data = typ in ("NDATA", "DDATA")
        for m in p.metrics:
            if birth or data:
                r.check("tck-id-payloads-name-birth-data-requirement", m.HasField("timestamp"), rec,
                        f"metric {m.name or m.alias} without a timestamp")
            if m.HasField("timestamp"):
                r.check("tck-id-payloads-metric-timestamp-in-UTC",
                        MIN_UTC_MS <= m.timestamp <= rec.wall_ms + FUTURE_SLACK_MS, rec,
                        f"metric {m.name or m.alias} timestamp {m.timestamp} is not UTC ms")
            if m.HasField("datatype"):
                r.check("tck-id-payloads-metric-datatype-value", m.datatype in VALUE_FIELD, rec,
                        f"metric {m.name or m.alias} datatype {m.datatype} unknown")
            if birth:
                r.check("tck-id-payloads-metric-datatype-req", m.HasField("datatype"), rec,
                        f"birth metric {m.name or m.alias} without datatype")
                if m.HasField("alias"):
                    r.check("tck-id-payloads-alias-birth-requirement", bool(m.name), rec,
                            f"birth metric alias {m.alias} without a name")
            if data:
                r.check("tck-id-payloads-metric-datatype-not-req", not m.HasField("datatype"), rec,
                        f"DATA metric {m.name or m.alias} carries a datatype")
            if m.HasField("properties"):
                ps = m.properties
                r.check("tck-id-payloads-propertyset-keys-array-size", len(ps.keys) == len(ps.values), rec,
                        f"{len(ps.keys)} keys, {len(ps.values)} values")
                r.check("tck-id-payloads-propertyset-values-array-size", len(ps.keys) == len(ps.values), rec,
                        f"{len(ps.keys)} keys, {len(ps.values)} values")
                for k, v in zip(ps.keys, ps.values):
                    r.check("tck-id-payloads-metric-propertyvalue-type-req", v.HasField("type"), rec,
                            f"property {k} without type")
                    field_ok = v.HasField("type") and v.type in PROPERTY_FIELD and (
                        v.is_null or v.WhichOneof("value") == PROPERTY_FIELD[v.type])
                    r.check("tck-id-payloads-metric-propertyvalue-type-value", field_ok, rec,
                            f"property {k} type {v.type} with value in {v.WhichOneof('value')}")
                    if k == "Quality":
                        r.check("tck-id-payloads-propertyset-quality-value-type", v.type == 3, rec,
                                f"Quality property type {v.type}, not Int32 (3)")
                        r.check("tck-id-payloads-propertyset-quality-value-value",
                                v.WhichOneof("value") == "int_value" and v.int_value in QUALITY_CODES, rec,
                                f"metric {m.name or m.alias} Quality {getattr(v, v.WhichOneof('value') or 'int_value')}"
                                " not in 0/192/500")
        if birth or data:
            # Non-historical values of one metric in time order within the payload.
            aid = ("tck-id-operational-behavior-data-publish-nbirth-order" if typ in ("NBIRTH", "NDATA")
                   else "tck-id-operational-behavior-data-publish-dbirth-order")
            # Judged once per payload: one that carries each metric once holds it as well.
            last, disorder = {}, None
            for m in p.metrics:
                if m.is_historical or not m.HasField("timestamp"):
                    continue
                key = m.alias if m.HasField("alias") else m.name
                if key in last and m.timestamp < last[key] and disorder is None:
                    disorder = f"metric {key} at {m.timestamp} after one at {last[key]}"
                last[key] = m.timestamp
            r.check(aid, disorder is None, rec, disorder or "")

    def birth_metric_checks(self, rec, typ, p, table, device):
        r = self.r
        s = self.session
        values_id = ("tck-id-operational-behavior-data-publish-nbirth-values" if typ == "NBIRTH"
                     else "tck-id-operational-behavior-data-publish-dbirth-values")
        metrics_id = "tck-id-topics-nbirth-metrics" if typ == "NBIRTH" else "tck-id-topics-dbirth-metrics"
        for m in p.metrics:
            r.check("tck-id-payloads-name-requirement", bool(m.name), rec, f"birth metric alias {m.alias} without a name")
            vf = _metric_value_field(m)
            has_value = (vf is not None) != bool(m.is_null) and (vf is None or VALUE_FIELD.get(m.datatype) == vf)
            r.check(values_id, has_value, rec,
                    f"metric {m.name}: value field {vf}, is_null {m.is_null}, datatype {m.datatype}")
            r.check(metrics_id, bool(m.name) and m.HasField("datatype") and has_value, rec,
                    f"metric {m.name or m.alias} lacks name, datatype or value")
            if m.HasField("alias"):
                owner = s.aliases.get(m.alias)
                unique = owner is None or owner == (device, m.name)
                r.check("tck-id-payloads-alias-uniqueness", unique, rec,
                        f"alias {m.alias} of {m.name} already names {owner}")
                s.aliases[m.alias] = (device, m.name)
                table[("a", m.alias)] = (m.name, m.datatype)
            if m.name:
                table[("n", m.name)] = (m.name, m.datatype)

    def data_metric_checks(self, rec, typ, p, table, device):
        r = self.r
        payload_id = "tck-id-topics-ndata-payload" if typ == "NDATA" else "tck-id-topics-ddata-payload"
        reqs_id = "tck-id-topics-nbirth-metric-reqs" if typ == "NDATA" else "tck-id-topics-dbirth-metric-reqs"
        for m in p.metrics:
            if m.HasField("alias"):
                born = table.get(("a", m.alias))
            else:
                r.check("tck-id-payloads-name-requirement", bool(m.name), rec, "metric without name and alias")
                born = table.get(("n", m.name))
                # A metric born with an alias is sent by alias only.
                aliased = any(k[0] == "a" and v[0] == m.name for k, v in table.items())
                r.check("tck-id-payloads-alias-data-cmd-requirement", not aliased, rec,
                        f"metric {m.name} sent by name though born with an alias")
            if m.HasField("alias"):
                r.check("tck-id-payloads-alias-data-cmd-requirement", not m.name, rec,
                        f"metric alias {m.alias} also carries the name {m.name}")
            r.check(reqs_id, born is not None, rec, f"metric {m.alias or m.name} not in the birth")
            if typ == "DDATA":
                r.check("tck-id-operational-behavior-data-publish-dbirth", born is not None, rec,
                        f"metric {m.alias or m.name} not in the DBIRTH")
            if born is not None:
                vf = _metric_value_field(m)
                fits = (vf is None and m.is_null) or (vf is not None and not m.is_null and VALUE_FIELD.get(born[1]) == vf)
                r.check(payload_id, fits, rec,
                        f"metric {born[0]} (datatype {born[1]}) value in {vf}, is_null {m.is_null}")

    def on_nbirth(self, rec, p):
        r = self.r
        names = {m.name: m for m in p.metrics}
        bd = names.get("bdSeq")
        for aid in ("tck-id-topics-nbirth-bdseq-included", "tck-id-payloads-nbirth-bdseq"):
            r.check(aid, bd is not None, rec, "NBIRTH without bdSeq")
        bdseq = None
        if bd is not None:
            int64 = bd.datatype == 4 and bd.WhichOneof("value") == "long_value"
            r.check("tck-id-message-flow-edge-node-birth-publish-nbirth-payload-bdSeq", int64 and bd.long_value < 256,
                    rec, f"bdSeq datatype {bd.datatype} value field {bd.WhichOneof('value')}")
            bdseq = bd.long_value if bd.WhichOneof("value") == "long_value" else None
        rb = names.get(REBIRTH)
        r.check("tck-id-operational-behavior-data-commands-rebirth-name", rb is not None, rec, "no Node Control/Rebirth")
        rb_ok = rb is not None and rb.datatype == 11 and rb.WhichOneof("value") == "boolean_value" and not rb.boolean_value
        for aid in ("tck-id-topics-nbirth-rebirth-metric", "tck-id-payloads-nbirth-rebirth-req"):
            r.check(aid, rb_ok, rec, "Node Control/Rebirth missing, not Boolean or not false")
        if rb is not None:
            r.check("tck-id-operational-behavior-data-commands-rebirth-datatype", rb.datatype == 11, rec,
                    f"Node Control/Rebirth datatype {rb.datatype}")
            r.check("tck-id-operational-behavior-data-commands-rebirth-value",
                    rb.WhichOneof("value") == "boolean_value" and not rb.boolean_value, rec,
                    "Node Control/Rebirth is not false")
            r.check("tck-id-operational-behavior-data-commands-rebirth-name-aliases", not rb.HasField("alias"), rec,
                    f"Node Control/Rebirth has alias {rb.alias}")

        # STATE gating.
        if self.host_id is not None:
            allowed = self.host_online is True
            for aid in ("tck-id-message-flow-edge-node-birth-publish-subscribe",
                        "tck-id-message-flow-edge-node-birth-publish-phid-wait",
                        "tck-id-message-flow-edge-node-birth-publish-phid-wait-online",
                        "tck-id-operational-behavior-edge-node-birth-sequence-wait"):
                r.check(aid, allowed, rec, f"NBIRTH while the primary host '{self.host_id}' is "
                        f"{'not yet seen' if self.host_online is None else 'offline'}")
            r.check("tck-id-message-flow-edge-node-birth-publish-phid-wait-id", allowed, rec,
                    "NBIRTH without an online STATE of the configured host")

        prev = self.session
        rebirth = self.rebirth_pending is not None and prev is not None and prev.alive
        if rebirth:
            r.check("tck-id-operational-behavior-data-commands-rebirth-action-3", bdseq == prev.bdseq, rec,
                    f"rebirth NBIRTH bdSeq {bdseq}, session bdSeq {prev.bdseq}")
            self.rebirth_nbirth = rec
            self.rebirth_pending = None
        elif bdseq is not None:
            # A new MQTT session: bdSeq must be new, +1 of the previous CONNECT's.
            if self.last_bdseq is None:
                if self.fresh:
                    r.check("tck-id-topics-nbirth-bdseq-increment", bdseq == 0, rec,
                            f"first bdSeq {bdseq} on a fresh state dir, not 0")
            else:
                want = (self.last_bdseq + 1) % 256
                if bdseq != want and self.recorder_gap and bdseq != self.last_bdseq:
                    self.r.notes.append(f"bdSeq {self.last_bdseq} -> {bdseq} across a recorder gap at #{rec.index}")
                else:
                    r.check("tck-id-topics-nbirth-bdseq-increment", bdseq == want, rec,
                            f"NBIRTH of a new session with bdSeq {bdseq}, previous {self.last_bdseq}"
                            + (" (the same: a reconnect reused the will)" if bdseq == self.last_bdseq else ""))
            if self.offline_ndeath_bdseq is not None:
                r.check("tck-id-operational-behavior-edge-node-termination-host-offline-reconnect",
                        bdseq == (self.offline_ndeath_bdseq + 1) % 256, rec,
                        f"after the host-offline NDEATH {self.offline_ndeath_bdseq}, NBIRTH bdSeq {bdseq}")
                self.offline_ndeath_bdseq = None
        if prev is not None and prev.alive and not rebirth:
            # The previous session ended without an NDEATH we saw (broker outage: the will died with
            # the broker). Nothing to judge; its NDEATH may still come late.
            prev.alive = False
        s = _Session(bdseq=bdseq, birth=rec)
        if rebirth:
            s.devices = {d: _Device() for d in prev.devices}
        self.session = s
        self.sessions.append(s)
        if bdseq is not None:
            self.last_bdseq = bdseq
        self.recorder_gap = False
        self.offline_pending = None
        self.stale_offline = None
        self.birth_metric_checks(rec, "NBIRTH", p, s.node_metrics, None)

    def on_dbirth(self, rec, p):
        s = self.session
        dev = rec.parts[4]
        inside = s is not None and s.alive
        for aid in ("tck-id-message-flow-device-birth-publish-nbirth-wait", "tck-id-payloads-dbirth-order"):
            self.r.check(aid, inside, rec, "DBIRTH outside a node session (no NBIRTH, or after NDEATH)")
        if not inside:
            return
        d = _Device(born=True)
        s.devices[dev] = d
        self.birth_metric_checks(rec, "DBIRTH", p, d.metrics, dev)

    def _rebirth_checks_on_data(self, rec):
        """DATA while a rebirth is asked: allowed only while in flight; after the rebirth NBIRTH,
        every device that was alive must have its DBIRTH before any DATA."""
        r = self.r
        if self.rebirth_pending is not None:
            r.check("tck-id-operational-behavior-data-commands-rebirth-action-1",
                    rec.t - self.rebirth_pending.t <= self.grace_s, rec,
                    f"DATA {rec.t - self.rebirth_pending.t:.2f} s after the rebirth request, still no NBIRTH")
        elif self.rebirth_nbirth is not None and self.session is not None and not self.session.data_started:
            missing = sorted(d for d in (self.rebirth_live or ()) if not self.session.devices.get(d, _Device()).born)
            r.check("tck-id-operational-behavior-data-commands-rebirth-action-2", not missing, rec,
                    f"DATA after the rebirth NBIRTH before the DBIRTH of {missing}")
            r.ok("tck-id-operational-behavior-data-commands-rebirth-action-1")
            self.rebirth_nbirth = None
            self.rebirth_live = None

    def _state_checks_on_data(self, rec):
        if self.offline_pending is not None and rec.t - self.offline_pending.t > self.grace_s:
            self.r.fail("tck-id-message-flow-edge-node-birth-publish-phid-offline", rec,
                        "DATA after the primary host went offline, no NDEATH")
            self.r.fail("tck-id-operational-behavior-edge-node-termination-host-offline", rec,
                        "DATA after the primary host went offline, no NDEATH")
            self.offline_pending = None

    def on_ndata(self, rec, p):
        s = self.session
        inside = s is not None and s.alive
        self.r.check("tck-id-payloads-ndata-order", inside, rec, "NDATA outside a node session")
        self._rebirth_checks_on_data(rec)
        self._state_checks_on_data(rec)
        if not inside:
            return
        s.data_started = True
        self.data_metric_checks(rec, "NDATA", p, s.node_metrics, None)

    def on_ddata(self, rec, p):
        s = self.session
        dev = rec.parts[4]
        d = s.devices.get(dev) if s is not None else None
        inside = s is not None and s.alive and d is not None and d.born
        self.r.check("tck-id-payloads-ddata-order", inside, rec,
                     "DDATA outside a node session or before the device's DBIRTH (or after its DDEATH)")
        self._rebirth_checks_on_data(rec)
        self._state_checks_on_data(rec)
        if s is None or not s.alive:
            return
        s.data_started = True
        if d is not None:
            self.data_metric_checks(rec, "DDATA", p, d.metrics, dev)

    def on_ddeath(self, rec, p):
        s = self.session
        dev = rec.parts[4]
        if s is not None and dev in s.devices:
            s.devices[dev].born = False
        ev = self.device_down.pop(dev, None)
        if ev is not None:
            self.r.check("tck-id-operational-behavior-device-ddeath", rec.t - ev.t <= self.deadline_s, rec,
                         f"DDEATH {rec.t - ev.t:.1f} s after the device went down")

    def on_ndeath(self, rec, p):
        r = self.r
        r.check("tck-id-topics-ndeath-seq", not p.HasField("seq"), rec, "NDEATH carries seq")
        r.check("tck-id-payloads-ndeath-seq", not p.HasField("seq"), rec, "NDEATH carries seq")
        one = len(p.metrics) == 1 and p.metrics[0].name == "bdSeq"
        r.check("tck-id-topics-ndeath-payload", one, rec,
                f"NDEATH metrics {[m.name for m in p.metrics]}, not exactly bdSeq")
        bd = next((m for m in p.metrics if m.name == "bdSeq"), None)
        bdseq = bd.long_value if bd is not None and bd.WhichOneof("value") == "long_value" else None
        is_will = self.kill_pending is not None
        if is_will:
            # The broker published the will: this NDEATH is the CONNECT's will message itself.
            self.kill_pending = None
            r.ok("tck-id-message-flow-edge-node-birth-publish-will-message")
            r.ok("tck-id-payloads-ndeath-will-message")
            r.ok("tck-id-message-flow-edge-node-birth-publish-will-message-topic")
            r.ok("tck-id-message-flow-edge-node-birth-publish-will-message-payload")
            r.check("tck-id-message-flow-edge-node-birth-publish-will-message-qos", rec.qos == 1, rec,
                    "will not QoS 1")
            r.check("tck-id-message-flow-edge-node-birth-publish-will-message-will-retained", not rec.retain, rec,
                    "will retained")
        if bd is not None:
            int64 = bd.datatype == 4 and bd.WhichOneof("value") == "long_value" and bd.long_value < 256
            aid = ("tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq" if is_will
                   else "tck-id-payloads-ndeath-bdseq")
            r.check(aid, int64, rec, f"NDEATH bdSeq datatype {bd.datatype} field {bd.WhichOneof('value')}")
        self.ndeaths.setdefault(bdseq, []).append(rec)
        s = self.session
        current = s is not None and bdseq == s.bdseq
        if s is not None and bdseq is not None and s.bdseq is not None:
            # A will may arrive after the next session's NBIRTH; it must still name a session seen.
            known = any(x.bdseq == bdseq for x in self.sessions)
            for aid in ("tck-id-topics-nbirth-bdseq-matching", "tck-id-payloads-nbirth-bdseq-repeat",
                        "tck-id-payloads-ndeath-bdseq"):
                r.check(aid, known, rec, f"NDEATH bdSeq {bdseq} matches no NBIRTH (last {s.bdseq})")
        if self.stop_pending is not None and current:
            for aid in ("tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath",
                        "tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt311"):
                r.ok(aid)
        if self.offline_pending is not None and current:
            for aid in ("tck-id-message-flow-edge-node-birth-publish-phid-offline",
                        "tck-id-operational-behavior-edge-node-termination-host-offline"):
                r.check(aid, rec.t - self.offline_pending.t <= self.deadline_s, rec,
                        f"NDEATH {rec.t - self.offline_pending.t:.1f} s after the offline STATE")
            self.offline_pending = None
            self.offline_ndeath_bdseq = bdseq
        if self.stale_offline is not None and current:
            r.fail("tck-id-operational-behavior-edge-node-termination-host-offline-timestamp", rec,
                   "NDEATH after an offline STATE older than the last online one")
            r.fail("tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp", rec,
                   "NDEATH after an offline STATE older than the last online one")
            self.stale_offline = None
        if current:
            s.alive = False
            self.rebirth_pending = None
        if bdseq is not None and (self.last_bdseq is None or current):
            self.last_bdseq = bdseq

    def finish(self):
        r = self.r
        end = self.records[-1] if self.records else None
        for dev, ev in self.device_down.items():
            if end is not None and end.t - ev.t > self.deadline_s:
                r.fail("tck-id-operational-behavior-device-ddeath", ev, f"no DDEATH for {dev}")
        if self.stop_pending is not None:
            bd = self.session.bdseq if self.session else None
            after = [x for x in self.ndeaths.get(bd, []) if x.index > self.stop_pending.index]
            if not after:
                for aid in ("tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath",
                            "tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt311"):
                    r.fail(aid, self.stop_pending, f"no NDEATH with bdSeq {bd} after the clean stop")
            else:
                # Had the node not sent DISCONNECT, the broker would publish the will as well.
                r.check("tck-id-operational-behavior-edge-node-intentional-disconnect-packet", len(after) == 1,
                        after[-1], f"{len(after)} NDEATH for bdSeq {bd}: the will followed the node's NDEATH")
        if self.stale_offline is not None:
            for aid in ("tck-id-operational-behavior-edge-node-termination-host-offline-timestamp",
                        "tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp"):
                r.ok(aid)
        if self.kill_pending is not None and end is not None and end.t - self.kill_pending.t > self.deadline_s:
            r.fail("tck-id-message-flow-edge-node-birth-publish-will-message", self.kill_pending,
                   "no NDEATH (will) after the daemon was killed")


def evaluate(records, group, edge, devices=(), host_id=None, fresh=False, grace_s=1.0, deadline_s=15.0,
             queued_while_away=False):
    """Judges every assertion over `records` (Recorder.snapshot()). fresh: the daemon started with
    an empty state dir (its first bdSeq must be 0). grace_s: DATA already on its way when a rebirth
    request or an offline STATE arrived. deadline_s: the longest a reaction (DDEATH, NDEATH) may take.
    queued_while_away: the broker queues QoS 0 for the recorder's persistent session (mosquitto
    queue_qos0_messages true), so a reconnect that finds its session missed nothing; otherwise a
    bdSeq jump across a recorder reconnect is only a note (a whole session may have been missed)."""
    return _Evaluator(records, group, edge, devices, host_id, fresh, grace_s, deadline_s, queued_while_away).run()


def ddata_readings(records, group, edge):
    """Every DDATA metric's native seq property: [(seq, device, is_historical, record)] in arrival order."""
    out = []
    for rec in records:
        if rec.kind != "message" or not rec.parts or rec.parts[2] != "DDATA" or rec.decoded is None:
            continue
        if rec.parts[1] != group or rec.parts[3] != edge:
            continue
        for m in rec.decoded.metrics:
            v = _props(m).get("seq")
            if v is not None:
                out.append((v.long_value, rec.parts[4], m.is_historical, rec))
    return out


def rebirth_payload(timestamp_ms=None):
    """An NCMD Node Control/Rebirth = true (by name, as any host sends it)."""
    p = spb.Payload(timestamp=timestamp_ms or int(time.time() * 1000))
    m = p.metrics.add(name=REBIRTH, datatype=11, boolean_value=True)
    m.timestamp = p.timestamp
    return p.SerializeToString()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Sparkplug B 3.0 edge-node conformance checker (TCK assertion ids)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--group", required=True)
    ap.add_argument("--edge", required=True)
    ap.add_argument("--seconds", type=float, default=30, help="how long to record")
    ap.add_argument("--rebirth", action="store_true", help="send an NCMD rebirth once the node is born")
    ap.add_argument("--host-id", help="the node's primary host id (judges the STATE gating)")
    ap.add_argument("--fresh", action="store_true", help="the node starts with an empty state dir (bdSeq 0)")
    ap.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    args = ap.parse_args(argv)
    rec = Recorder(args.host, args.port, args.group, args.edge).start()
    deadline = time.monotonic() + args.seconds
    if args.rebirth:
        def born(records):
            return any(r.parts and r.parts[2] == "NBIRTH" and r.parts[3] == args.edge for r in records)
        try:
            rec.stream.wait_for(born, args.seconds, "an NBIRTH")
            rec.client.publish(f"{NAMESPACE}/{args.group}/NCMD/{args.edge}", rebirth_payload(), qos=0)
        except AssertionError as e:
            print(f"no rebirth sent: {e}", file=sys.stderr)
    left = deadline - time.monotonic()
    if left > 0:
        # Recording for a fixed time is this mode's whole job: the wait is the measurement window.
        with rec.stream.lock:
            rec.stream.lock.wait_for(lambda: time.monotonic() >= deadline, left)
    rec.stop()
    report = evaluate(rec.snapshot(), args.group, args.edge, host_id=args.host_id, fresh=args.fresh)
    print(json.dumps(report.as_dict(), indent=1) if args.json else report.table())
    print("excluded:", file=sys.stderr)
    for aid, why in EXCLUDED:
        print(f"  {aid}: {why}", file=sys.stderr)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
