"""Issue 17: the air node's firmware (bin/citygate-air-node) joins the real gateway over OTAA and
sends confirmed uplinks that the gateway acknowledges.

The node's Semtech UDP shim sends PULL_DATA, its join-request and uplinks as PUSH_DATA; the real
citygated (OTAA device, downlinks enabled) answers with PULL_RESPs, which the shim acknowledges
(TX_ACK) and hands to the node at their tmst: the join-accept in RX1 (5 s), the ACKs in RX1
(rx_delay 1 s). The node derives its session from the join-accept, every uplink is confirmed and
acknowledged at the first try (no retransmission), the readings reach the MQTT subscriber, and a
restarted node keeps its session from its flash: no second join, the counter goes on. npm
lora-packet (independent of node and gateway) derives the session keys of the join and verifies
and decrypts frames the node sent with them.
"""
import json
import os
import re
import secrets
import socket
import subprocess

from harness import BIN, PEERS, IntegrationTest, Process, free_port, gateway_config, reading_pb2

NODE_BIN = BIN / "citygate-air-node"
DEV_EUI = "70B3D57ED0000A17"
JOIN_EUI = "70B3D57ED0000000"
UPLINK = re.compile(r"^uplink fcnt=(\d+) .* payload=([0-9a-f]+) frame=([0-9a-f]+)$", re.M)
JOINED = re.compile(r"^joined dev_addr=([0-9A-F]{8}) dev_nonce=([0-9a-f]{4}) rx_delay_s=1 cflist=1$", re.M)
ACKED = re.compile(r"^acked fcnt=(\d+) tries=(\d+)$", re.M)

SCENARIO = """\
pm1 5.2
pm25 12.3
pm4 15.0
pm10 20.5
temperature 21.37
humidity 48.25
"""


