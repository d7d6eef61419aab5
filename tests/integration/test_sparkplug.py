"""The Sparkplug B mode (mqtt { format: SPARKPLUG_B }) against real peers: mosquitto, pymodbus
devices, the real daemon, a host application on Eclipse Tahu's JavaScript codec
(tests/peers/sparkplug_host.js) and the conformance checker (tests/sparkplug/checker.py), which
judges the whole recorded stream by the Sparkplug 3.0 TCK assertion ids and prints its table.

  a. births, data, a rebirth asked by the host, a device down and back, a clean stop; a run gated
     by a primary host's STATE: every exercised assertion PASSes.
  b. Tahu's decoder and ours see the same names, aliases, datatypes and values.
  c. a broker outage and three kill -9 under load: every native seq reaches DDATA (duplicates
     allowed, none missing), what waited is is_historical, each session's bdSeq is new and is
     the one of its will.
  d. DCMD: a write is carried out and audited, a read-only metric refused and audited, malformed
     commands are counted and publishing goes on.
"""
import json
import os
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

from harness import PEERS, IntegrationTest, commands_pb2, gateway_config, wait_for, wait_on

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sparkplug"))
import checker  # noqa: E402  (tests/sparkplug)

GROUP = "district-7"
GW = "gw-sp"

CONTROLLER = """name: "test-controller"
kind: GENERIC
point { field: "period" table: HOLDING_REGISTER address: 10 type: UINT16 scale: 0.1 unit: "s" writable { min: 10 max: 3600 } }
point { field: "serial" table: HOLDING_REGISTER address: 30 type: UINT32 }
"""

AIR = {"hr": {"0": 20, "1": 3, "2": 40, "4": 1, "5": 30, "6": 5, "8": 123, "9": 456, "10": 215, "11": 655,
              "12": 9650}}


def traffic_unit(intensity=197):
    values = []
    for lane in range(4):
        base = lane * 10
        values += [
            {"table": "ir", "address": base, "type": "UINT32", "order": "ABCD", "value": intensity + lane},
            {"table": "ir", "address": base + 2, "type": "UINT16", "value": 250 + lane},
            {"table": "ir", "address": base + 3, "type": "UINT16", "value": 523},
            {"table": "ir", "address": base + 4, "type": "UINT16", "value": 4},
            {"table": "ir", "address": base + 5, "type": "UINT16", "value": 21},
        ]
    return {"values": values}


class Host:
    """tests/peers/sparkplug_host.js as a child: JSON lines in, commands on stdin."""

    def __init__(self, env, broker, host_id=None, online=False):
        argv = ["node", str(PEERS / "sparkplug_host.js"), "--port", str(broker.port), "--group", GROUP]
        if host_id:
            argv += ["--host-id", host_id]
        if online:
            argv.append("--online")
        self.log = open(env.path("sparkplug_host.log"), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     cwd=PEERS, text=True, start_new_session=True)
        self.cond = threading.Condition()
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_for(lambda: any(x.get("connected") for x in self.lines), 15, "the host to connect")

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"error": f"not JSON: {line!r}"}
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()

    def wait_for(self, predicate, timeout, what):
        return wait_on(self.cond, predicate, timeout, what, said=lambda: f"; host said: {self.lines[-5:]}")

    def command(self, text):
        """Sends one stdin command; returns once the host says it went out (or raises its error)."""
        with self.cond:
            n = len(self.lines)
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.wait_for(lambda: next((x for x in self.lines[n:] if "sent" in x or "error" in x), None), 15,
                               f"the host to send '{text[:60]}'")
        if "error" in answer:
            raise AssertionError(f"host: {answer['error']}")
        return answer

    def messages(self, typ=None):
        with self.cond:
            return [x for x in self.lines if "topic" in x and (typ is None or x.get("type") == typ)]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()   # the host ends its MQTT session and exits
                self.proc.wait(10)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def of(records, typ, device=None, after=-1):
    """This node's messages of one type (and device), after record index `after`."""
    return [r for r in records if r.kind == "message" and r.parts and r.parts[1] == GROUP and r.parts[3] == GW
            and r.parts[2] == typ and (device is None or r.parts[4] == device) and r.index > after]


