"""Issue 16: the air-quality node's firmware, built for the host (bin/citygate-air-node), against
the real gateway.

The node's uplinks leave through its Semtech UDP packet-forwarder shim to the real citygated, and
reach the platform subscriber on a real mosquitto as AirQualityObserved readings with the values
of the node's simulated sensors. A node restarted from its flash file, after a clean stop or a
kill -9 (a power cut for the node), goes on with a higher frame counter: the gateway rejects
nothing and publishes no counter twice. And a frame of the node, decoded by npm lora-packet (an
implementation independent of both the node and the gateway), verifies and gives the payload the
node says it encrypted. A confirmed uplink this gateway never ACKs (no downlinks enabled) is sent
again, the same frame, up to four times, and published once (issue 17).
"""
import json
import os
import re
import secrets
import socket
import struct
import subprocess
import zlib

from harness import BIN, PEERS, IntegrationTest, Process, free_port, gateway_config, reading_pb2, wait_for
from citygate.v1 import node_pb2  # noqa: E402  (generated; harness put it on the path)

NODE_BIN = BIN / "citygate-air-node"
NODE_JS = "node"
UPLINK = re.compile(r"^uplink fcnt=(\d+) freq=(\S+) datr=(\S+) size=(\d+) toa_us=(\d+) payload=([0-9a-f]+) "
                    r"frame=([0-9a-f]+)$", re.M)

SCENARIO = """\
# the simulated sensors of the air node
pm1 5.2
pm25 12.3
pm4 15.0
pm10 20.5
temperature 21.37
humidity 48.25
"""


