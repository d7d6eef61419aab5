"""Issue 18: citygate-ingest, the reference platform consumer, end to end. A real PostgreSQL (started
here on a free loopback port in the test's directory), a real mosquitto, real citygated polling a
pymodbus traffic counter, and the real citygate-ingest.

- Exactly one row per (gateway, epoch, seq) after the redeliveries of a kill -9 of the gateway,
  and the very readings the platform's reference subscriber saw, without a hole.
- Wiping the gateway's state starts a new epoch with the seq at 1 again; its readings are kept.
- A mosquitto restarted without persistence while the consumer was away loses readings it had
  acknowledged to the gateway: the consumer sees the hole, asks the gateway to refill it, and ends
  with none missing (the gap recorded as refilled).
- Bad payloads are counted and logged; the passwords are never logged.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "platform" / "tests"))
import fiware_schemas_test as fiware  # noqa: E402  (the FIWARE schemas, offline)
from harness import SANITIZER_MARKERS, BIN, Broker, IntegrationTest, Process, free_port, gateway_config, wait_for
from test_spool import LANES, traffic_bus

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DB_PASSWORD = "db-s3cret-never-logged"
MQTT_PASSWORD = "mqtt-s3cret-never-logged"
GATEWAY = "gw-ingest"


class Postgres:
    """A throwaway PostgreSQL cluster: initdb in the test's directory, a free port on 127.0.0.1,
    trust authentication, no fsync. As root it runs as the `postgres` user (the server refuses root)."""

    def __init__(self, env):
        self.env = env
        self.port = free_port()
        self.dir = env.path("pg")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.user = None
        if os.getuid() == 0:
            self.user = "postgres"
            os.chmod(env.dir, 0o711)  # the server's user reaches its own folder, nothing else
        os.makedirs(self.dir)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def _run(self, argv, timeout=120):
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError(f"{argv} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start(self):
        self._run([PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "citygate", "--no-sync", "-E", "UTF8"])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.log, "-w", "-t", "60", "start"])
        return self

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])

    @property
    def conninfo(self):
        return f"host=127.0.0.1 port={self.port} dbname=postgres user=citygate password={DB_PASSWORD}"

    def query(self, sql):
        """Rows as lists of strings (psql, unaligned)."""
        out = subprocess.run(["psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql,
                              f"host=127.0.0.1 port={self.port} dbname=postgres user=citygate"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr}")
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def value(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None


class Ingest:
    def __init__(self, env, broker_uri, db, name="ingest", extra=()):
        self.out = env.path("entities.jsonl")
        password_file = env.path("mqtt.pass")
        Path(password_file).write_text(MQTT_PASSWORD + "\n")
        self.process = Process(env, name, [
            BIN / "citygate-ingest", "--broker", broker_uri, "--database", db.conninfo,
            "--username", "platform", "--password-file", password_file,
            "--client-id", "ingest-test", "--grace-ms", "1000", "--answer-timeout-ms", "3000",
            "--summary-interval-s", "1", "--ngsi-ld-out", self.out, "--log-level", "debug", *extra])

    def start(self):
        self.process.start()
        wait_for(lambda: "mqtt: connected" in self.process.log() or not self.process.running(), 20,
                 what="citygate-ingest to connect")
        if not self.process.running():
            raise AssertionError("citygate-ingest exited:\n" + self.process.log())
        return self

    def stop(self):
        return self.process.stop()

    def log(self):
        return self.process.log()


class IngestWorld(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.db = Postgres(self.env)
        self.env._track(self.db)  # stopped by the harness, last, before the directory goes
        self.db.start()
        self.ingests = []

    def tearDown(self):
        for i in self.ingests:
            i.stop()
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if any(t is self for t, _ in getattr(result, "errors", []) + getattr(result, "failures", [])):
            for i in self.ingests:
                print(f"\n----- {i.process.name} log -----\n{i.log()[-6000:]}", file=sys.stderr)
        # Under the asan preset a sanitizer report in citygate-ingest's log fails the test too.
        reports = [f"{i.process.name}: {i.log()[i.log().index(m):][:3000]}" for i in self.ingests
                   for m in SANITIZER_MARKERS if m in i.log()]
        super().tearDown()
        if reports:
            self.fail("sanitizer report in citygate-ingest's log:\n" + "\n".join(reports))

    def world(self, brokers=()):
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"1": {"values": LANES}})
        self.cfg = gateway_config(GATEWAY, self.broker.uri, env, traffic_bus(self.sim.port, devices=1, poll_ms=200),
                                  extra="commands { enabled: true platform: true }",
                                  spool_extra="retain_bytes: 10000000")
        self.sub = env.subscriber(self.broker, GATEWAY)
        self.ingest = self.start_ingest(brokers=[u.replace("{live}", self.broker.uri) for u in brokers])
        self.gw = env.gateway(self.cfg)

    def start_ingest(self, name="ingest", brokers=()):
        extra = [a for uri in brokers for a in ("--broker", uri)]
        i = Ingest(self.env, self.broker.uri if not brokers else brokers[0], self.db, name=name,
                   extra=extra[2:]).start()
        self.ingests.append(i)
        return i

    def rows(self, epoch=None):
        where = f"WHERE epoch = '{epoch}'" if epoch else ""
        return int(self.db.value(f"SELECT count(*) FROM readings {where}"))

    def epochs(self):
        return [r[0] for r in self.db.query("SELECT DISTINCT epoch FROM readings")]

    def wait_complete(self, epoch, at_least, timeout=60):
        """Rows 1..max of the epoch, without a hole, up to at least `at_least`."""
        def complete():
            mx, n = self.db.query(f"SELECT coalesce(max(seq), 0), count(*) FROM readings WHERE epoch = '{epoch}'")[0]
            return int(mx) >= at_least and int(mx) == int(n)
        wait_for(complete, timeout, interval=0.2, what=f"seq 1..{at_least} or more of epoch {epoch}, no hole")

    def sub_seqs(self, epoch):
        with self.sub.cond:
            return {r.seq for b in self.sub.batches if b.epoch == epoch for r in b.readings}


class IngestTest(IngestWorld):
    def test_duplicates_are_stored_once_and_a_new_epoch_is_kept(self):
        self.world()
        wait_for(lambda: self.rows() >= 20, 30, interval=0.2, what="20 rows")
        epoch = self.epochs()[0]
        self.assertEqual(len(epoch), 16)
        # kill -9: what was published and not yet acknowledged goes out again.
        for name in ("gw-2", "gw-3"):
            before = max(self.sub_seqs(epoch))
            self.gw.kill()
            self.gw = self.env.gateway(self.cfg, name=name)
            self.sub.wait_for(lambda: max(self.sub_seqs(epoch)) >= before + 20, 30, f"readings from {name}")
        self.gw.stop()
        seen = self.sub_seqs(epoch)
        self.wait_complete(epoch, max(seen))
        stored = {int(r[0]) for r in self.db.query(f"SELECT seq FROM readings WHERE epoch = '{epoch}'")}
        self.assertEqual(stored, seen, "the consumer stored exactly what the platform's subscriber saw")
        with self.sub.cond:
            delivered = sum(len(b.readings) for b in self.sub.batches if b.epoch == epoch)
        self.assertEqual(self.rows(epoch), len(stored), "one row per (gateway, epoch, seq)")
        self.assertEqual(self.db.value("SELECT count(*) FROM (SELECT gateway_id, epoch, seq FROM readings "
                                       "GROUP BY 1, 2, 3 HAVING count(*) > 1) d"), "0")
        # The entity: normalized NGSI-LD, as the FIWARE model has it.
        kind, lane_type, value_type = self.db.query(
            "SELECT entity->>'type', entity->'laneId'->>'type', jsonb_typeof(entity->'intensity'->'value') "
            "FROM readings ORDER BY seq LIMIT 1")[0]
        self.assertEqual((kind, lane_type, value_type), ("TrafficFlowObserved", "Property", "number"))
        with open(self.ingest.out) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(len(lines), self.rows(), "one JSON line per new entity")
        # What the real gateway sent, as the FIWARE schema wants it (platform/tests/fiware_schemas_test.py).
        check = fiware.validator("TrafficFlowObserved")
        for e in lines:
            self.assertEqual([x.message for x in check.iter_errors(fiware.key_values(e))], [], e)

        # A new SD card: the state wiped, the seq starts at 1 again under a new epoch; kept, not dropped.
        shutil.rmtree(self.env.path("spool"))
        shutil.rmtree(self.env.path("run"), ignore_errors=True)
        self.gw = self.env.gateway(self.cfg, name="gw-wiped")
        wait_for(lambda: len(self.epochs()) == 2, 30, interval=0.2, what="a second epoch in the database")
        new = next(e for e in self.epochs() if e != epoch)
        self.wait_complete(new, 20)
        self.assertEqual(self.db.value(f"SELECT min(seq) FROM readings WHERE epoch = '{new}'"), "1")
        self.assertEqual(self.rows(epoch), len(stored), "the old epoch's rows are untouched")

        # A bad payload is counted and logged; the consumer goes on.
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1",
                        "-t", "citygate/v1/gw-bad/readings", "-m", "not protobuf"], check=True, timeout=30)
        wait_for(lambda: "bad payload on citygate/v1/gw-bad/readings" in self.ingest.log(), 10,
                 what="the bad payload in the log")
        n = self.rows(new)
        wait_for(lambda: self.rows(new) > n, 20, interval=0.2, what="more rows after the bad payload")
        self.assertEqual(self.ingest.stop(), 0)
        log = self.ingest.log()
        self.assertIn("duplicates dropped", log)
        self.assertRegex(log, r"summary: gateway gw-ingest: \d+ readings stored")
        self.assertNotIn(DB_PASSWORD, log)
        self.assertNotIn(MQTT_PASSWORD, log)
        print(f"\ningest: {len(stored)} rows in the first epoch from {delivered} readings delivered to the "
              f"subscriber ({delivered - len(stored)} duplicates)")

        # Rows of the old epoch gone (a restored backup): the gateway no longer has that epoch, so
        # the hole is lost for good, recorded once and not asked for again.
        self.db.query(f"DELETE FROM readings WHERE epoch = '{epoch}' AND seq BETWEEN 5 AND 9 RETURNING seq")
        self.ingest = self.start_ingest("ingest-after-wipe")
        lost = wait_for(lambda: self.db.query(f"SELECT from_seq, to_seq, lost_seqs, requests FROM gaps "
                                              f"WHERE epoch = '{epoch}' AND state = 'lost'"), 20, interval=0.2,
                        what="the old epoch's hole recorded as lost")
        self.assertEqual(lost, [["5", "9", "5", "1"]])
        self.assertRegex(self.ingest.log(), r"REFUSED \(REFILL_UNAVAILABLE, epoch")
        self.assertEqual(self.ingest.stop(), 0)
        self.assertRegex(self.ingest.log(), r"1 lost \(5 seqs\)")

    def test_readings_a_broker_lost_are_refilled(self):
        self.world()
        wait_for(lambda: self.rows() >= 20, 30, interval=0.2, what="20 rows")
        epoch = self.epochs()[0]
        # The consumer goes away; the broker queues for its persistent session...
        self.assertEqual(self.ingest.stop(), 0)
        away_from = int(self.db.value("SELECT max(seq) FROM readings"))
        self.sub.wait_for(lambda: max(self.sub_seqs(epoch)) >= away_from + 40, 30, "readings while away")
        # ...and loses them: restarted without persistence. The gateway had its PUBACKs.
        self.broker.stop()
        self.broker = Broker(self.env, port=self.broker.port, conf=["persistence false"])
        self.env._track(self.broker)
        self.broker.start()
        self.sub.wait_for(lambda: self.sub.connected, 20, "the subscriber back")
        lost_up_to = max(self.sub_seqs(epoch))
        started = time.monotonic()
        self.ingest = self.start_ingest("ingest-2")
        # The hole is seen, refilled from the gateway's retention, and nothing is missing.
        self.wait_complete(epoch, lost_up_to + 10, timeout=60)
        took = time.monotonic() - started
        wait_for(lambda: self.db.query("SELECT state FROM gaps WHERE state = 'refilled'"), 20, interval=0.2,
                 what="a gap recorded as refilled")
        gaps = self.db.query("SELECT from_seq, to_seq, state, lost_seqs, requests FROM gaps ORDER BY from_seq")
        self.assertTrue(all(g[2] == "refilled" and g[3] == "0" for g in gaps), gaps)
        self.assertTrue(any(int(g[0]) <= away_from + 1 <= int(g[1]) for g in gaps), gaps)
        resent = int(self.db.value("SELECT count(*) FROM readings WHERE resent"))
        self.assertGreater(resent, 0)
        self.assertIn("refill", self.gw.log())
        self.assertRegex(self.ingest.log(), r"refill ingest-[0-9a-f]+-\d+ from gw-ingest: DONE")
        self.assertEqual(self.ingest.stop(), 0)
        self.assertRegex(self.ingest.log(), r"gaps 0 open \(0 seqs missing\), \d+ refilled, 0 lost")
        print(f"\ningest: gaps {gaps} refilled, {resent} rows from resent batches, none missing "
              f"{took:.1f} s after the consumer's restart (grace 1 s)")

    def test_brokers_in_failover_order(self):
        dead = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
        self.world(brokers=[dead, "{live}"])
        wait_for(lambda: self.rows() >= 10, 30, interval=0.2, what="10 rows through the second broker")
        self.assertIn(f"mqtt: connecting to {dead}, {self.broker.uri}", self.ingest.log())

    def test_a_restarted_consumer_resumes_and_asks_only_for_what_is_missing(self):
        self.world()
        wait_for(lambda: self.rows() >= 20, 30, interval=0.2, what="20 rows")
        epoch = self.epochs()[0]
        self.assertEqual(self.ingest.stop(), 0)
        # Rows the consumer had stored vanish (a restored backup): after a restart it finds the hole
        # from the table alone and has it refilled.
        self.db.query("DELETE FROM readings WHERE seq BETWEEN 5 AND 9 RETURNING seq")
        top = int(self.db.value("SELECT max(seq) FROM readings"))
        self.ingest = self.start_ingest("ingest-3")
        self.wait_complete(epoch, top + 5)
        self.assertEqual(self.db.value("SELECT count(*) FROM readings WHERE seq BETWEEN 5 AND 9"), "5")
        self.assertIn("5 seqs missing", self.ingest.log())


class IngestRefusals(IntegrationTest):
    def run_ingest(self, *args):
        return subprocess.run([str(BIN / "citygate-ingest"), *map(str, args)], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)

    def test_bad_flags_and_an_unreachable_database_are_clear_errors(self):
        out = self.run_ingest("--broker", "tcp://127.0.0.1:1", "--database", "host=127.0.0.1", "--grace-ms", "soon")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--grace-ms: 'soon' is not a whole number", out.stderr)
        out = self.run_ingest("--database", "host=127.0.0.1")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--broker is required", out.stderr)
        out = self.run_ingest("--broker", "tcp://127.0.0.1:1", "--password-file", self.env.path("nope"),
                              "--database", "host=127.0.0.1")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--password-file: cannot read", out.stderr)
        port = free_port()  # nothing listens there
        out = self.run_ingest("--broker", "tcp://127.0.0.1:1", "--database",
                              f"host=127.0.0.1 port={port} user=x password={DB_PASSWORD} connect_timeout=5")
        self.assertEqual(out.returncode, 1)
        self.assertIn("database: cannot connect", out.stderr)
        self.assertNotIn(DB_PASSWORD, out.stderr + out.stdout)


if __name__ == "__main__":
    unittest.main()