def bdseq(record):
    return next(m.long_value for m in record.decoded.metrics if m.name == "bdSeq")


def alias_of(records, device, name):
    """The alias the last birth gave `name` (device None: the NBIRTH)."""
    births = of(records, "DBIRTH", device) if device else of(records, "NBIRTH")
    for m in births[-1].decoded.metrics:
        if m.name == name:
            return m.alias
    raise AssertionError(f"no metric {name} in the birth of {device or 'the node'}")


class SparkplugWorld(IntegrationTest):
    """A broker, three Modbus devices (traffic on a simulator of its own, so that it can be
    switched off alone), the checker's recorder, the platform's subscriber (audit), the Tahu host
    and citygated in Sparkplug mode."""

    DEVICES = ("air-1", "ctl-4", "traffic-1")

    def start(self, host_id=None, online=True, poll_ms=300, commands="", traffic=None, extra_air=0, spool="", polls=None):
        """polls: a device's own poll interval (ms) instead of poll_ms."""
        polls = polls or {}
        env = self.env
        # queue_qos0_messages: what the daemon publishes (QoS 0) while the recorder reconnects after
        # an outage waits in the recorder's persistent session instead of being dropped.
        # sys_interval: $SYS/broker/clients/connected shows when the daemon is connected, which
        # its births cannot show while a primary host holds them back.
        self.broker = env.broker(conf=["queue_qos0_messages true", "sys_interval 1"])
        units = {"1": AIR, "4": {"hr": {"10": 600, "30": 0, "31": 42}}}
        for i in range(extra_air):
            units[str(10 + i)] = AIR
        self.sim = env.modbus(units, name="cabinet")
        self.traffic_sim = env.modbus({"3": traffic or traffic_unit()}, name="traffic")
        prof = env.path("profiles")
        os.makedirs(prof, exist_ok=True)
        Path(prof, "test-controller.textproto").write_text(CONTROLLER)
        devices = (f'  device {{ id: "air-1" unit_id: 1 profile: "vaisala-aqt530" '
                   f'poll_interval_ms: {polls.get("air-1", poll_ms)} }}\n'
                   f'  device {{ id: "ctl-4" unit_id: 4 profile: "test-controller" '
                   f'poll_interval_ms: {polls.get("ctl-4", poll_ms)} }}\n'
                   + "".join(f'  device {{ id: "air-{10 + i}" unit_id: {10 + i} profile: "vaisala-aqt530" '
                             f'poll_interval_ms: {poll_ms} }}\n' for i in range(extra_air)))
        self.devices = list(self.DEVICES) + [f"air-{10 + i}" for i in range(extra_air)]
        buses = (f'modbus_bus {{ name: "cab" tcp {{ host: "127.0.0.1" port: {self.sim.port} }} '
                 f'response_timeout_ms: 500\n{devices}}}\n'
                 f'modbus_bus {{ name: "road" tcp {{ host: "127.0.0.1" port: {self.traffic_sim.port} }} '
                 f'response_timeout_ms: 500\n'
                 f'  device {{ id: "traffic-1" unit_id: 3 profile: "citygate-traffic-counter-4lane" '
                 f'poll_interval_ms: {polls.get("traffic-1", poll_ms)} }}\n}}\n')
        sparkplug = f'group_id: "{GROUP}"' + (f' host_id: "{host_id}"' if host_id else "")
        self.cfg = gateway_config(GW, self.broker.uri, env, buses,
                                  extra=f'profile_dir: "{prof}"\n{commands}',
                                  mqtt_extra=f"format: SPARKPLUG_B sparkplug {{ {sparkplug} }}", spool_extra=spool)
        self.rec = checker.Recorder("127.0.0.1", self.broker.port, GROUP, GW,
                                    extra_topics=[f"citygate/v1/{GW}/sparkplug/mark",
                                                  "$SYS/broker/clients/connected"]).start()
        self.addCleanup(self.rec.stop)
        self.sub = env.subscriber(self.broker, GW)
        self.host = Host(env, self.broker, host_id=host_id, online=online and host_id is not None)
        self.addCleanup(self.host.stop)
        self.gw = env.gateway(self.cfg)

    # -- waiting on the recorded stream
    def wait(self, predicate, timeout, what):
        return self.rec.stream.wait_for(predicate, timeout, what)

    def wait_births(self, after=-1, timeout=30):
        """An NBIRTH after `after` and then a DBIRTH of every device; returns the NBIRTH."""
        def born(recs):
            nb = of(recs, "NBIRTH", after=after)
            if not nb:
                return None
            got = {r.parts[4] for r in of(recs, "DBIRTH", after=nb[-1].index)}
            return nb[-1] if set(self.devices) <= got else None
        return self.wait(born, timeout, f"NBIRTH and the DBIRTH of {self.devices} after #{after}")

    def wait_data(self, device, after, count=1, timeout=30):
        return self.wait(lambda recs: len(of(recs, "DDATA", device, after)) >= count and of(recs, "DDATA", device, after),
                         timeout, f"{count} DDATA of {device} after #{after}")

    def clients_connected(self, n, timeout=30, at_most=False, after=-1):
        """Waits for mosquitto's $SYS count of connected clients to reach n (at_most: to fall to n)."""
        def seen(recs):
            return any(r.topic == "$SYS/broker/clients/connected"
                       and (int(r.payload or b"0") <= n if at_most else int(r.payload or b"0") >= n)
                       for r in recs[-50:] if r.kind == "message" and r.index > after)
        self.wait(seen, timeout, f"{'at most' if at_most else 'at least'} {n} clients at the broker")

    def judge(self, **kw):
        # The broker runs with queue_qos0_messages: the recorder's persistent session misses nothing.
        records = self.rec.snapshot()
        report = checker.evaluate(records, GROUP, GW, devices=self.devices, queued_while_away=True, **kw)
        print(f"\n{self.id()}\n{report.table()}", file=sys.stderr)
        # The stream, one line a record, beside the daemon's log (CITYGATE_KEEP_TMP=1 keeps both).
        Path(self.env.path("sparkplug-stream.txt")).write_text(
            "".join(f"{r.t:.3f} {r.describe()} bdSeq={bdseq(r) if r.parts and r.parts[2] in ('NBIRTH', 'NDEATH') else ''}\n"
                    for r in records))
        return report

    def assertConformant(self, report, must_pass=()):
        self.assertEqual([f"{v.id}: {v.detail}" for v in report.failures()], [], "Sparkplug assertions failed")
        for aid in must_pass:
            self.assertEqual(report.status(aid), "PASS", aid)


