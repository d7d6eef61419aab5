"""Issue 17: class A downlinks through the packet forwarder, against lora-packet.

tests/peers/concentrator.js (downlink) sends PULL_DATA, then confirmed uplinks that npm lora-packet
built; every PULL_RESP the real citygated answers with is decoded and verified by lora-packet (MIC
with the NwkSKey), and answered with a TX_ACK carrying the error the test chose.
"""
import json
import os
import socket
import stat
import time

from harness import IntegrationTest, commands_pb2, free_port, gateway_config
from test_lora import DEVICES, concentrator, device_block

DEVICE = dict(DEVICES["parking-bay-0042"], confirmed=True)
RX1_DELAY_US = 1_000_000


class LoraDownlink(IntegrationTest):
    def start_world(self, downlink=True, commands=""):
        env = self.env
        self.broker = env.broker()
        self.port = free_port(socket.SOCK_DGRAM)
        lora = (f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {self.port} }}\n  dedup_window_ms: 150\n'
                + ('  downlink { enabled: true }\n' if downlink else "") + device_block(DEVICE) + "}\n")
        self.cfg = gateway_config("gw-dl", self.broker.uri, env, extra=lora + commands)
        self.sub = env.subscriber(self.broker, "gw-dl")
        self.gw = env.gateway(self.cfg)
        self.gw.wait_log("packet forwarder on 127.0.0.1:")
        self.devices = env.path("devices.json")
        with open(self.devices, "w") as f:
            json.dump([DEVICE], f)

    def restart(self):
        self.assertEqual(self.gw.stop(), 0)
        self.gw = self.env.gateway(self.cfg, name=f"citygated-{time.monotonic_ns()}")
        self.gw.wait_log("packet forwarder on 127.0.0.1:")

    def downlink(self, fcnt, tx_ack="NONE", expect=1, wait=3000):
        return concentrator("downlink", "--port", self.port, "--devices", self.devices, "--fcnt", fcnt,
                            "--tx-ack", tx_ack, "--expect", expect, "--wait", wait)

    def health(self, predicate, what, timeout=10):
        return self.sub.wait_for(lambda: [h for h in self.sub.health[-3:] if predicate(h)], timeout, what)[-1]

    def assert_ack(self, resp, uplink, fcnt_down):
        self.assertEqual(resp.get("error"), None)
        self.assertEqual(resp["mtype"], "Unconfirmed Data Down")
        self.assertTrue(resp["ack"])
        self.assertEqual(resp["dev_addr"], DEVICE["dev_addr"].upper())
        self.assertEqual(resp["fcnt"], fcnt_down)
        self.assertTrue(resp["mic_ok"], "lora-packet verifies the MIC with the NwkSKey")
        self.assertEqual(resp["modu"], "LORA")
        self.assertEqual(resp["codr"], "4/5")
        self.assertTrue(resp["ipol"])
        self.assertFalse(resp["imme"])
        self.assertEqual(resp["size"], len(bytes.fromhex(resp["phy"])))

    def test_confirmed_uplink_acked_in_rx1_fcnt_down_survives_restart(self):
        self.start_world()
        out = self.downlink(7)
        self.assertEqual(out["pull_acked"], 1)
        self.assertEqual(len(out["pull_resp"]), 1, out)
        up, resp = out["uplinks"][0], out["pull_resp"][0]
        self.assert_ack(resp, up, 0)
        self.assertEqual(resp["tmst"], (up["tmst"] + RX1_DELAY_US) % 2**32, "RX1: the uplink's tmst + 1 s")
        self.assertAlmostEqual(resp["freq"], up["freq"], places=5)
        self.assertEqual(resp["datr"], up["datr"])
        self.assertEqual(resp["powe"], 14)
        # The uplink's reading still arrives.
        self.sub.wait_for(lambda: self.sub.of("parking-bay-0042"), 10, "the confirmed uplink's reading")
        h = self.health(lambda h: h.lora.downlink.tx_ack.get("NONE", 0) == 1, "TX_ACK NONE counted")
        d = h.lora.downlink
        self.assertEqual((d.pull_resp_sent, d.rx1, d.rx2, d.acks, d.gateways_pulling), (1, 1, 0, 1, 1))
        self.assertEqual(dict(d.dropped), {})

        out = self.downlink(8)
        self.assert_ack(out["pull_resp"][0], out["uplinks"][0], 1)

        self.restart()
        out = self.downlink(9)
        resp = out["pull_resp"][0]
        self.assertTrue(resp["mic_ok"])
        self.assertGreaterEqual(resp["fcnt"], 2, "FCntDown is never reused across restarts")
        self.assertLessEqual(resp["fcnt"], 2 + 256)
        state = os.path.join(self.env.path("spool"), "lora-fcntdown.state")
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)
        self.assertNotIn(DEVICE["nwk_s_key"].lower(), self.gw.log().lower())

    def test_confirmed_retransmission_acked_again_not_published_twice(self):
        self.start_world()
        out = self.downlink(5)
        self.assert_ack(out["pull_resp"][0], out["uplinks"][0], 0)
        self.sub.wait_for(lambda: self.sub.of("parking-bay-0042"), 10, "the confirmed uplink's reading")
        self.health(lambda h: h.lora.frames_accepted == 1 and h.lora.pending_frames == 0, "the dedup entry expired")
        # The node missed the ACK and sends the same frame again (lora-packet builds the same bytes),
        # after the dedup TTL: it is ACKed again with the next FCntDown, and not published again.
        out = self.downlink(5)
        self.assertEqual(len(out["pull_resp"]), 1, out)
        self.assert_ack(out["pull_resp"][0], out["uplinks"][0], 1)
        h = self.health(lambda h: h.lora.retransmissions_acked == 1 and h.lora.downlink.acks == 2,
                        "the retransmission ACKed")
        self.assertEqual(h.lora.rejected["retransmission"], 1)
        self.assertEqual(h.lora.readings, 1)
        self.assertEqual(len(self.sub.of("parking-bay-0042")), 1)

    def test_tx_ack_too_late_retried_in_rx2_rx2_errors_dropped(self):
        self.start_world()
        out = self.downlink(3, tx_ack="TOO_LATE,NONE", expect=2)
        self.assertEqual(len(out["pull_resp"]), 2, out)
        up = out["uplinks"][0]
        rx1, rx2 = out["pull_resp"]
        self.assertEqual(rx1["tmst"], (up["tmst"] + RX1_DELAY_US) % 2**32)
        self.assertEqual(rx2["tmst"], (up["tmst"] + 2 * RX1_DELAY_US) % 2**32, "RX2: tmst + 2 s")
        self.assertAlmostEqual(rx2["freq"], 869.525, places=5)
        self.assertEqual(rx2["datr"], "SF12BW125")
        self.assertEqual(rx2["phy"], rx1["phy"], "the same frame, the same FCntDown")
        self.assert_ack(rx2, up, 0)
        h = self.health(lambda h: h.lora.downlink.tx_ack.get("NONE", 0) == 1, "the RX2 retry's TX_ACK")
        d = h.lora.downlink
        self.assertEqual(d.tx_ack["TOO_LATE"], 1)
        self.assertEqual((d.retried_rx2, d.rx1, d.rx2), (1, 1, 1))

        # COLLISION_PACKET in RX1, then again in RX2: dropped, counted, logged with the reason.
        out = self.downlink(4, tx_ack="COLLISION_PACKET", expect=2)
        self.assertEqual(len(out["pull_resp"]), 2, out)
        self.assertEqual(out["pull_resp"][1]["datr"], "SF12BW125")
        h = self.health(lambda h: h.lora.downlink.dropped.get("tx_ack_error", 0) == 1, "the drop counted by reason")
        self.assertEqual(h.lora.downlink.tx_ack["COLLISION_PACKET"], 2)
        self.gw.wait_log("TX_ACK COLLISION_PACKET from AA555A0000000000: downlink dropped (tx_ack_error: "
                         "COLLISION_PACKET in RX2)")

    def test_a_platform_downlink_command_goes_out_after_the_next_uplink(self):
        self.start_world(commands='commands { enabled: true platform: true allow_downlink: "parking-bay-0042" }\n')
        self.gw.wait_log("subscribed to citygate/v1/gw-dl/cmd")
        cmd = commands_pb2.Command(request_id="dl-1", device="parking-bay-0042", origin="integration")
        cmd.expires_at.FromNanoseconds(int((time.time() + 60) * 1e9))
        cmd.downlink.f_port = 10
        cmd.downlink.payload = bytes([0x01, 0xA5])
        self.sub.command(cmd)
        r = self.sub.wait_for(lambda: self.sub.results_for("dl-1"), 20, "the downlink's answer")[0]
        self.assertEqual(r.status, commands_pb2.CommandResult.ACCEPTED, r)
        # Sent after the device's next (confirmed) uplink, with the ACK: lora-packet decrypts the
        # FRMPayload with the AppSKey and verifies the MIC.
        out = self.downlink(5)
        resp = out["pull_resp"][0]
        self.assertTrue(resp["mic_ok"])
        self.assertTrue(resp["ack"])
        self.assertEqual(resp["fport"], 10)
        self.assertEqual(resp["payload"], "01a5")
        # A device that is not allowed is refused; the audit has both.
        cmd2 = commands_pb2.Command(request_id="dl-2", device="someone-else", origin="integration")
        cmd2.expires_at.CopyFrom(cmd.expires_at)
        cmd2.downlink.f_port = 10
        self.sub.command(cmd2)
        r2 = self.sub.wait_for(lambda: self.sub.results_for("dl-2"), 20, "the refusal")[0]
        self.assertEqual(r2.refusal, commands_pb2.DEVICE_NOT_ALLOWED)
        audits = self.sub.wait_for(lambda: len(self.sub.audits) >= 2 and self.sub.audits, 20, "two audit records")
        self.assertEqual([a.result.request_id for a in audits[:2]], ["dl-1", "dl-2"])

    def test_without_downlink_config_nothing_sent(self):
        self.start_world(downlink=False)
        out = self.downlink(1, expect=1, wait=1000)
        self.assertEqual(out["pull_acked"], 1)
        self.assertEqual(out["pull_resp"], [])
        self.sub.wait_for(lambda: self.sub.of("parking-bay-0042"), 10, "the reading")
        h = self.health(lambda h: h.lora.frames_accepted == 1, "the frame accepted")
        self.assertFalse(h.lora.HasField("downlink"))
        self.assertFalse(os.path.exists(os.path.join(self.env.path("spool"), "lora-fcntdown.state")))


if __name__ == "__main__":
    import unittest

    unittest.main()
