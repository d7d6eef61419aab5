"""Issue 18 (brokers): a gateway with brokers in failover order publishes through the next one as
soon as its broker goes; a connect after failed attempts takes the broker's answer time, not a
second more; the platform gets a range of readings again when it asks (Refill), marked resent."""
import os
import signal
import time
import unittest

from harness import IntegrationTest, commands_pb2, gateway_config, status_pb2
from test_spool import LANES, traffic_bus


def refill(request_id, epoch, first, last, expires_in=60):
    c = commands_pb2.Command()
    c.request_id = request_id
    c.expires_at.FromSeconds(int(time.time()) + expires_in)
    c.refill.epoch = epoch
    c.refill.from_seq = first
    c.refill.to_seq = last
    return c


def contiguous(seqs):
    s = sorted(set(seqs))
    return [x for x in range(s[0], s[-1] + 1) if x not in set(s)]


class Failover(IntegrationTest):
    def test_publishes_through_the_next_broker_when_its_broker_goes(self):
        env = self.env
        a, b = env.broker(), env.broker()
        sim = env.modbus({"1": {"values": LANES}})
        cfg = gateway_config("gw-fo", [a.uri, b.uri], env, traffic_bus(sim.port, devices=1, poll_ms=100),
                             mqtt_extra="reconnect_min_ms: 1000 reconnect_max_ms: 20000")
        sub_a, sub_b = env.subscriber(a, "gw-fo"), env.subscriber(b, "gw-fo")
        gw = env.gateway(cfg)
        sub_a.wait_for(lambda: len(sub_a.readings) >= 5, 20, "readings through the first broker")
        self.assertEqual(sub_b.readings, [], "the first broker of the list is used while it is up")

        a.stop()
        gone = time.monotonic()
        sub_b.wait_for(lambda: sub_b.readings, 10, "readings through the second broker")
        took = sub_b.arrivals[0][0] - gone
        print(f"failover: publishing through the second broker {took * 1000:.0f} ms after the first stopped")
        self.assertLess(took, 5.0, "within 5 s of the broker going down")
        sub_b.wait_for(lambda: len(sub_b.readings) >= 20, 20, "more readings through the second broker")
        self.assertEqual(gw.stop(), 0)
        seqs = [r.seq for r in sub_a.readings + sub_b.readings]
        self.assertEqual(contiguous(seqs), [], "no reading lost across the failover")
        self.assertIn(f"connected to the broker at {b.uri}", gw.log())

    def test_a_connect_after_failed_attempts_is_not_delayed(self):
        env = self.env
        broker = env.broker()
        broker.stop()
        cfg = gateway_config("gw-rc", broker.uri, env, mqtt_extra="reconnect_min_ms: 50 reconnect_max_ms: 100")
        gw = env.gateway(cfg)
        gw.wait_log("(attempt 5)", 20)  # several attempts failed: the state the delay was seen in
        broker.start()
        sub_started = time.monotonic()
        sub = env.subscriber(broker, "gw-rc")
        sub.wait_for(lambda: [s for s in sub.status if s.state == status_pb2.ONLINE], 20, "the birth")
        took = time.monotonic() - sub_started
        print(f"reconnect: ONLINE {took * 1000:.0f} ms after the broker listened (waits of at most 100 ms)")
        # Waits are at most 100 ms: anything near a second is the delay the issue found.
        self.assertLess(took, 0.9)
        self.assertEqual(gw.stop(), 0)