class Conformance(SparkplugWorld):
    def test_readings_of_one_device_in_one_ddata_are_in_time_order(self):
        # STRICT with a 1 s group commit: a device polled every 100 ms (the others every 5 s) has
        # runs of readings in a batch, which go out as one DDATA with each metric several times.
        self.start(polls={"air-1": 100, "ctl-4": 5000, "traffic-1": 5000},
                   spool="durability: STRICT durability_ms: 1000")
        nbirth = self.wait_births()

        def several(recs):
            for r in of(recs, "DDATA", "air-1", nbirth.index):
                seqs = {checker._props(m)["seq"].long_value for m in r.decoded.metrics if "seq" in checker._props(m)}
                if len(seqs) >= 3:
                    return r
            return None
        ddata = self.wait(several, 30, "a DDATA of air-1 with three readings")
        stamps = {}
        for m in ddata.decoded.metrics:
            stamps.setdefault(m.alias, []).append(m.timestamp)
        self.assertTrue(any(len(v) >= 3 for v in stamps.values()), stamps)
        self.assertTrue(all(v == sorted(v) for v in stamps.values()), stamps)
        report = self.judge()
        self.assertConformant(report, must_pass=("tck-id-operational-behavior-data-publish-dbirth-order",
                                                 "tck-id-payloads-ddata-seq-inc"))

    def test_births_data_rebirth_device_down_and_clean_stop(self):
        self.start()
        nbirth = self.wait_births()
        for d in self.devices:
            self.wait_data(d, nbirth.index)
        self.assertEqual(bdseq(nbirth), 0, "a fresh state dir starts at bdSeq 0")

        # A rebirth asked by the host: NBIRTH (seq 0, same bdSeq) and every DBIRTH again, then data.
        asked = self.rec.event("rebirth_asked")
        self.host.command(f"rebirth {GW}")
        rebirth = self.wait_births(after=asked.index)
        self.assertEqual(rebirth.decoded.seq, 0)
        self.assertEqual(bdseq(rebirth), bdseq(nbirth))
        for d in self.devices:
            self.wait_data(d, rebirth.index)

        # The traffic counter switched off: DDEATH; back on: DBIRTH before its data.
        down = self.rec.event("device_down", device="traffic-1")
        self.traffic_sim.stop()
        self.wait(lambda recs: of(recs, "DDEATH", "traffic-1", down.index), 30, "the DDEATH of traffic-1")
        up = self.rec.event("device_up", device="traffic-1")
        self.traffic_sim.start()
        dbirth = self.wait(lambda recs: of(recs, "DBIRTH", "traffic-1", up.index), 30,
                           "the DBIRTH of traffic-1 when it is back")[0]
        self.wait_data("traffic-1", dbirth.index)

        # A clean stop: the node's own NDEATH, and no will after it.
        stop = self.rec.event("clean_stop")
        self.gw.stop()
        ndeath = self.wait(lambda recs: of(recs, "NDEATH", after=stop.index), 15, "the NDEATH of a clean stop")[0]
        # Once the broker counts the daemon gone, a will it would publish (no DISCONNECT) is out too.
        self.clients_connected(3, at_most=True, after=stop.index)
        self.assertEqual(bdseq(ndeath), bdseq(nbirth))
        report = self.judge(fresh=True)
        self.assertConformant(report, must_pass=(
            "tck-id-operational-behavior-data-commands-rebirth-action-1",
            "tck-id-operational-behavior-data-commands-rebirth-action-2",
            "tck-id-operational-behavior-data-commands-rebirth-action-3",
            "tck-id-operational-behavior-device-ddeath",
            "tck-id-payloads-sequence-num-incrementing",
            "tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath",
            "tck-id-payloads-alias-uniqueness",
            "tck-id-topics-dbirth-metric-reqs",
            "tck-id-topics-ddata-payload"))
        self.compare_with_tahu()

    def compare_with_tahu(self):
        """b: every NBIRTH, DBIRTH and DDATA as Tahu's decoder saw it equals what ours decoded."""
        ours = {}
        for r in self.rec.snapshot():
            if r.kind == "message" and r.decoded is not None and r.parts and r.parts[2] in ("NBIRTH", "DBIRTH", "DDATA"):
                ours[(r.topic, r.decoded.seq, r.decoded.timestamp)] = r
        born = {}   # alias -> datatype, from our side's births (aliases are unique per node)
        compared = {"NBIRTH": 0, "DBIRTH": 0, "DDATA": 0}
        for line in self.host.messages():
            if line.get("type") not in compared:
                continue
            self.assertNotIn("decodeError", line)
            r = ours.get((line["topic"], line["seq"], line["timestamp"]))
            self.assertIsNotNone(r, f"Tahu saw a message the recorder did not: {line['topic']} seq {line['seq']}")
            self.assertEqual(len(line["metrics"]), len(r.decoded.metrics), line["topic"])
            for t, m in zip(line["metrics"], r.decoded.metrics):
                where = f"{line['topic']} seq {line['seq']} metric {m.name or m.alias}"
                self.assertEqual(t.get("name"), m.name or None, where)
                self.assertEqual(t.get("alias"), m.alias if m.HasField("alias") else None, where)
                if line["type"] != "DDATA":
                    self.assertEqual(t["datatype"], m.datatype, where)
                    if m.HasField("alias"):
                        born[m.alias] = m.datatype
                datatype = m.datatype if m.HasField("datatype") else born.get(m.alias)
                self.assertIsNotNone(datatype, f"{where}: alias not born")
                if m.is_null:
                    self.assertIsNone(t["value"], where)
                else:
                    ours_value = getattr(m, checker.VALUE_FIELD[datatype])
                    self.assertEqual(t["value"], ours_value, where)
                self.assertEqual(bool(t.get("isHistorical", False)), m.is_historical, where)
                props = checker._props(m)
                self.assertEqual(set((t.get("properties") or {}).keys()), set(props.keys()), where)
                for k, v in props.items():
                    self.assertEqual(t["properties"][k]["value"], getattr(v, v.WhichOneof("value")), f"{where} {k}")
            compared[line["type"]] += 1
        for typ, n in compared.items():
            self.assertGreater(n, 0, f"no {typ} compared")
        print(f"Tahu and citygate's decoder agree on {compared}", file=sys.stderr)

    def test_an_uncertain_reading_has_a_sparkplug_quality(self):
        """5000 vehicles is the plausible maximum: 70000 is kept but UNCERTAIN. Sparkplug 3.0 knows
        the qualities 0, 192 and 500 only (tck-id-payloads-propertyset-quality-value-value)."""
        self.start(traffic=traffic_unit(intensity=70000))
        nbirth = self.wait_births()
        self.wait_data("traffic-1", nbirth.index, count=2)
        report = self.judge()
        self.assertEqual(report.status("tck-id-payloads-propertyset-quality-value-value"), "PASS",
                         report.verdicts["tck-id-payloads-propertyset-quality-value-value"].detail)