def lora_packet_decode(frame_hex, nwk_s_key, app_s_key):
    """npm lora-packet's view of a frame: MIC check, decrypted payload, header fields."""
    script = """
const path = require('path');
const lora = require(path.join(process.argv[1], 'node_modules', 'lora-packet'));
const [frame, nwk, app] = process.argv.slice(2).map((h) => Buffer.from(h, 'hex'));
const p = lora.fromWire(frame);
console.log(JSON.stringify({
  mic_ok: lora.verifyMIC(p, nwk), mtype: p.getMType(), dev_addr: p.getBuffers().DevAddr.toString('hex'),
  fcnt: p.getFCnt(), fport: p.getFPort(), payload: lora.decrypt(p, app, nwk).toString('hex')}));
"""
    out = subprocess.run([NODE_JS, "-e", script, str(PEERS), frame_hex, nwk_s_key, app_s_key], capture_output=True,
                         text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def flash_with_record(path, record):
    """A node's flash image (8 erased sectors of 4 KB) holding `record` (NodeProvisioning) as the
    service UART's PROVISION writes it: copy 1 in sector 0 (core/record_store.hpp)."""
    payload = record.SerializeToString()
    header = struct.pack("<IIHH", 0x31524743, 1, len(payload), 0)
    crc = zlib.crc32(payload, zlib.crc32(header)) & 0xFFFFFFFF
    image = bytearray(b"\xff" * (8 * 4096))
    copy = header + struct.pack("<I", crc) + payload
    image[:len(copy)] = copy
    with open(path, "wb") as f:
        f.write(image)


class FirmwareAir(IntegrationTest):
    DEV_ADDR = "26011A07"

    def setUp(self):
        super().setUp()
        self.assertTrue(NODE_BIN.exists(), f"{NODE_BIN} is not built")
        self.nwk = secrets.token_hex(16)
        self.app = secrets.token_hex(16)
        env = self.env
        self.broker = env.broker()
        self.port = free_port(socket.SOCK_DGRAM)
        lora = (f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {self.port} }}\n  dedup_window_ms: 100\n'
                f'  device {{ id: "air-node-07" dev_addr: "{self.DEV_ADDR}" nwk_s_key: "{self.nwk}" '
                f'app_s_key: "{self.app}" codec: "citygate-air" }}\n}}\n')
        self.gw = env.gateway(gateway_config("gw-air", self.broker.uri, env, extra=lora))
        self.sub = env.subscriber(self.broker, "gw-air")
        self.gw.wait_log("packet forwarder on 127.0.0.1:")
        self.state = env.path("air-node.flash")
        self.provisioning = env.path("air-node.provisioning")
        with open(os.open(self.provisioning, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(f"dev_addr {self.DEV_ADDR}\nnwk_s_key {self.nwk}\napp_s_key {self.app}\n"
                    f"interval_s 1\nfcnt_resume_margin 16\n")
        self.scenario = env.path("air-node.scenario")
        with open(self.scenario, "w") as f:
            f.write(SCENARIO)
        self.runs = 0

    def node(self, *extra, scenario=None):
        """Starts the node (a new process, the same flash file)."""
        self.runs += 1
        argv = [NODE_BIN, "--gateway", f"127.0.0.1:{self.port}", "--state", self.state, "--provisioning",
                self.provisioning, "--scenario", scenario or self.scenario, "--first-uplink-ms", 50, *extra]
        return Process(self.env, f"air-node-{self.runs}", argv).start()

    @staticmethod
    def uplinks(process):
        return [dict(fcnt=int(m[0]), freq=m[1], datr=m[2], payload=m[5], frame=m[6])
                for m in UPLINK.findall(process.log())]

    def readings(self):
        seen, out = set(), []
        for r in self.sub.of("air-node-07"):
            if r.seq not in seen:
                seen.add(r.seq)
                out.append(r)
        return sorted(out, key=lambda r: r.source.lorawan.f_cnt)

    def device_health(self, predicate, what, timeout=15):
        def find():
            for h in reversed(self.sub.health[-3:]):
                for d in h.devices:
                    if d.sensor_id == "air-node-07" and predicate(h, d):
                        return h, d
            return None
        return self.sub.wait_for(find, timeout, what)

    # ------------------------------------------------------------------------------------------

    def test_uplinks_to_the_platform_fcnt_across_restarts(self):
        # Run 1: three uplinks, then a clean exit. The 1 s interval is stretched by the 1 % duty
        # cycle to 100 x the frame's time on air (28 bytes at SF7BW125: 66.8 ms -> 6.7 s).
        first = self.node("--uplinks", 3)
        self.assertEqual(first.wait(60), 0, first.log())
        up1 = self.uplinks(first)
        self.assertEqual([u["fcnt"] for u in up1], [0, 1, 2])
        self.assertEqual([u["freq"] for u in up1], ["868.100", "868.300", "868.500"])
        self.assertEqual({u["datr"] for u in up1}, {"SF7BW125"})
        self.assertIn("push_acks=3", first.log())  # every PUSH_DATA acknowledged by the gateway
        self.sub.wait_for(lambda: len(self.readings()) == 3, 15, "three readings of the air node")

        # Run 2: restarted from its flash file, killed (-9) after its first uplink.
        second = self.node()
        wait_for(lambda: len(self.uplinks(second)) == 1 or not second.running(), 30,
                 what="the second run's uplink")
        second.kill()
        # Run 3: after the kill.
        third = self.node("--uplinks", 1)
        self.assertEqual(third.wait(30), 0, third.log())
        counters = [u["fcnt"] for u in up1 + self.uplinks(second) + self.uplinks(third)]
        # The counter reserved on the flash in blocks of the margin (16): a restart goes on past the
        # block, never back and never on a value already sent.
        self.assertEqual(counters, [0, 1, 2, 16, 32])

        self.sub.wait_for(lambda: len(self.readings()) == 5, 15, "five readings of the air node")
        rs = self.readings()
        self.assertEqual([r.source.lorawan.f_cnt for r in rs], counters)
        a = rs[0].air_quality_observed
        self.assertAlmostEqual(a.pm1.value, 5.2, places=9)
        self.assertAlmostEqual(a.pm25.value, 12.3, places=9)
        self.assertAlmostEqual(a.pm4.value, 15.0, places=9)
        self.assertAlmostEqual(a.pm10.value, 20.5, places=9)
        self.assertAlmostEqual(a.temperature.value, 21.37, places=9)
        self.assertAlmostEqual(a.relative_humidity.value, 0.4825, places=9)
        self.assertEqual(a.pm25.unit_code, "GQ")
        self.assertEqual(a.relative_humidity.unit_code, "C62")
        for r in rs:
            self.assertEqual(r.quality, reading_pb2.GOOD)
            self.assertEqual(r.source.lorawan.dev_addr, self.DEV_ADDR)
            self.assertEqual(r.source.lorawan.f_port, 1)
            self.assertEqual(r.source.lorawan.data_rate, "SF7BW125")
            self.assertEqual(r.air_quality_observed.pm10.value, a.pm10.value)

        # The gateway's counters: five frames accepted, none rejected (no replay, no reuse).
        h, d = self.device_health(lambda h, d: d.frames_accepted == 5 and d.last_f_cnt == 32,
                                  "the device's health with five frames, last FCnt 32")
        self.assertEqual(dict(d.frames_rejected), {})
        self.assertEqual(dict(h.lora.rejected), {})
        self.assertEqual(h.lora.frames_accepted, 5)

        # The independent decoder: lora-packet verifies the node's MIC and decrypts its payload.
        for u in (up1[0], self.uplinks(third)[0]):
            lp = lora_packet_decode(u["frame"], self.nwk, self.app)
            self.assertTrue(lp["mic_ok"], lp)
            self.assertEqual(lp["mtype"], "Unconfirmed Data Up")
            self.assertEqual(lp["dev_addr"].upper(), self.DEV_ADDR)
            self.assertEqual(lp["fport"], 1)
            self.assertEqual(lp["fcnt"], u["fcnt"] & 0xFFFF)
            self.assertEqual(lp["payload"], u["payload"])
        # citygate-air v1: version 1, mask 0x0C0F (PM1, PM2.5, PM4, PM10, T, RH), the six values.
        self.assertEqual(up1[0]["payload"], "010c0f" + "0034" + "007b" + "0096" + "00cd" + "0859" + "12d9")

    def test_confirmed_uplink_without_ack_is_retransmitted_then_given_up(self):
        # This gateway has no downlinks enabled: it never ACKs. The node sends its confirmed uplink
        # 4 times (the same frame: same counter, same bytes), within the duty cycle, then gives up;
        # the gateway publishes one reading and counts the copies as retransmissions.
        node = self.node("--uplinks", 1, "--confirmed-every", 1)
        self.assertEqual(node.wait(90), 0, node.log())
        log = node.log()
        ups = self.uplinks(node)
        self.assertEqual(len(ups), 1)
        self.assertEqual(ups[0]["frame"][:2], "80", "confirmed data up")
        self.assertEqual(re.findall(r"^retransmit fcnt=0 try=(\d)$", log, re.M), ["2", "3", "4"])
        self.assertIn("unacked fcnt=0 tries=4", log)
        self.assertIn("confirmed=1 acked=0 unacked=1 retransmissions=3", log)
        self.assertIn("push_data=4 push_acks=4", log)
        self.sub.wait_for(lambda: len(self.readings()) == 1, 15, "one reading of the confirmed uplink")
        h, d = self.device_health(lambda h, d: h.lora.rejected.get("retransmission", 0) == 3,
                                  "the three copies counted as retransmissions")
        self.assertEqual(d.frames_accepted, 1)
        self.assertEqual(len(self.readings()), 1)

    def test_scenario_re_read_when_it_changes(self):
        # The demo drifts the values by renaming a new scenario over the file: the running node
        # measures the new values from its next uplink; a version that does not parse keeps them.
        node = self.node("--uplinks", 3)
        wait_for(lambda: len(self.uplinks(node)) >= 1 or not node.running(), 30, what="the first uplink")
        new = self.scenario + ".new"
        with open(new, "w") as f:
            f.write(SCENARIO.replace("pm25 12.3", "pm25 30.1"))
        os.replace(new, self.scenario)
        wait_for(lambda: len(self.uplinks(node)) >= 2 or not node.running(), 30, what="the second uplink")
        with open(new, "w") as f:
            f.write("pm25 nonsense\n")
        os.replace(new, self.scenario)
        self.assertEqual(node.wait(30), 0, node.log())
        self.assertIn("not re-read: the previous values stay", node.log())
        self.sub.wait_for(lambda: len(self.readings()) == 3, 15, "three readings of the air node")
        self.assertEqual([round(r.air_quality_observed.pm25.value, 1) for r in self.readings()], [12.3, 30.1, 30.1])

    def test_sensor_faults_are_bad_not_wrong(self):
        broken = self.env.path("broken.scenario")
        with open(broken, "w") as f:
            f.write(SCENARIO + "sht3x bad_crc\nsps30 absent\n")
        node = self.node("--uplinks", 1, scenario=broken)
        self.assertEqual(node.wait(30), 0, node.log())
        self.assertRegex(node.log(), r"sps30_nack=[1-9]")
        self.assertIn("sht3x_crc=1", node.log())
        self.sub.wait_for(lambda: len(self.readings()) == 1, 15, "the air node's reading")
        a = self.readings()[0].air_quality_observed
        for m in (a.pm1, a.pm25, a.pm4, a.pm10, a.temperature, a.relative_humidity):
            self.assertEqual(m.quality, reading_pb2.BAD)
        self.assertEqual(self.readings()[0].quality, reading_pb2.BAD)

    def test_node_provisioned_by_its_flash_record(self):
        record = node_pb2.NodeProvisioning(node_id="air-node-07", kind=node_pb2.NODE_AIR_QUALITY)
        record.air.dev_eui = bytes.fromhex("70B3D57ED0000007")
        record.air.dev_addr = int(self.DEV_ADDR, 16)
        record.air.nwk_s_key = bytes.fromhex(self.nwk)
        record.air.app_s_key = bytes.fromhex(self.app)
        record.air.interval_s = 10
        flash_with_record(self.state, record)
        argv = [NODE_BIN, "--gateway", f"127.0.0.1:{self.port}", "--state", self.state, "--scenario", self.scenario,
                "--first-uplink-ms", 50, "--uplinks", 1]
        node = Process(self.env, "air-node-record", argv).start()
        self.assertEqual(node.wait(30), 0, node.log())
        self.assertIn(f"DevAddr {self.DEV_ADDR}, gateway 127.0.0.1:{self.port}, interval 10 s", node.log())
        self.sub.wait_for(lambda: len(self.readings()) == 1, 15, "the reading of the provisioned node")
        self.assertAlmostEqual(self.readings()[0].air_quality_observed.pm25.value, 12.3, places=9)
        # Unprovisioned (an erased flash) and no settings on the command line: a clear refusal.
        out = subprocess.run([NODE_BIN, "--gateway", f"127.0.0.1:{self.port}", "--state", self.env.path("blank.flash")],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 64)
        self.assertIn("not provisioned", out.stderr)

    def test_bad_arguments_and_no_keys_printed(self):
        run = lambda *a: subprocess.run([NODE_BIN, *map(str, a)], capture_output=True, text=True, timeout=10)
        out = run("--gateway", f"127.0.0.1:{self.port}", "--state", self.state, "--dev-addr", self.DEV_ADDR)
        self.assertEqual(out.returncode, 64)
        self.assertIn("--provisioning FILE, or all of --dev-addr, --nwk-s-key, --app-s-key", out.stderr)
        out = run("--gateway", f"127.0.0.1:{self.port}", "--state", self.state, "--dev-addr", self.DEV_ADDR,
                  "--nwk-s-key", self.nwk[:-2], "--app-s-key", self.app)
        self.assertEqual(out.returncode, 64)
        self.assertIn("--nwk-s-key: expected 32 hex digits", out.stderr)
        self.assertNotIn(self.nwk[:-2], out.stderr + out.stdout)
        out = run("--gateway", "nowhere", "--state", self.state, "--provisioning", self.provisioning)
        self.assertEqual(out.returncode, 64)
        self.assertIn("expected HOST:PORT", out.stderr)
        out = run("--gateway", f"127.0.0.1:{self.port}", "--state", self.state, "--provisioning", self.provisioning,
                  "--uplinks", 1, "--first-uplink-ms", 10)
        self.assertEqual(out.returncode, 0, out.stderr)
        for key in (self.nwk, self.app):
            self.assertNotIn(key, out.stdout + out.stderr)
            self.assertNotIn(key.upper(), out.stdout + out.stderr)
