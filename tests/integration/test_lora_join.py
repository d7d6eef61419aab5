"""Issue 17: OTAA joins answered by the gateway, against lora-packet.

tests/peers/concentrator.js (join) sends PULL_DATA, then a join-request that npm lora-packet built
(fromFields, MIC with the AppKey); the PULL_RESP the real citygated answers with is decrypted and
verified by lora-packet (decryptJoinAccept, verifyMIC), and lora-packet derives the session keys
(generateSessionKeys) with which the device's next uplinks are built.
"""
import json
import os
import socket
import stat
import subprocess
import time

from harness import BIN, IntegrationTest, free_port, gateway_config
from test_lora import concentrator

APP_KEY = "98929b92c49edba9676d646d3b612456"  # protocols.md L6
DEV_EUI = "3331383274356905"
JOIN_EUI = "aa13693363343639"
JOIN_ACCEPT_DELAY1_US = 5_000_000
EU868_CFLIST = "184f84e85684b85e84886684586e8400"  # 867.1 .. 867.9 MHz, CFListType 0


class LoraJoin(IntegrationTest):
    def start_world(self):
        env = self.env
        self.broker = env.broker()
        self.port = free_port(socket.SOCK_DGRAM)
        key_file = env.path("bay-otaa.appkey")
        with open(key_file, "w") as f:
            f.write(APP_KEY + "\n")
        os.chmod(key_file, 0o600)
        lora = (f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {self.port} }}\n  dedup_window_ms: 150\n'
                '  downlink { enabled: true }\n'
                '  join { net_id: "000013" dev_addr_first: "26012000" dev_addr_last: "260120FF" }\n'
                f'  device {{ id: "bay-otaa" dev_eui: "{DEV_EUI}" join_eui: "{JOIN_EUI}" app_key_file: "{key_file}" '
                'codec: "nwave-nps405" ref_parking_site: "pilatusplatz" }\n}\n')
        self.cfg = gateway_config("gw-join", self.broker.uri, env, extra=lora)
        self.sub = env.subscriber(self.broker, "gw-join")
        self.gw = env.gateway(self.cfg)
        self.gw.wait_log("packet forwarder on 127.0.0.1:")

    def restart(self):
        self.assertEqual(self.gw.stop(), 0)
        self.gw = self.env.gateway(self.cfg, name=f"citygated-{time.monotonic_ns()}")
        self.gw.wait_log("packet forwarder on 127.0.0.1:")

    def join(self, dev_nonce, expect=1, wait=3000):
        return concentrator("join", "--port", self.port, "--dev-eui", DEV_EUI, "--join-eui", JOIN_EUI,
                            "--app-key", APP_KEY, "--dev-nonce", dev_nonce, "--expect", expect, "--wait", wait)

    def uplink(self, session, fcnt):
        """A data uplink that lora-packet builds with the keys it derived from the join-accept."""
        return concentrator("send", "--port", self.port, "--device",
                            f'{session["dev_addr"]}:{session["nwk_s_key"]}:{session["app_s_key"]}:1:95:{fcnt}')

    def ctl(self, *args):
        argv = [str(BIN / "citygatectl"), "--socket", self.env.path("control.sock"), "--no-color", "--json"]
        out = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def health(self, predicate, what, timeout=10):
        return self.sub.wait_for(lambda: [h for h in self.sub.health[-3:] if predicate(h)], timeout, what)[-1]

    def test_join_accept_session_replay_restart(self):
        self.start_world()
        out = self.join("0102")
        self.assertEqual(out["pull_acked"], 1)
        self.assertEqual(len(out["pull_resp"]), 1, out)
        up, acc = out["uplink"], out["pull_resp"][0]
        self.assertIsNone(acc.get("error"), acc)
        self.assertEqual(acc["mtype"], "Join Accept")
        self.assertTrue(acc["mic_ok"], "lora-packet verifies the join-accept's MIC with the AppKey")
        self.assertEqual(acc["net_id"], "000013")
        self.assertEqual(acc["app_nonce"], "000001", "the first JoinNonce")
        self.assertTrue(0x26012000 <= int(acc["dev_addr"], 16) <= 0x260120FF, acc["dev_addr"])
        self.assertEqual(acc["dl_settings"], 0)
        self.assertEqual(acc["rx_delay"], 1)
        self.assertEqual(acc["cflist"], EU868_CFLIST)
        self.assertEqual(acc["tmst"], (up["tmst"] + JOIN_ACCEPT_DELAY1_US) % 2**32, "RX1: tmst + 5 s")
        self.assertAlmostEqual(acc["freq"], up["freq"], places=5)
        self.assertEqual(acc["datr"], up["datr"])
        self.assertTrue(acc["ipol"])
        self.assertEqual(acc["size"], 33)

        # The device's next uplink, built with the keys lora-packet derived, becomes a reading.
        self.uplink(acc, 0)
        readings = self.sub.wait_for(lambda: self.sub.of("bay-otaa"), 10, "the joined device's reading")
        self.assertEqual(readings[0].source.lorawan.dev_addr, acc["dev_addr"])
        self.assertEqual(readings[0].source.lorawan.f_cnt, 0)
        h = self.health(lambda h: h.lora.joins_accepted == 1 and h.lora.frames_accepted >= 1, "the join counted")
        self.assertEqual(h.lora.downlink.join_accepts, 1)
        dev = [d for d in h.devices if d.sensor_id == "bay-otaa"][0]
        self.assertTrue(dev.joined)
        self.assertEqual(dev.joins_accepted, 1)

        # `citygatectl lora devices` names the session's DevAddr, never a key.
        devices = self.ctl("lora", "devices")
        dev = [d for d in devices["devices"] if d["id"] == "bay-otaa"][0]
        self.assertEqual(dev["dev_addr"], acc["dev_addr"])
        self.assertNotIn(acc["nwk_s_key"], json.dumps(devices).lower())

        # A DevStatusReq asked for at the cabinet goes out with the downlink after the next uplink,
        # in the session lora-packet derived (MIC with its NwkSKey), FCntDown 0 after the join.
        self.assertEqual(self.ctl("lora", "devstatus", "bay-otaa")["result"], "queued")
        devfile = self.env.path("otaa-session.json")
        with open(devfile, "w") as f:
            json.dump([{"id": "bay-otaa", "dev_addr": acc["dev_addr"], "nwk_s_key": acc["nwk_s_key"],
                        "app_s_key": acc["app_s_key"], "fport": 1, "payloads": ["95"]}], f)
        out = concentrator("downlink", "--port", self.port, "--devices", devfile, "--fcnt", 1)
        self.assertEqual(len(out["pull_resp"]), 1, out)
        down = out["pull_resp"][0]
        self.assertTrue(down["mic_ok"], down)
        self.assertEqual(down["fopts"], "06", "DevStatusReq in FOpts")
        self.assertEqual(down["fcnt"], 0)
        self.assertEqual(down["tmst"], (out["uplinks"][0]["tmst"] + 1_000_000) % 2**32, "RX1 after rx_delay_s 1")

        # The same join-request again (same DevNonce): refused, counted, no join-accept.
        out = self.join("0102", expect=1, wait=1000)
        self.assertEqual(out["pull_resp"], [])
        h = self.health(lambda h: h.lora.rejected.get("join_dev_nonce_replay", 0) == 1, "the replay counted")
        dev = [d for d in h.devices if d.sensor_id == "bay-otaa"][0]
        self.assertEqual(dev.frames_rejected["join_dev_nonce_replay"], 1)

        state = os.path.join(self.env.path("spool"), "lora-otaa.state")
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)
        with open(state) as f:
            text = f.read().lower()
        for secret in (APP_KEY, acc["nwk_s_key"], acc["app_s_key"]):
            self.assertNotIn(secret, text)
            self.assertNotIn(secret, self.gw.log().lower())

        # A restart keeps the session: the next uplink with the same keys is accepted, no rejoin.
        boot = h.boot_id
        self.restart()
        self.gw.wait_log("OTAA sessions restored from")
        self.uplink(acc, 2)
        self.sub.wait_for(lambda: [r for r in self.sub.of("bay-otaa") if r.source.lorawan.f_cnt == 2], 10,
                          "the uplink after the restart")
        h = self.health(lambda h: h.boot_id != boot and h.lora.frames_accepted == 1, "accepted after the restart")
        self.assertEqual(h.lora.joins_accepted, 0)
        self.assertEqual(dict(h.lora.rejected), {})
        for secret in (APP_KEY, acc["nwk_s_key"], acc["app_s_key"]):
            self.assertNotIn(secret, self.gw.log().lower())

        # After a restart the DevNonce is still known; a new one joins (the next JoinNonce).
        out = self.join("0102", expect=1, wait=1000)
        self.assertEqual(out["pull_resp"], [])
        out = self.join("0103")
        self.assertEqual(len(out["pull_resp"]), 1, out)
        acc2 = out["pull_resp"][0]
        self.assertTrue(acc2["mic_ok"])
        self.assertEqual(acc2["app_nonce"], "000002")
        self.assertEqual(acc2["dev_addr"], acc["dev_addr"], "a device that joins again keeps its DevAddr")

    def test_unknown_dev_eui_and_wrong_app_key_refused(self):
        self.start_world()
        out = concentrator("join", "--port", self.port, "--dev-eui", "0011223344556677", "--join-eui", JOIN_EUI,
                           "--app-key", APP_KEY, "--dev-nonce", "0001", "--wait", 1000)
        self.assertEqual(out["pull_resp"], [])
        out = concentrator("join", "--port", self.port, "--dev-eui", DEV_EUI, "--join-eui", JOIN_EUI,
                           "--app-key", "00" * 16, "--dev-nonce", "0001", "--wait", 1000)
        self.assertEqual(out["pull_resp"], [])
        h = self.health(lambda h: h.lora.rejected.get("join_mic_failed", 0) == 1, "the refusals counted")
        self.assertEqual(h.lora.rejected["join_unknown_dev_eui"], 1)
        self.assertEqual(h.lora.joins_accepted, 0)


if __name__ == "__main__":
    import unittest

    unittest.main()