class PrimaryHost(SparkplugWorld):
    def test_births_wait_for_the_host_and_its_offline_ends_the_session(self):
        self.start(host_id="scada", online=False)
        # Recorder, platform subscriber, Tahu host and the daemon.
        self.clients_connected(4)
        polled = self.sim.requests(1)
        wait_for(lambda: self.sim.requests(1) >= polled + 5, 20, what="the daemon polling while it waits")
        self.assertEqual(of(self.rec.snapshot(), "NBIRTH"), [], "births before the primary host is online")

        online = self.rec.event("host_online")
        t0 = int(time.time() * 1000)
        self.host.command(f"state online {t0}")
        nbirth = self.wait_births(after=online.index)
        self.wait_data("air-1", nbirth.index)

        # An offline STATE older than the online one is ignored: data goes on, no NDEATH.
        stale = self.rec.event("stale_offline")
        self.host.command(f"state offline {t0 - 1000}")
        self.wait_data("air-1", stale.index, count=3)
        self.assertEqual(of(self.rec.snapshot(), "NDEATH", after=stale.index), [])

        # online:false: NDEATH, a new CONNECT (bdSeq+1), births once the host is back.
        off = self.rec.event("host_offline")
        self.host.command(f"state offline {t0 + 1000}")
        ndeath = self.wait(lambda recs: of(recs, "NDEATH", after=off.index), 15, "the NDEATH on offline")[0]
        self.assertEqual(bdseq(ndeath), bdseq(nbirth))
        back = self.rec.event("host_online_again")
        self.host.command(f"state online {t0 + 2000}")
        nbirth2 = self.wait_births(after=back.index)
        self.assertEqual(bdseq(nbirth2), (bdseq(nbirth) + 1) % 256)
        self.wait_data("air-1", nbirth2.index)
        report = self.judge(host_id="scada", fresh=True)
        self.assertConformant(report, must_pass=(
            "tck-id-message-flow-edge-node-birth-publish-phid-wait",
            "tck-id-message-flow-edge-node-birth-publish-phid-offline",
            "tck-id-operational-behavior-edge-node-termination-host-offline-reconnect",
            "tck-id-operational-behavior-edge-node-termination-host-offline-timestamp"))