class Mqtt5(IntegrationTest):
    def test_mqtt5_publishes_and_takes_commands_like_3_1_1(self):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"1": {"values": LANES}})
        cfg = gateway_config("gw-v5", broker.uri, env, traffic_bus(sim.port, devices=1, poll_ms=100),
                             mqtt_extra="protocol_version: MQTT_5",
                             extra="commands { enabled: true platform: true }",
                             spool_extra="retain_bytes: 1048576")
        sub = env.subscriber(broker, "gw-v5")
        gw = env.gateway(cfg)
        sub.wait_for(lambda: len(sub.readings) >= 10, 30, "readings over MQTT 5")
        sub.wait_for(lambda: [s for s in sub.status if s.state == status_pb2.ONLINE], 20, "the birth")
        sub.command(refill("v5-1", sub.batches[0].epoch, sub.readings[0].seq, sub.readings[3].seq))
        sub.wait_for(lambda: [r for r in sub.results_for("v5-1") if r.status == commands_pb2.CommandResult.DONE],
                     20, "the refill over MQTT 5")
        # The will is set on an MQTT 5 connect too: a kill leaves OFFLINE retained.
        gw.process.signal(signal.SIGKILL)
        sub.wait_for(lambda: sub.status and sub.status[-1].state == status_pb2.OFFLINE, 20, "the will")


class Refill(IntegrationTest):
    def test_the_platform_gets_a_range_again_marked_resent(self):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"1": {"values": LANES}})
        cfg = gateway_config("gw-rf", broker.uri, env, traffic_bus(sim.port, devices=1, poll_ms=100),
                             extra="commands { enabled: true platform: true }",
                             spool_extra="retain_bytes: 1048576 retain_s: 600")
        sub = env.subscriber(broker, "gw-rf")
        gw = env.gateway(cfg)
        sub.wait_for(lambda: len(sub.readings) >= 40, 30, "40 readings")
        epoch = sub.batches[0].epoch
        first, last = sub.readings[5].seq, sub.readings[30].seq

        sub.command(refill("rf-1", epoch, first, last))
        done = sub.wait_for(lambda: [r for r in sub.results_for("rf-1") if r.status == commands_pb2.CommandResult.DONE],
                            20, "the refill DONE")[0]
        accepted = [r for r in sub.results_for("rf-1") if r.status == commands_pb2.CommandResult.ACCEPTED]
        self.assertEqual(len(accepted), 1)
        self.assertGreaterEqual(done.refill.resent, last - first + 1)
        self.assertEqual(done.refill.missing, 0)
        resent = [b for b in sub.batches if b.resent]
        got = {r.seq for b in resent for r in b.readings}
        self.assertTrue(set(range(first, last + 1)) <= got, "every seq of the range came again")
        self.assertTrue(all(b.epoch == epoch for b in resent))

        # Another epoch's range cannot be served; nor a range beyond what is kept.
        sub.command(refill("rf-2", "0123456789abcdef", 1, 10))
        other = sub.wait_for(lambda: sub.results_for("rf-2"), 20, "the refusal")[0]
        self.assertEqual(other.status, commands_pb2.CommandResult.REFUSED)
        self.assertEqual(other.refusal, commands_pb2.REFILL_UNAVAILABLE)
        self.assertIn("epoch", other.detail)
        self.assertGreaterEqual(other.refill.retained_from_seq, 1)
        # Both are in the audit trail.
        sub.wait_for(lambda: {"rf-1", "rf-2"} <= {a.command.request_id for a in sub.audits}, 20, "the audit records")
        self.assertEqual(gw.stop(), 0)

    def test_without_retention_a_refill_is_refused_with_the_reason(self):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"1": {"values": LANES}})
        cfg = gateway_config("gw-nr", broker.uri, env, traffic_bus(sim.port, devices=1, poll_ms=100),
                             extra="commands { enabled: true platform: true }")
        sub = env.subscriber(broker, "gw-nr")
        gw = env.gateway(cfg)
        sub.wait_for(lambda: len(sub.readings) >= 5, 30, "readings")
        sub.command(refill("nr-1", sub.batches[0].epoch, 1, 3))
        r = sub.wait_for(lambda: sub.results_for("nr-1"), 20, "the answer")[0]
        self.assertEqual(r.status, commands_pb2.CommandResult.REFUSED)
        self.assertEqual(r.refusal, commands_pb2.REFILL_UNAVAILABLE)
        self.assertIn("retain_bytes", r.detail)
        self.assertEqual(gw.stop(), 0)


if __name__ == "__main__":
    unittest.main()
