"""Issue 18 (seq epoch): every ReadingBatch and the status carry the seq's epoch. It survives a
restart and a kill -9; wiping the gateway's state (a new SD card: the seq file, its epoch and the
spool gone) starts the seq at 1 again under a new epoch, so a platform deduping on
(gateway_id, epoch, seq) keeps the new readings."""
import os
import shutil
import signal
import unittest

from harness import IntegrationTest, gateway_config, status_pb2
from test_spool import LANES, traffic_bus


class Epoch(IntegrationTest):
    def test_epoch_survives_restarts_and_is_new_after_a_wipe(self):
        env = self.env
        broker = env.broker()
        sim = env.modbus({"1": {"values": LANES}})
        cfg = gateway_config("gw-epoch", broker.uri, env, traffic_bus(sim.port, devices=1, poll_ms=200))
        sub = env.subscriber(broker, "gw-epoch")

        logs = []

        def run(name, stop):
            n = len(sub.batches)
            gw = env.gateway(cfg, name=name)
            logs.append(gw)
            batch = sub.wait_for(lambda: sub.batches[n:] and sub.batches[-1], 20, f"a batch from {name}")
            birth = sub.wait_for(lambda: [s for s in sub.status if s.state == status_pb2.ONLINE
                                          and s.boot_id == batch.boot_id], 20, f"the birth of {name}")[-1]
            self.assertEqual(birth.epoch, batch.epoch)
            stop(gw)
            return batch

        first = run("gw-1", lambda gw: self.assertEqual(gw.stop(), 0))
        self.assertEqual(len(first.epoch), 16)
        self.assertGreaterEqual(first.readings[0].seq, 1)
        again = run("gw-2", lambda gw: gw.process.signal(signal.SIGKILL))
        self.assertEqual(again.epoch, first.epoch, "a restart keeps the epoch")
        after_kill = run("gw-3", lambda gw: self.assertEqual(gw.stop(), 0))
        self.assertEqual(after_kill.epoch, first.epoch, "a kill -9 keeps the epoch")
        self.assertGreater(after_kill.readings[-1].seq, first.readings[-1].seq)

        # A new SD card: state and spool gone. The seq starts at 1 again, under a new epoch.
        # (state_dir defaults to the spool's directory here: seq, seq.epoch and the segments.)
        self.assertTrue(os.path.exists(os.path.join(env.path("spool"), "seq.epoch")))
        shutil.rmtree(env.path("spool"))
        shutil.rmtree(env.path("run"), ignore_errors=True)  # and the tmpfs, as after the reboot that goes with it
        n = len(sub.readings)
        wiped = run("gw-4", lambda gw: self.assertEqual(gw.stop(), 0))
        self.assertNotEqual(wiped.epoch, first.epoch)
        new = [r for b in sub.batches if b.epoch == wiped.epoch for r in b.readings]
        self.assertEqual(min(r.seq for r in new), 1, "the seq started again")
        # Deduping on (epoch, seq) keeps every new reading; on seq alone some would be dropped.
        seen_old = {(b.epoch, r.seq) for b in sub.batches if b.epoch == first.epoch for r in b.readings}
        self.assertTrue(all((wiped.epoch, r.seq) not in seen_old for r in new))
        self.assertTrue(any(r.seq in {s for _, s in seen_old} for r in new))
        self.assertGreater(len(sub.readings), n)
        self.assertIn("a new seq epoch", logs[-1].log())
        self.assertNotIn("a new seq epoch", logs[1].log())


if __name__ == "__main__":
    unittest.main()