def lora_packet_session(app_key, net_id, join_nonce, dev_nonce, frame_hex):
    """npm lora-packet derives the session keys of the join (generateSessionKeys: AppKey, NetID,
    AppNonce, DevNonce as displayed) and with them verifies and decrypts a frame the node sent."""
    script = """
const path = require('path');
const lora = require(path.join(process.argv[1], 'node_modules', 'lora-packet'));
const [appKey, netId, joinNonce, devNonce, frame] = process.argv.slice(2).map((h) => Buffer.from(h, 'hex'));
const keys = lora.generateSessionKeys(appKey, netId, joinNonce, devNonce);
const p = lora.fromWire(frame);
console.log(JSON.stringify({
  mic_ok: lora.verifyMIC(p, keys.NwkSKey), mtype: p.getMType(), fcnt: p.getFCnt(), fport: p.getFPort(),
  payload: lora.decrypt(p, keys.AppSKey, keys.NwkSKey).toString('hex')}));
"""
    out = subprocess.run(["node", "-e", script, str(PEERS), app_key, net_id, join_nonce, dev_nonce, frame_hex],
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


class FirmwareAirOtaa(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.assertTrue(NODE_BIN.exists(), f"{NODE_BIN} is not built")
        env = self.env
        self.app_key = secrets.token_hex(16)
        key_file = env.path("air-otaa.appkey")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(self.app_key + "\n")
        self.broker = env.broker()
        self.port = free_port(socket.SOCK_DGRAM)
        lora = (f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {self.port} }}\n  dedup_window_ms: 100\n'
                '  downlink { enabled: true }\n'
                '  join { net_id: "000013" dev_addr_first: "26012000" dev_addr_last: "260120FF" }\n'
                f'  device {{ id: "air-otaa" dev_eui: "{DEV_EUI}" join_eui: "{JOIN_EUI}" app_key_file: "{key_file}" '
                'codec: "citygate-air" }\n}\n')
        self.gw = env.gateway(gateway_config("gw-air-otaa", self.broker.uri, env, extra=lora))
        self.sub = env.subscriber(self.broker, "gw-air-otaa")
        self.gw.wait_log("packet forwarder on 127.0.0.1:")
        self.state = env.path("air-otaa.flash")
        self.provisioning = env.path("air-otaa.provisioning")
        with open(os.open(self.provisioning, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(f"dev_eui {DEV_EUI}\njoin_eui {JOIN_EUI}\napp_key {self.app_key}\n"
                    "interval_s 1\nfcnt_resume_margin 16\nconfirmed_every 1\n")
        self.scenario = env.path("air-otaa.scenario")
        with open(self.scenario, "w") as f:
            f.write(SCENARIO)
        self.runs = 0

    def node(self, *extra):
        self.runs += 1
        argv = [NODE_BIN, "--gateway", f"127.0.0.1:{self.port}", "--state", self.state, "--provisioning",
                self.provisioning, "--scenario", self.scenario, "--first-uplink-ms", 50, *extra]
        return Process(self.env, f"air-otaa-{self.runs}", argv).start()

    def readings(self):
        seen, out = set(), []
        for r in self.sub.of("air-otaa"):
            if r.seq not in seen:
                seen.add(r.seq)
                out.append(r)
        return sorted(out, key=lambda r: r.source.lorawan.f_cnt)

    def health(self, predicate, what, timeout=15):
        return self.sub.wait_for(lambda: [h for h in self.sub.health[-3:] if predicate(h)], timeout, what)[-1]

    def test_joins_confirmed_uplinks_acked_session_kept_across_restart(self):
        # Run 1: a join, then three confirmed uplinks; the node exits once the third is acknowledged.
        first = self.node("--uplinks", 3)
        self.assertEqual(first.wait(120), 0, first.log())
        log = first.log()
        self.assertIn("not joined", log)
        self.assertEqual(log.count("join-request dev_nonce="), 1, log)
        joined = JOINED.findall(log)
        self.assertEqual(len(joined), 1, log)
        dev_addr, dev_nonce = joined[0]
        self.assertEqual(dev_nonce, "0000", "the first DevNonce of a blank flash")
        self.assertTrue(0x26012000 <= int(dev_addr, 16) <= 0x260120FF, dev_addr)
        ups = UPLINK.findall(log)
        self.assertEqual([int(u[0]) for u in ups], [0, 1, 2], "FCntUp starts at 0 in the new session")
        for _, _, frame in ups:
            self.assertEqual(frame[:2], "80", "confirmed data up")
            self.assertEqual(frame[2:10].upper(), bytes.fromhex(dev_addr)[::-1].hex().upper())
        # The independent decoder: lora-packet derives the session from the join (NetID 000013,
        # the gateway's first JoinNonce 000001, DevNonce 0000) and verifies and decrypts the node's frame.
        lp = lora_packet_session(self.app_key, "000013", "000001", "0000", ups[0][2])
        self.assertTrue(lp["mic_ok"], lp)
        self.assertEqual(lp["mtype"], "Confirmed Data Up")
        self.assertEqual((lp["fcnt"], lp["fport"]), (0, 1))
        self.assertEqual(lp["payload"], ups[0][1])
        self.assertEqual(ACKED.findall(log), [("0", "1"), ("1", "1"), ("2", "1")], "acked at the first try")
        self.assertNotIn("retransmit", log)
        self.assertNotIn("refused", log)
        self.assertIn("acked=3 unacked=0 retransmissions=0", log)
        self.assertRegex(log, r"pull_resp=4 tx_acks=4 too_late=0 queue_full=0 bad_txpk=0 delivered=4")
        self.assertNotIn(self.app_key, log.lower())

        # The readings reach the platform, from the joined DevAddr.
        self.sub.wait_for(lambda: len(self.readings()) == 3, 15, "three readings of the OTAA node")
        rs = self.readings()
        self.assertEqual([r.source.lorawan.f_cnt for r in rs], [0, 1, 2])
        for r in rs:
            self.assertEqual(r.quality, reading_pb2.GOOD)
            self.assertEqual(r.source.lorawan.dev_addr, dev_addr)
        self.assertAlmostEqual(rs[0].air_quality_observed.pm25.value, 12.3, places=9)
        h = self.health(lambda h: h.lora.joins_accepted == 1 and h.lora.downlink.acks == 3,
                        "one join and three ACKs in the gateway's health")
        self.assertEqual(h.lora.downlink.join_accepts, 1)
        self.assertEqual(dict(h.lora.rejected), {})

        # Run 2: restarted from its flash: the session is kept (no join-request), the counter goes
        # on past the block the first run reserved, and the gateway acknowledges it.
        second = self.node("--uplinks", 1)
        self.assertEqual(second.wait(60), 0, second.log())
        log2 = second.log()
        self.assertIn(f"session dev_addr={dev_addr} (restored, no rejoin)", log2)
        self.assertNotIn("join-request", log2)
        ups2 = UPLINK.findall(log2)
        self.assertEqual([int(u[0]) for u in ups2], [16])
        self.assertTrue(lora_packet_session(self.app_key, "000013", "000001", "0000", ups2[0][2])["mic_ok"])
        self.assertEqual(ACKED.findall(log2), [("16", "1")])
        self.assertIn("acked=1 unacked=0 retransmissions=0", log2)
        self.sub.wait_for(lambda: len(self.readings()) == 4, 15, "the reading after the restart")
        self.assertEqual(self.readings()[-1].source.lorawan.f_cnt, 16)
        h = self.health(lambda h: h.lora.downlink.acks == 4, "the fourth ACK")
        self.assertEqual(h.lora.joins_accepted, 1, "no second join")
        self.assertEqual(dict(h.lora.rejected), {})


if __name__ == "__main__":
    import unittest

    unittest.main()
