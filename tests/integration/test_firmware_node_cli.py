"""Issue 16: `citygatectl node show|provision` against a node's service UART.

The node is citygate-node-service (firmware/ports/host/node_service_main.cpp): the node core's
record store and service port on a pty, its flash a file, reset by executing itself again as the
traffic and air nodes do. citygatectl (libprotobuf, gateway/cli/node_link.cpp) and the node
(nanopb, firmware/core/service_*.cpp) implement the frames separately; here they meet. Raw frames
are built in Python (zlib's CRC-32) for what citygatectl never sends: a corrupted frame.
"""
import json
import os
import select
import struct
import subprocess
import termios
import tty
import zlib

from harness import BIN, REPO, IntegrationTest, Process, wait_for

CTL = BIN / "citygatectl"
NODE = BIN / "citygate-node-service"

TRAFFIC = """
node_id: "traffic-kreuzplatz-1"
kind: NODE_TRAFFIC_COUNTER
traffic {
  unit_id: 7
  baud: 19200
  period_s: 60
  lane { lane_id: 1 direction: "forward" detector_length_cm: 450 }
  lane { lane_id: 2 direction: "backward" detector_length_cm: 450 }
}
"""

NWK = bytes(range(0x10, 0x20))
APP = bytes(range(0xA0, 0xB0))


def text_bytes(b):
    return '"' + "".join(f"\\x{c:02x}" for c in b) + '"'


AIR = f"""
node_id: "air-pilatusplatz"
kind: NODE_AIR_QUALITY
air {{
  dev_eui: {text_bytes(bytes.fromhex("70b3d57ed0000001"))}
  dev_addr: 0x26011234
  nwk_s_key: {text_bytes(NWK)}
  app_s_key: {text_bytes(APP)}
  interval_s: 300
}}
"""

APP_KEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")
AIR_OTAA = f"""
node_id: "air-otaa"
kind: NODE_AIR_QUALITY
air {{
  dev_eui: {text_bytes(bytes.fromhex("70b3d57ed0000a17"))}
  join_eui: {text_bytes(bytes.fromhex("70b3d57ed0000000"))}
  app_key: {text_bytes(APP_KEY)}
  interval_s: 300
  confirmed_every: 1
}}
"""


