"""Issue 4: LoRaWAN sensors through the gateway's own concentrator, against real peers.

Frames are built and encrypted by npm lora-packet (tests/peers/concentrator.js), sent as real
Semtech UDP datagrams to the real citygated, and read back by the platform subscriber from a real
mosquitto as decoded protobuf readings and health.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest
from pathlib import Path

from harness import BIN, PEERS, REPO, IntegrationTest, free_port, gateway_config, reading_pb2, status_pb2, wait_for

DEVICES_JSON = REPO / "tests" / "data" / "lora" / "devices.json"
DEVICES = {d["id"]: d for d in json.loads(DEVICES_JSON.read_text())}
NODE = "node"
EUI = "AA555A0000000000"


def device_block(d):
    extra = ""
    if d["codec"] == "cayenne-lpp":
        extra = ' kind: "AIR_QUALITY" lpp_channel { channel: 3 field: "temperature" }'
    if d["codec"] in ("nwave-nps405", "bosch-tps110"):
        extra += ' ref_parking_site: "pilatusplatz"'
    return (f'  device {{ id: "{d["id"]}" dev_addr: "{d["dev_addr"]}" nwk_s_key: "{d["nwk_s_key"]}" '
            f'app_s_key: "{d["app_s_key"]}" codec: "{d["codec"]}"{extra} }}\n')


def concentrator(*args, timeout=60):
    """Runs tests/peers/concentrator.js; returns its JSON summary (the last stdout line)."""
    out = subprocess.run([NODE, str(PEERS / "concentrator.js"), *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"concentrator.js {' '.join(map(str, args))} failed ({out.returncode}):\n"
                             f"{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def frames(devices, count=1, fcnt=None):
    """Frames lora-packet encrypts for `devices` (dicts as in devices.json), without sending them."""
    path = None
    args = ["frames", "--count", count]
    for d in devices:
        args += ["--device", f'{d["dev_addr"]}:{d["nwk_s_key"]}:{d["app_s_key"]}:{d["fport"]}:'
                             f'{",".join(d["payloads"])}:{d.get("fcnt", 0) if fcnt is None else fcnt}']
    out = subprocess.run([NODE, str(PEERS / "concentrator.js"), *map(str, args)], capture_output=True, text=True,
                         timeout=30, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def push_data(token, rxpks, eui=EUI, version=2):
    body = json.dumps({"rxpk": rxpks}, separators=(",", ":")).encode()
    return bytes([version, token >> 8, token & 0xFF, 0]) + bytes.fromhex(eui) + body


def rxpk(b64, size, rssi=-70, lsnr=6.0, stat=1):
    return {"tmst": 1000, "chan": 0, "rfch": 0, "freq": 868.3, "stat": stat, "modu": "LORA", "datr": "SF9BW125",
            "codr": "4/5", "rssi": rssi, "lsnr": lsnr, "size": size, "data": b64}


def udp_drops(port):
    """Datagrams the kernel dropped on the gateway's socket (last column of /proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1] == want:
            return int(cols[-1])
    return 0