class Durability(SparkplugWorld):
    def test_broker_outage_and_kills_lose_no_reading(self):
        self.start(poll_ms=200, extra_air=2)
        nbirth = self.wait_births()
        for d in self.devices:
            self.wait_data(d, nbirth.index)
        sessions = [bdseq(nbirth)]
        wills = []

        # A 20 s broker outage, measured in polls of the cabinet (200 ms each) rather than slept.
        down = self.rec.event("broker_down")
        polled = self.sim.requests(1)
        self.broker.stop()
        wait_for(lambda: self.sim.requests(1) >= polled + 100, 60, what="100 polls of air-1 during the outage")
        self.rec.event("broker_up")
        self.broker.start()
        nb = self.wait_births(after=down.index, timeout=60)
        sessions.append(bdseq(nb))
        self.wait_data("air-1", nb.index, count=3)

        # Three kill -9 under load: the broker publishes each session's will.
        for i in range(3):
            killed = self.rec.event("daemon_killed")
            self.gw.kill()
            will = self.wait(lambda recs: of(recs, "NDEATH", after=killed.index), 15, f"the will after kill {i + 1}")[0]
            wills.append((sessions[-1], bdseq(will)))
            self.gw.start()
            nb = self.wait_births(after=killed.index, timeout=60)
            sessions.append(bdseq(nb))
            self.wait_data("air-1", nb.index, count=3)

        # Every native seq from 1 to the last must arrive; what waited comes as history.
        def complete(recs):
            seqs = {s for s, *_ in checker.ddata_readings(recs, GROUP, GW)}
            return seqs and len(seqs) == max(seqs) and seqs
        try:
            self.wait(complete, 60, "every native seq from 1 to the last in DDATA")
        except AssertionError:
            pass   # reported below with the numbers
        records = self.rec.snapshot()
        readings = checker.ddata_readings(records, GROUP, GW)
        per_message = {}
        for s, dev, hist, r in readings:
            per_message.setdefault(s, set()).add(r.index)
        seqs = sorted(per_message)
        missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
        duplicates = sum(len(ix) - 1 for ix in per_message.values())
        marks = [int(r.payload) for r in records if r.kind == "message" and r.topic.endswith("/sparkplug/mark")]
        print(f"\nnative seqs 1..{seqs[-1]}: {len(missing)} missing {missing[:20]}, {duplicates} duplicates, "
              f"sessions (bdSeq) {sessions}, wills {wills}, {len(marks)} delivery marks (last {marks[-1:]})",
              file=sys.stderr)

        report = self.judge()
        # Every finding is collected, so that one run shows them all.
        problems = []
        # The native seq is per epoch; the epoch survives kill -9 (test_epoch), so one run is one epoch.
        epochs = {next(m.string_value for m in r.decoded.metrics if m.name == "Properties/Epoch")
                  for r in of(records, "NBIRTH")}
        if len(epochs) != 1:
            problems.append(f"epochs {epochs}")
        # Each session's bdSeq is new (+1 per CONNECT), and each will names the session it ended.
        want = [(sessions[0] + i) % 256 for i in range(len(sessions))]
        if sessions != want:
            problems.append(f"session bdSeqs {sessions}, expected {want}")
        if len(set(sessions)) != len(sessions):
            problems.append(f"a bdSeq used by two sessions: {sessions}")
        for session, will in wills:
            if will != session:
                problems.append(f"a will with bdSeq {will} ended the session with bdSeq {session}")
        # A reading observed before the births of the session it went out in had to wait: historical.
        births = [(r.index, r.decoded.timestamp) for r in of(records, "NBIRTH")]
        late = []
        for s, dev, hist, r in readings:
            born_at = max((ts for ix, ts in births if ix < r.index), default=None)
            for m in r.decoded.metrics:
                p = checker._props(m).get("seq")
                if p is not None and p.long_value == s and born_at is not None and m.timestamp < born_at \
                        and not m.is_historical:
                    late.append((s, dev, r.index))
        if late:
            problems.append(f"{len(late)} readings observed before their session's births without is_historical: "
                            f"{late[:5]}")
        if missing:
            problems.append(f"native seqs never published in DDATA: {missing[:20]} (delivery marks seen: {marks[-5:]})")
        problems += [f"{v.id}: {v.detail}" for v in report.failures()]
        self.assertFalse(problems, "\n".join(problems))