def slip(t, seq, payload):
    body = bytes([t, seq]) + struct.pack("<H", len(payload)) + payload
    body += struct.pack("<I", zlib.crc32(body))
    return b"\xc0" + body.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class RawPort:
    """The node's service port opened from Python, raw, for frames citygatectl would not send."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.buf = b""

    def close(self):
        os.close(self.fd)

    def reply(self, timeout=5):
        """The next whole frame (SLIP-decoded, CRC checked): (type, seq, payload)."""
        def frame():
            while True:
                start = self.buf.find(b"\xc0")
                if start < 0:
                    return None
                end = self.buf.find(b"\xc0", start + 1)
                if end < 0:
                    return None
                raw, self.buf = self.buf[start + 1:end], self.buf[end:]
                if raw:
                    body = raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
                    assert zlib.crc32(body[:-4]) == struct.unpack("<I", body[-4:])[0], body
                    return body[0], body[1], body[4:-4]

        def ready():
            f = frame()
            if f is not None:
                return f
            if select.select([self.fd], [], [], 0.05)[0]:
                self.buf += os.read(self.fd, 4096)
            return None

        return wait_for(ready, timeout, interval=0, what="a reply frame from the node")

    def ask(self, frame_bytes):
        os.write(self.fd, frame_bytes)
        return self.reply()


class FirmwareNodeCliTest(IntegrationTest):
    def start_node(self, kind):
        self.link = self.env.path(f"{kind}-service.tty")
        self.flash = self.env.path(f"{kind}.flash")
        self.node = Process(self.env, f"node-{kind}",
                            [NODE, "--kind", kind, "--port", self.link, "--flash", self.flash]).start()
        self.env.processes.append(self.node)
        self.wait_ready(1)

    def ready_lines(self):
        return [line for line in self.node.log().splitlines() if line.startswith("ready:")]

    def wait_ready(self, count):
        """The node's `count`th start (1 = the first; each reset adds one)."""
        lines = wait_for(lambda: len(self.ready_lines()) >= count and self.ready_lines(), 10,
                         what=f"node start #{count}\n{self.node.log()}")
        return lines[count - 1]

    def ctl(self, *args, expect=0):
        out = subprocess.run([str(CTL), "--no-color", *map(str, args)], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, expect, f"citygatectl {' '.join(map(str, args))}\n{out.stdout}\n{out.stderr}")
        return out

    def record_file(self, name, text, mode=0o600):
        path = self.env.path(name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def show_json(self):
        return json.loads(self.ctl("node", "show", "--port", self.link, "--json").stdout)

    def test_provision_then_show_round_trips_a_traffic_record(self):
        self.start_node("traffic")
        self.assertIn("NOT PROVISIONED", self.ready_lines()[0])
        out = self.ctl("node", "show", "--port", self.link)
        self.assertIn("traffic counter on", out.stdout)
        self.assertIn("not provisioned", out.stdout)
        self.assertEqual(self.show_json()["state"], "not_provisioned")

        out = self.ctl("node", "provision", "--port", self.link, self.record_file("traffic.textproto", TRAFFIC))
        self.assertIn("traffic-kreuzplatz-1 provisioned (record generation 1)", out.stdout)
        self.assertIn("generation 1", out.stdout)
        # The node resets to apply it, and starts with the record.
        self.assertIn("record 1 (traffic-kreuzplatz-1)", self.wait_ready(2))

        shown = self.show_json()
        self.assertEqual(shown["state"], "provisioned")
        self.assertEqual(shown["generation"], 1)
        r = shown["record"]
        self.assertEqual(r["node_id"], "traffic-kreuzplatz-1")
        self.assertEqual(r["kind"], "NODE_TRAFFIC_COUNTER")
        self.assertEqual(r["traffic"]["unit_id"], 7)
        self.assertEqual([(l["lane_id"], l["direction"], l["detector_length_cm"]) for l in r["traffic"]["lane"]],
                         [(1, "forward", 450), (2, "backward", 450)])
        out = self.ctl("node", "show", "--port", self.link).stdout
        self.assertRegex(out, r"Modbus +unit 7, 19200 baud 8E1")
        self.assertRegex(out, r"Lane 2 +backward, detector 450 cm")
        self.assertRegex(out, r"Record +generation 1")

        # A second provisioning is the next generation, in the other flash copy.
        out = self.ctl("node", "provision", "--port", self.link,
                       self.record_file("traffic2.textproto", TRAFFIC.replace("unit_id: 7", "unit_id: 8")))
        self.assertIn("generation 2", out.stdout)
        self.assertIn("record 2", self.wait_ready(3))
        self.assertEqual(self.show_json()["record"]["traffic"]["unit_id"], 8)

    def test_air_keys_go_in_and_never_come_back(self):
        self.start_node("air")
        self.ctl("node", "provision", "--port", self.link, self.record_file("air.textproto", AIR))
        self.wait_ready(2)
        raw = self.ctl("node", "show", "--port", self.link, "--json").stdout
        shown = json.loads(raw)
        self.assertTrue(shown["record"]["keys_set"])
        self.assertEqual(shown["record"]["air"]["nwk_s_key"], "")
        self.assertEqual(shown["record"]["air"]["app_s_key"], "")
        self.assertEqual(shown["record"]["air"]["dev_addr"], 0x26011234)
        human = self.ctl("node", "show", "--port", self.link).stdout
        self.assertRegex(human, r"DevEUI +70b3d57ed0000001")
        self.assertRegex(human, r"Keys +set \(never shown\)")
        for key in (NWK, APP):
            self.assertNotIn(key.hex(), raw + human)
        # The keys are in the node's flash (it sends with them), not on its service port.
        with open(self.flash, "rb") as f:
            self.assertIn(APP, f.read(8192))

    def test_air_otaa_app_key_goes_in_and_never_comes_back(self):
        # An OTAA record (issue 17): join_eui and app_key instead of a DevAddr and session keys.
        self.start_node("air")
        self.ctl("node", "provision", "--port", self.link, self.record_file("otaa.textproto", AIR_OTAA))
        self.wait_ready(2)
        raw = self.ctl("node", "show", "--port", self.link, "--json").stdout
        shown = json.loads(raw)
        self.assertTrue(shown["record"]["keys_set"])
        self.assertEqual(shown["record"]["air"].get("app_key", ""), "")
        self.assertEqual(shown["record"]["air"]["confirmed_every"], 1)
        human = self.ctl("node", "show", "--port", self.link).stdout
        self.assertRegex(human, r"Activation +OTAA")
        self.assertRegex(human, r"JoinEUI +70b3d57ed0000000")
        self.assertRegex(human, r"Confirmed +every uplink")
        self.assertRegex(human, r"Keys +set \(never shown\)")
        self.assertNotIn(APP_KEY.hex(), raw + human)
        with open(self.flash, "rb") as f:
            self.assertIn(APP_KEY, f.read(8192))
        # OTAA with a DevAddr, or a short AppKey: refused by citygatectl before anything is sent.
        bad = AIR_OTAA.replace("interval_s: 300", "interval_s: 300\n  dev_addr: 0x26011234")
        out = self.ctl("node", "provision", "--port", self.link, self.record_file("otaa-abp.textproto", bad), expect=78)
        self.assertIn("OTAA (app_key, join_eui) takes no dev_addr, nwk_s_key or app_s_key", out.stderr)

    def test_refusals_change_nothing_on_the_node(self):
        self.start_node("traffic")
        self.ctl("node", "provision", "--port", self.link, self.record_file("good.textproto", TRAFFIC))
        self.wait_ready(2)
        with open(self.flash, "rb") as f:
            before = f.read()

        out = self.ctl("node", "provision", "--port", self.link,
                       self.record_file("bad-unit.textproto", TRAFFIC.replace("unit_id: 7", "unit_id: 0")), expect=1)
        self.assertIn("the node refused: traffic.unit_id 0 is not 1..247 (invalid); nothing was changed", out.stderr)
        out = self.ctl("node", "provision", "--port", self.link,
                       self.record_file("lanes.textproto", TRAFFIC.replace("lane_id: 2", "lane_id: 1")), expect=1)
        self.assertIn("lane 1 is given twice", out.stderr)
        out = self.ctl("node", "provision", "--port", self.link, self.record_file("air.textproto", AIR), expect=1)
        self.assertIn("this node is a traffic counter (wrong_kind)", out.stderr)
        # The file holds keys: a file others may read is refused before anything is sent.
        out = self.ctl("node", "provision", "--port", self.link,
                       self.record_file("open.textproto", TRAFFIC, mode=0o644), expect=78)
        self.assertIn("has mode 0644: a file holding a node's keys must be 0600 or stricter", out.stderr)
        if os.geteuid() == 0:  # another user's file (root may hand it to one)
            theirs = self.record_file("theirs.textproto", TRAFFIC)
            os.chown(theirs, 65534, -1)
            out = self.ctl("node", "provision", "--port", self.link, theirs, expect=78)
            self.assertIn("belongs to uid 65534: a file holding a node's keys must belong to you", out.stderr)
        out = self.ctl("node", "provision", "--port", self.link,
                       self.record_file("typo.textproto", TRAFFIC.replace("unit_id", "unit")), expect=78)
        self.assertIn("typo.textproto:5:", out.stderr)

        # A corrupted frame on the line: the node says why, by reason, and changes nothing.
        port = RawPort(self.link)
        try:
            good = bytearray(slip(0x02, 9, b"\x0a\x03abc\x10\x01"))
            good[6] ^= 0x01
            t, seq, payload = port.ask(bytes(good))
            self.assertEqual((t, seq, payload[0]), (0xFF, 0, 1))
            self.assertIn(b"CRC", payload)
            t, seq, payload = port.ask(slip(0x02, 10, b"\x0a\x03abc")[:-5] + b"\xc0")
            self.assertEqual((t, seq, payload[0]), (0xFF, 0, 2))  # truncated
            t, seq, payload = port.ask(slip(0x42, 11, b""))
            self.assertEqual((t, seq, payload[0]), (0xFF, 11, 6))  # unknown type
            # COUNTERS: each refusal counted by its reason.
            t, seq, payload = port.ask(slip(0x04, 12, b""))
            self.assertEqual((t, seq), (0x84, 12))
            counts = struct.unpack(f"<{payload[0]}I", payload[1:])
            self.assertEqual(counts[1:10], (1, 1, 0, 0, 0, 1, 0, 2, 1))
        finally:
            port.close()

        with open(self.flash, "rb") as f:
            self.assertEqual(f.read(), before, "a refused request changed the flash")
        self.assertEqual(len(self.ready_lines()), 2, "a refused request reset the node")
        shown = self.show_json()
        self.assertEqual((shown["generation"], shown["record"]["traffic"]["unit_id"]), (1, 7))

    def test_the_service_port_stays_open_across_a_reset(self):
        """A reset (PosixBoard::reset(): the process executes itself again) keeps the pty: the
        peer's descriptor, open all along, gets the reply and then talks to the new start."""
        self.start_node("traffic")
        pid = self.node.proc.pid
        port = RawPort(self.link)
        try:
            t, seq, payload = port.ask(slip(0x03, 21, b""))  # RESET
            self.assertEqual((t, seq, payload), (0x83, 21, b""))
            second = self.wait_ready(2)
            self.assertEqual(self.node.proc.pid, pid)
            self.assertTrue(self.node.running())
            # the same pty, and no hang-up on the descriptor opened before the reset
            self.assertEqual(self.ready_lines()[0].split("(")[1], second.split("(")[1])
            p = select.poll()
            p.register(port.fd, 0)
            self.assertEqual(p.poll(0), [])
            t, seq, payload = port.ask(slip(0x04, 22, b""))  # COUNTERS of the new start
            self.assertEqual((t, seq), (0x84, 22))
            self.assertEqual(set(struct.unpack(f"<{payload[0]}I", payload[1:])), {0})
        finally:
            port.close()

    def test_a_damaged_flash_copy_falls_back_to_the_previous_record(self):
        self.start_node("traffic")
        self.ctl("node", "provision", "--port", self.link, self.record_file("a.textproto", TRAFFIC))
        self.wait_ready(2)
        self.ctl("node", "provision", "--port", self.link,
                 self.record_file("b.textproto", TRAFFIC.replace("unit_id: 7", "unit_id: 9")))
        self.wait_ready(3)
        self.node.stop()
        # Generation 2 is in sector 1 (4096 bytes in); a bit of its payload goes.
        with open(self.flash, "r+b") as f:
            f.seek(4096 + 20)
            b = f.read(1)[0]
            f.seek(4096 + 20)
            f.write(bytes([b ^ 0x04]))
        self.node.start()
        self.assertIn("record 1 (traffic-kreuzplatz-1)", self.wait_ready(4))
        shown = self.show_json()
        self.assertEqual((shown["generation"], shown["record"]["traffic"]["unit_id"]), (1, 7))

    def test_port_errors_are_clear(self):
        out = self.ctl("node", "show", "--port", "/dev/null", expect=1)
        self.assertIn("/dev/null is not a serial port (not a terminal device)", out.stderr)
        out = self.ctl("node", "show", "--port", self.env.path("no-such-tty"), expect=5)
        self.assertIn("No such file or directory", out.stderr)
        out = self.ctl("node", "show", expect=2)
        self.assertIn("node show needs --port TTY", out.stderr)
        # A pty with no node on its other end: the timeout names the port and the baud rate.
        silent, _ = self.env.pty_pair("silent")
        out = self.ctl("node", "show", "--port", silent, "--timeout", "300", expect=1)
        self.assertIn(f"no reply from a node on {silent} at 115200 baud within 300 ms", out.stderr)

    def test_help_and_completion(self):
        a = self.ctl("help", "node", "provision").stdout
        self.assertEqual(a, self.ctl("node", "provision", "--help").stdout)
        self.assertIn("mode 0600 or stricter", a)
        self.assertRegex(self.ctl("--help").stdout, r"(?m)^  node show --port TTY +read a sensor node's")
        out = self.ctl("node", expect=2)
        self.assertIn("node wants a subcommand: node show, node provision", out.stderr)

        def complete(line):
            script = REPO / "gateway" / "cli" / "citygatectl.bash-completion"
            words = line.split(" ")
            quoted = " ".join("'" + w + "'" for w in words)
            prog = (f"source {script}\nCOMP_WORDS=({quoted})\nCOMP_CWORD={len(words) - 1}\n_citygatectl\n"
                    'printf "%s\\n" "${COMPREPLY[@]}"\n')
            out = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            return sorted(l for l in out.stdout.splitlines() if l)

        self.assertEqual(complete("citygatectl no"), ["node"])
        self.assertEqual(complete("citygatectl node "), ["provision", "show"])
        self.assertIn("--port", complete("citygatectl node show --p"))
        self.assertEqual(complete("citygatectl node show --port /dev/nu"), ["/dev/null"])