class Lora(IntegrationTest):
    def of(self, sensor_id):
        """The readings of a sensor, once each: delivery is at least once, so a restart may resend
        readings the broker had not acknowledged (same seq)."""
        seen, out = set(), []
        for r in self.sub.of(sensor_id):
            if r.seq not in seen:
                seen.add(r.seq)
                out.append(r)
        return sorted(out, key=lambda r: r.seq)

    def start_world(self, devices, extra_lora=""):
        env = self.env
        self.broker = env.broker()
        self.port = free_port(socket.SOCK_DGRAM)
        blocks = "".join(device_block(DEVICES[i]) for i in devices)
        lora = (f'lora {{\n  packet_forwarder {{ bind: "127.0.0.1" port: {self.port} }}\n'
                f'  dedup_window_ms: 150\n{extra_lora}{blocks}}}\n')
        # runtime_dir in the test's own directory (gateway_config's): parallel tests never share a RAM copy.
        self.runtime_dir = env.path("run")
        self.cfg = gateway_config("gw-lora", self.broker.uri, env, extra=lora)
        self.sub = env.subscriber(self.broker, "gw-lora")
        self.gw = env.gateway(self.cfg)
        self.gw.wait_log("packet forwarder on 127.0.0.1:")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        self.addCleanup(self.sock.close)

    def restart(self, kill=False, power_cut=False):
        """A clean stop, a kill -9, or a simulated power cut (kill -9, and runtime_dir, a tmpfs,
        is gone as after a reboot)."""
        if kill or power_cut:
            self.gw.kill()
            if power_cut:
                shutil.rmtree(self.runtime_dir, ignore_errors=True)
        else:
            self.assertEqual(self.gw.stop(), 0)
        self.gw = self.env.gateway(self.cfg, name=f"citygated-{time.monotonic_ns()}")
        self.gw.wait_log("packet forwarder on 127.0.0.1:")

    def send(self, datagram):
        """Sends one datagram and returns the ACK the gateway answers with."""
        self.sock.sendto(datagram, ("127.0.0.1", self.port))
        ack, _ = self.sock.recvfrom(64)
        return ack

    def health(self, predicate, what, timeout=10):
        """The newest health report (published every second) that satisfies `predicate`."""
        return self.sub.wait_for(lambda: [h for h in self.sub.health[-3:] if predicate(h)], timeout, what)[-1]

    @staticmethod
    def rejected(h, reason):
        return h.lora.rejected.get(reason, 0)

    @staticmethod
    def device(h, sensor_id):
        return next(d for d in h.devices if d.sensor_id == sensor_id)

    # ------------------------------------------------------------------------------------------

    def test_parking_air_traffic_and_lpp_readings_with_their_lora_metadata(self):
        self.start_world(DEVICES.keys())
        summary = concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--count", 2,
                               "--interval", 400, "--copies", 2, "--stat")
        self.assertEqual(summary["missing_acks"], 0)
        sub = self.sub
        sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 2 and len(self.of("parking-bay-0043")) == 2
                     and len(self.of("air-node-01")) == 2 and len(self.of("traffic-node-01")) == 4
                     and len(self.of("lpp-air-01")) == 2, 20, "readings of every LoRa device")

        p = self.of("parking-bay-0042")
        self.assertEqual(p[0].parking_spot.status, reading_pb2.OCCUPIED)   # 0x95: bit 7
        self.assertEqual(p[1].parking_spot.status, reading_pb2.FREE)       # 0x15
        self.assertEqual(p[0].parking_spot.ref_parking_site, "pilatusplatz")
        self.assertEqual(p[0].parking_spot.id, "urn:ngsi-ld:ParkingSpot:parking-bay-0042")
        src = p[0].source.lorawan
        self.assertEqual(src.dev_addr, "26011F42")
        self.assertEqual((src.f_cnt, src.f_port), (0, 1))
        self.assertEqual(p[1].source.lorawan.f_cnt, 1)
        self.assertEqual(src.rssi, -57)        # the better of the two receptions (-57, -60)
        self.assertEqual(src.snr, 9.5)
        self.assertEqual(src.receptions, 2)    # heard by two gateways: one reading
        self.assertAlmostEqual(src.frequency, 868.1)
        self.assertEqual(src.data_rate, "SF7BW125")
        self.assertEqual(src.gateway_eui, EUI)
        b = self.of("parking-bay-0043")
        self.assertEqual([r.parking_spot.status for r in b], [reading_pb2.OCCUPIED, reading_pb2.FREE])

        a = self.of("air-node-01")[0].air_quality_observed  # the codec README's worked example
        self.assertAlmostEqual(a.pm25.value, 12.3, places=9)
        self.assertAlmostEqual(a.pm10.value, 20.5, places=9)
        self.assertAlmostEqual(a.no2.value, 21.0 * 1.912, places=9)
        self.assertEqual(a.no2.unit_code, "GQ")
        self.assertAlmostEqual(a.temperature.value, 18.25, places=9)
        self.assertAlmostEqual(a.relative_humidity.value, 0.55, places=9)
        self.assertEqual(a.relative_humidity.unit_code, "C62")
        self.assertEqual(self.of("air-node-01")[0].source.lorawan.dev_addr, "26011A01")

        lanes = {r.traffic_flow_observed.lane_id: r.traffic_flow_observed for r in self.of("traffic-node-01")[:2]}
        self.assertEqual(set(lanes), {1, 2})
        self.assertEqual(lanes[1].intensity.value, 42)
        self.assertAlmostEqual(lanes[1].occupancy.value, 0.125)
        self.assertAlmostEqual(lanes[1].average_vehicle_speed.value, 48.5)
        self.assertFalse(lanes[1].congested)
        self.assertEqual(lanes[2].intensity.value, 17)
        self.assertTrue(lanes[2].congested)
        self.assertAlmostEqual(lanes[2].average_vehicle_length.value, 5.2)
        self.assertEqual(lanes[1].date_observed_to.seconds - lanes[1].date_observed_from.seconds, 300)

        lpp = self.of("lpp-air-01")[0].air_quality_observed
        self.assertAlmostEqual(lpp.temperature.value, 27.2)
        for r in sub.readings:
            self.assertEqual(r.quality, reading_pb2.GOOD, r.sensor_id)

        h = self.health(lambda h: h.lora.frames_accepted == 10 and h.lora.readings == 10 and len(h.lora.concentrators) == 2,
                        "health with 10 accepted frames and readings")
        self.assertEqual(h.lora.duplicates, 10)
        self.assertEqual(h.lora.readings, 10)
        self.assertEqual(dict(h.lora.rejected), {})
        c = next(c for c in h.lora.concentrators if c.gateway_eui == EUI)
        self.assertEqual(c.push_data, 10)
        self.assertEqual(c.rxnb, 2)
        self.assertEqual(c.ackr, 100.0)
        d = self.device(h, "parking-bay-0042")
        self.assertEqual((d.frames_accepted, d.last_f_cnt, d.last_rssi, d.state), (2, 1, -57, status_pb2.OK))

    def test_pull_data_and_protocol_v1(self):
        self.start_world(["parking-bay-0042"])
        self.assertEqual(concentrator("pull", "--port", self.port, "--count", 2, "--interval", 50)["missing_acks"], 0)
        self.assertEqual(concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--version", 1,
                                      "--count", 1)["missing_acks"], 0)
        self.sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 1, 10, "a reading over protocol v1")
        # devices.json has five devices; this gateway knows one of them.
        h = self.health(lambda h: h.lora.concentrators and h.lora.concentrators[0].pull_data == 2
                        and h.lora.concentrators[0].push_data == 5, "PULL_DATA and PUSH_DATA in health")
        self.assertEqual(self.rejected(h, "unknown_dev_addr"), 4)
        self.assertEqual(h.lora.concentrators[0].protocol_version, 1)

    def test_every_bad_input_is_rejected_and_counted_by_reason(self):
        self.start_world(["parking-bay-0042", "parking-bay-0043"])
        dev = DEVICES["parking-bay-0042"]
        good = frames([dev], count=3)  # FCnt 0, 1, 2 by lora-packet
        other_key = dict(dev, nwk_s_key="000102030405060708090a0b0c0d0e0f")
        wrong_key = frames([other_key], fcnt=5)[0]
        unknown = frames([dict(dev, dev_addr="26011FFF")], fcnt=5)[0]
        tampered = bytearray.fromhex(good[2]["phy"])
        tampered[-1] ^= 0x01
        import base64
        b64 = lambda b: base64.b64encode(bytes(b)).decode()  # noqa: E731

        token = 0x4000
        cases = [
            ("mic_failed", [rxpk(b64(tampered), len(tampered))]),
            ("mic_failed", [rxpk(wrong_key["b64"], len(bytes.fromhex(wrong_key["phy"])))]),
            ("unknown_dev_addr", [rxpk(unknown["b64"], len(bytes.fromhex(unknown["phy"])))]),
            ("truncated_frame", [rxpk(b64(bytes.fromhex(good[0]["phy"])[:9]), 9)]),
            ("bad_base64", [rxpk("QEIfASYAAAAB-q0wR2E=", 14)]),
            ("crc_failed", [rxpk(good[0]["b64"], 14, stat=-1)]),
            ("size_mismatch", [rxpk(good[0]["b64"], 13)]),
            ("oversize", [rxpk(b64(bytes(300)), 300)]),
            ("bad_rxpk", [{"data": good[0]["b64"], "size": 14, "stat": 1}]),
        ]
        for reason, pk in cases:
            token += 1
            ack = self.send(push_data(token, pk))
            self.assertEqual(ack, bytes([2, token >> 8, token & 0xFF, 1]), reason)
        self.assertEqual(self.send(push_data(0x4100, [rxpk(g["b64"], len(bytes.fromhex(g["phy"]))) for g in good])),
                         bytes([2, 0x41, 0x00, 1]))
        self.sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 3, 10, "the three good frames")
        # A copy inside the dedup TTL (2 x 150 ms) would be one more reception of the frame; once the
        # gateway has forgotten the frames (no pending frame left), a copy is a replay.
        self.health(lambda h: h.lora.readings == 3 and h.lora.pending_frames == 0, "the dedup cache emptied")
        self.send(push_data(0x4200, [rxpk(good[0]["b64"], 14)]))
        self.send(push_data(0x4201, [rxpk(good[2]["b64"], 14)]))
        self.sock.sendto(b"\x02\x00", ("127.0.0.1", self.port))
        self.sock.sendto(b"\x07\x00\x00\x00" + bytes(8), ("127.0.0.1", self.port))
        self.sock.sendto(b"\x02\x00\x01\x00" + bytes.fromhex(EUI) + b'{"rxpk":[', ("127.0.0.1", self.port))

        want = {"mic_failed": 2, "unknown_dev_addr": 1, "truncated_frame": 1, "bad_base64": 1, "crc_failed": 1,
                "size_mismatch": 1, "oversize": 1, "bad_rxpk": 1, "replay": 1, "retransmission": 1,
                "datagram_too_short": 1, "bad_version": 1, "bad_json": 1}
        h = self.health(lambda h: dict(h.lora.rejected) == want, f"health.lora.rejected == {want}")
        d = self.device(h, "parking-bay-0042")
        self.assertEqual(dict(d.frames_rejected), {"mic_failed": 2, "replay": 1, "retransmission": 1})
        self.assertEqual(d.frames_accepted, 3)
        self.assertEqual(dict(self.device(h, "parking-bay-0043").frames_rejected), {})
        self.assertEqual(len(self.of("parking-bay-0042")), 3)  # nothing else became a reading
        self.assertTrue(self.gw.process.running())
        self.assertNotIn(dev["nwk_s_key"], self.gw.log())
        self.assertNotIn(dev["app_s_key"], self.gw.log())

    def test_counter_rollover_and_restarts_never_reopen_a_replay_window(self):
        self.start_world(["parking-bay-0042"])
        summary = concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65533,
                               "--count", 6, "--interval", 20)
        self.assertEqual(summary["missing_acks"], 0)
        sub = self.sub
        sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 6, 10, "six frames across 65535 -> 65536")
        self.assertEqual([r.source.lorawan.f_cnt for r in self.of("parking-bay-0042")],
                         [65533, 65534, 65535, 65536, 65537, 65538])

        # Clean restart: the stored counter is exact; the frame 65536 replayed is refused.
        self.restart()
        self.assertIn("clean stop", self.gw.log())
        concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65536, "--count", 1)
        concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65539, "--count", 1)
        sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 7, 10, "frame 65539 after the restart")
        self.assertEqual(self.of("parking-bay-0042")[-1].source.lorawan.f_cnt, 65539)
        self.health(lambda h: self.rejected(h, "replay") == 1 and h.lora.frames_accepted == 1, "the replay counted")

        # Crash (SIGKILL) right after accepting 65540: the RAM copy (runtime_dir) has it, so the
        # counter resumes exactly: 65539 and 65540 stay out, 65541 (the next real frame) is in.
        concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65540, "--count", 1)
        sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 8, 10, "frame 65540")
        self.restart(kill=True)
        self.assertIn("1 exact from the RAM copy", self.gw.log())
        for f in (65539, 65540):
            concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", f, "--count", 1)
        self.health(lambda h: self.rejected(h, "replay") == 2, "both replays refused after the crash")
        concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65541, "--count", 1)
        sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 9, 10, "the next real frame after the crash")
        self.assertEqual(self.of("parking-bay-0042")[-1].source.lorawan.f_cnt, 65541)
        self.assertEqual(len({r.source.lorawan.f_cnt for r in self.of("parking-bay-0042")}), 9)

        # A power cut: kill -9, and the RAM copy is gone (a reboot empties the tmpfs). The storage
        # copy + margin (16) applies: 65541 can never come back; frames within the margin of the
        # storage copy's last counter are the documented cost.
        self.restart(power_cut=True)
        self.assertRegex(self.gw.log(), r"0 exact from the RAM copy, 0 exact from \S+ \(clean stop\), 1 from \S+ \+ 16")
        concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65541, "--count", 1)
        # 65541 was accepted before the cut, but the storage copy's last is 65540: the gateway cannot
        # tell it from a genuine frame of the unsynced window, so it is refused as the margin's
        # cost, not labelled a replay (an attack).
        h = self.health(lambda h: self.rejected(h, "fcnt_below_resume_margin") == 1,
                        "the frame within the margin refused after the power cut")
        self.assertEqual(self.rejected(h, "replay"), 0)
        d = self.device(h, "parking-bay-0042")
        self.assertEqual(d.last_rejected_reason, "fcnt_below_resume_margin")
        self.assertEqual(d.f_cnt_floor, 65556)
        out = self.folded(self.ctl("device", "parking-bay-0042"))
        self.assertIn("frame counter below the resume margin after an unclean stop: expected, the node", out)
        self.assertIn("accepted again from FCnt 65557", out)
        self.assertNotIn("no frame received yet", out)
        self.assertNotIn("replay", out)
        concentrator("send", "--port", self.port, "--devices", DEVICES_JSON, "--fcnt", 65541 + 17, "--count", 1)
        sub.wait_for(lambda: len(self.of("parking-bay-0042")) == 10, 10, "a frame beyond the margin")
        self.assertEqual(self.of("parking-bay-0042")[-1].source.lorawan.f_cnt, 65558)

    # ---- issue 15: commissioning (lora heard, the MIC hint) ---------------------------------------

    def ctl(self, *args, json_out=False):
        """The real citygatectl against the running daemon; its stdout (parsed with --json). The
        lines this issue added (all of `lora heard`, the hints of `device`) fit 80 columns."""
        argv = [str(BIN / "citygatectl"), "--socket", self.env.path("control.sock"), "--no-color"]
        out = subprocess.run(argv + (["--json"] if json_out else []) + list(args), capture_output=True, text=True,
                             timeout=30, env=dict(os.environ, COLUMNS="80"))
        self.assertEqual(out.returncode, 0, out.stderr)
        if json_out:
            return json.loads(out.stdout)
        hint = False
        for line in out.stdout.splitlines():
            hint = line.startswith("Hint ") or (hint and line.startswith(" " * 13))
            if args[0] == "lora" or hint:
                self.assertLessEqual(len(line), 80, f"citygatectl {' '.join(args)}: {line!r}")
        return out.stdout

    @staticmethod
    def folded(text):
        """Human output with its wrapping undone (line breaks and indentation as one space)."""
        return re.sub(r"\n *", " ", text)

    def test_unconfigured_dev_addr_in_lora_heard_and_a_wrong_nwkskey_hinted_in_device(self):
        self.start_world(["parking-bay-0042"])
        empty = self.ctl("lora", "heard")
        self.assertIn("No unconfigured DevAddr heard", empty)
        self.assertEqual(self.ctl("lora", "heard", json_out=True).get("heard", []), [])

        dev = DEVICES["parking-bay-0042"]
        # A node nobody configured (lora-packet frames, counters 40, 41), heard at -97 dBm / -4.5 dB.
        stranger = frames([dict(dev, dev_addr="26011FAB")], count=2, fcnt=40)
        token = 0x5000
        for f in stranger:
            self.send(push_data(token, [rxpk(f["b64"], len(bytes.fromhex(f["phy"])), rssi=-97, lsnr=-4.5)]))
            token += 1
        # The configured device, whose real NwkSKey is not the one in the config.
        wrong = frames([dict(dev, nwk_s_key="000102030405060708090a0b0c0d0e0f")], count=3, fcnt=7)
        for f in wrong:
            self.send(push_data(token, [rxpk(f["b64"], len(bytes.fromhex(f["phy"])), rssi=-81)]))
            token += 1

        heard = wait_for(lambda: [e for e in self.ctl("lora", "heard", json_out=True).get("heard", [])
                                  if int(e["frames"]) == 2], 10, what="the stranger in lora heard")
        self.assertEqual(len(heard), 1)
        e = heard[0]
        self.assertEqual(e["dev_addr"], "26011FAB")
        self.assertEqual((e["last_rssi"], e["last_snr"]), (-97, -4.5))
        self.assertEqual(e["data_rate"], "SF9BW125")
        self.assertEqual(e["last_f_cnt"], 41)
        self.assertEqual(e["gateway_eui"], EUI)
        table = self.ctl("lora", "heard")
        row = next(line for line in table.splitlines() if line.startswith("26011FAB"))
        self.assertIn("-97 dBm", row)
        self.assertIn("-4.5 dB", row)
        self.assertRegex(row, r"\d\d:\d\d:\d\d, \d+ s ago")
        self.assertNotIn("26011F42", table)  # the configured DevAddr is not "heard but not configured"
        self.assertIn("Not configured    1 DevAddr(s) heard: citygatectl lora heard", self.ctl("lora", "devices"))

        d = wait_for(lambda: (lambda d: d if d["health"].get("frames_rejected", {}).get("mic_failed") == "3" else None)(
            self.ctl("device", "parking-bay-0042", json_out=True)), 10, what="three MIC failures")
        self.assertEqual(d["health"]["last_error"], "frames fail the MIC check (wrong NwkSKey?)")
        self.assertEqual(d["health"]["last_rejected_reason"], "mic_failed")
        out = self.folded(self.ctl("device", "parking-bay-0042"))
        self.assertNotIn("no frame received yet", out)
        self.assertIn("frames from this DevAddr fail the MIC check: the NwkSKey in the config does not", out)
        self.assertRegex(out, r"3 frames \(mic_failed\), the last at \d\d:\d\d:\d\d, \d+ s ago")
        self.assertNotIn(dev["nwk_s_key"], out + self.gw.log())

    # ---- issue 14: frame counters across kill -9 and power cuts ---------------------------------

    KILL_IDS = ["parking-bay-0042", "parking-bay-0043", "air-node-01"]

    def lora_devices(self):
        """citygatectl lora devices --json of the running daemon: {id: health}."""
        out = subprocess.run([str(BIN / "citygatectl"), "--socket", self.env.path("control.sock"), "--json", "lora",
                              "devices"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return {d["id"]: d["health"] for d in json.loads(out.stdout)["devices"]}

    def send_round(self, built, token):
        """One frame per device (lora-packet built), each acknowledged by the gateway."""
        for f in built:
            self.send(push_data(token, [rxpk(f["b64"], len(bytes.fromhex(f["phy"])))]))
            token += 1
        return token

    def assert_no_replay_and_all_accepted(self, accepted_by_id, what):
        """The running daemon accepted exactly `accepted_by_id` frames per device, rejected none."""
        def done():
            devs = self.lora_devices()
            return all(int(devs[i].get("frames_accepted", "0")) == n for i, n in accepted_by_id.items()) and devs
        devs = wait_for(done, 10, what=what)
        for i in accepted_by_id:
            self.assertEqual(devs[i].get("frames_rejected", {}), {}, f"{what}: {i} rejected frames")

    def readings_fcnts(self, sensor_id):
        return {r.source.lorawan.f_cnt for r in self.sub.of(sensor_id)}

    def test_kill9_under_traffic_and_ten_in_a_row_never_reject_a_real_frame(self):
        self.start_world(self.KILL_IDS)
        devs = [DEVICES[i] for i in self.KILL_IDS]
        # Frames 0..199 of every device, built by lora-packet; sent in rounds (one frame per device).
        built = frames(devs, count=200, fcnt=0)
        rounds = [built[k * len(devs):(k + 1) * len(devs)] for k in range(200)]
        for r in rounds:
            self.assertEqual([f["fcnt"] for f in r], [r[0]["fcnt"]] * len(devs))

        # Traffic from a thread (its own socket, no wait on ACKs: the gateway may be dead), a round
        # every 30 ms; kill -9 while it runs.
        sent = []
        stop = threading.Event()

        def traffic(first):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            k = first
            while not stop.is_set() and k < 60:
                for f in rounds[k]:
                    sock.sendto(push_data(0x100 + k, [rxpk(f["b64"], len(bytes.fromhex(f["phy"])))]),
                                ("127.0.0.1", self.port))
                sent.append(k)
                k += 1
                time.sleep(0.03)
            sock.close()

        t = threading.Thread(target=traffic, args=(0,))
        t.start()
        self.sub.wait_for(lambda: all(len(self.readings_fcnts(i)) >= 5 for i in self.KILL_IDS), 15,
                          "readings of the first frames")
        self.gw.kill()  # mid-traffic
        stop.set()  # (a device whose frames are lost while the gateway is down proves nothing)
        t.join()
        last_sent = sent[-1]
        self.restart(kill=True)
        self.assertIn(f"{len(devs)} exact from the RAM copy", self.gw.log())
        # The next real frames of every device after the restart: all accepted, none a replay; and
        # the storage copy is not touched by them (steady state writes only the RAM copy).
        state = next(Path(self.env.path("")).rglob("lora-fcnt.state"))
        before = (state.stat().st_ino, state.stat().st_mtime_ns)
        token = 0x2000
        for k in range(last_sent + 1, last_sent + 6):
            token = self.send_round(rounds[k], token)
        self.assert_no_replay_and_all_accepted({i: 5 for i in self.KILL_IDS}, "the next frames after the kill -9")
        self.assertEqual((state.stat().st_ino, state.stat().st_mtime_ns), before, "the storage copy was rewritten")
        for i in self.KILL_IDS:
            self.sub.wait_for(lambda i=i: set(range(last_sent + 1, last_sent + 6)) <= self.readings_fcnts(i), 15,
                              f"readings of {i} after the kill -9")

        # Ten kill -9 in a row, one round of frames in between: every frame accepted each time and
        # its reading at the subscriber (waited for before the next kill: a kill -9 inside a frame's
        # dedup window loses that reading, whatever the counters do).
        k = last_sent + 6
        for n in range(10):
            self.restart(kill=True)
            token = self.send_round(rounds[k], token)
            self.assert_no_replay_and_all_accepted({i: 1 for i in self.KILL_IDS}, f"round {k} after kill -9 #{n + 1}")
            for i in self.KILL_IDS:
                self.sub.wait_for(lambda i=i: k in self.readings_fcnts(i), 15, f"the reading of {i} {k}")
            k += 1

        # A replayed frame (the same bytes again) is still rejected, after a kill -9 ...
        self.restart(kill=True)
        token = self.send_round(rounds[k - 1], token)
        token = self.send_round(rounds[k - 5], token)
        wait_for(lambda: all(self.lora_devices()[i].get("frames_rejected", {}) == {"replay": "2"}
                             for i in self.KILL_IDS), 10, what="both replays rejected after the kill -9")
        # ... and after a power cut (kill -9, then runtime_dir is gone): storage copy + margin.
        self.restart(power_cut=True)
        self.assertRegex(self.gw.log(), rf"0 exact from the RAM copy, 0 exact from \S+ \(clean stop\), "
                                        rf"{len(devs)} from \S+ \+ 16")
        token = self.send_round(rounds[k - 1], token)
        wait_for(lambda: all(self.lora_devices()[i].get("frames_rejected", {}) == {"replay": "1"}
                             for i in self.KILL_IDS), 10, what="the last frame's replay rejected after a power cut")

    def test_flood_of_5000_datagrams_per_second_valid_frames_still_arrive(self):
        self.start_world(["parking-bay-0042", "air-node-01"])
        pid = self.gw.process.proc.pid

        def cpu_ticks():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        before = cpu_ticks()
        devices_file = self.env.path("flood-devices.json")
        Path(devices_file).write_text(json.dumps([DEVICES["parking-bay-0042"], DEVICES["air-node-01"]]))
        s = concentrator("flood", "--port", self.port, "--devices", devices_file, "--rate", 5000, "--duration", 3,
                         "--interval", 100, "--ack-timeout", 500, timeout=120)
        cpu_s = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
        sent = s["sent_by_kind"]
        valid = sent["valid"]
        self.assertGreater(s["rate"], 4000, s)
        self.assertTrue(self.gw.process.running())
        drops = udp_drops(self.port)

        parking = [f["fcnt"] for f in s["frames"] if f["dev_addr"] == "26011F42"]
        air = [f["fcnt"] for f in s["frames"] if f["dev_addr"] == "26011A01"]
        self.sub.wait_for(lambda: len(self.of("parking-bay-0042")) >= len(parking) - drops
                          and len(self.of("air-node-01")) >= len(air) - drops, 20, "the flood's valid frames")
        h = self.health(lambda h: h.lora.datagrams + drops >= s["sent"], "every datagram accounted for", timeout=20)
        got = [r.source.lorawan.f_cnt for r in self.of("parking-bay-0042")]
        self.assertEqual(got, sorted(got))
        self.assertEqual(len(got), len(set(got)))
        if drops == 0:
            self.assertEqual(got, parking)
            self.assertEqual(len(self.of("air-node-01")), len(air))
            for kind, reason in [("bad_json", "bad_json"), ("bad_base64", "bad_base64"), ("crc_failed", "crc_failed"),
                                 ("oversize", "oversize"), ("truncated", "truncated_frame"),
                                 ("unknown_dev_addr", "unknown_dev_addr"), ("bad_mic", "mic_failed"),
                                 ("replay", "replay")]:
                self.assertEqual(self.rejected(h, reason), sent[kind], reason)
            self.assertEqual(h.lora.datagrams, s["sent"])
        d = self.device(h, "parking-bay-0042")
        self.assertGreaterEqual(d.frames_rejected["mic_failed"], 1)
        self.assertGreaterEqual(d.frames_rejected["replay"], 1)
        rss = h.process.rss_bytes
        report = {"sent": s["sent"], "rate_per_s": s["rate"], "valid_sent": valid,
                  "valid_received": len(got) + len(self.of("air-node-01")), "kernel_drops": drops,
                  "rejected": dict(h.lora.rejected), "acks_received": s["acked"],
                  "acks_unsent": h.lora.acks_dropped, "gateway_cpu_s": round(cpu_s, 2),
                  "gateway_cpu_share": round(cpu_s / s["seconds"], 3), "rss_mb": round(rss / 2**20, 1)}
        print("\nflood: " + json.dumps(report), flush=True)
        Path(os.environ.get("CITYGATE_LORA_FLOOD_REPORT", self.env.path("flood.json"))).write_text(json.dumps(report))


if __name__ == "__main__":
    unittest.main()