class DeviceCommands(SparkplugWorld):
    COMMANDS = 'commands { enabled: true platform: true allow { device: "ctl-4" point: "period" } }'

    def test_dcmd_write_refusal_and_malformed_commands(self):
        self.start(commands=self.COMMANDS)
        nbirth = self.wait_births()
        self.wait_data("ctl-4", nbirth.index)

        # A write through DCMD (by name, Double as the DBIRTH declares): written, read back, audited.
        self.host.command(f'dcmd {GW} ctl-4 [{{"name": "period", "type": "Double", "value": 90.5}}]')
        audits = self.sub.wait_for(lambda: [a for a in self.sub.audits
                                            if a.result.status == commands_pb2.CommandResult.DONE], 20,
                                   "the audit record of the DCMD write")
        self.assertIn("sparkplug", audits[0].origin.lower(), audits[0])
        self.assertEqual(audits[0].command.write.point, "period")
        self.assertEqual(audits[0].command.write.value, 90.5)
        self.assertTrue(audits[0].result.write.holds)
        period = alias_of(self.rec.snapshot(), "ctl-4", "period")
        self.wait(lambda recs: any(m.alias == period and m.double_value == 90.5
                                   for r in of(recs, "DDATA", "ctl-4") for m in r.decoded.metrics),
                  20, "a DDATA of ctl-4 with the written period")

        # A read-only metric: refused, audited, nothing written.
        n = len(self.sub.audits)
        self.host.command(f'dcmd {GW} ctl-4 [{{"name": "serial", "type": "Double", "value": 5}}]')
        refused = self.sub.wait_for(lambda: [a for a in self.sub.audits[n:]
                                             if a.result.status == commands_pb2.CommandResult.REFUSED], 20,
                                    "the audit record of the refused DCMD")
        self.assertIn("sparkplug", refused[0].origin.lower())
        self.assertEqual(refused[0].result.refusal, commands_pb2.POINT_NOT_WRITABLE, refused[0])

        # Malformed NCMD and DCMD payloads: counted in the NDATA, and publishing goes on.
        counter = alias_of(self.rec.snapshot(), None, "Sparkplug/Commands Refused")
        junk = self.rec.event("malformed_commands")
        self.host.command(f"raw spBv1.0/{GROUP}/NCMD/{GW} ffffffff0102")
        self.host.command(f"raw spBv1.0/{GROUP}/DCMD/{GW}/ctl-4 0a")
        later = self.rec.event("after_malformed")
        self.wait_data("air-1", later.index, count=3)
        # Counted: a rebirth's NBIRTH carries the count (the NCMD and the DCMD at least).
        asked = self.rec.event("rebirth_asked")
        self.host.command(f"rebirth {GW}")
        rebirth = self.wait_births(after=asked.index)
        refused = next(m.long_value for m in rebirth.decoded.metrics if m.name == "Sparkplug/Commands Refused")
        self.assertGreaterEqual(refused, 2, "the malformed NCMD and DCMD are not counted")
        # And reported when it changed: NDATA carries the node metrics that changed (at the
        # health interval, 1 s here; tck-id-topics-ndata-payload).
        problems = []
        try:
            self.wait(lambda recs: any(m.alias == counter and m.long_value >= 2
                                       for r in of(recs, "NDATA", after=junk.index) for m in r.decoded.metrics),
                      10, "Sparkplug/Commands Refused >= 2 in an NDATA")
        except AssertionError as e:
            problems.append(str(e))
        self.assertTrue(self.gw.process.running())
        problems += [f"{v.id}: {v.detail}" for v in self.judge().failures()]
        self.assertFalse(problems, "\n".join(problems))


if __name__ == "__main__":
    unittest.main()
