"""Issue 6: citygatectl as a person sees it, in a real terminal (tmux): `status`, `tail` until
Ctrl-C, the progress of `modbus scan`, colour on a terminal and none with NO_COLOR.

The screen is read back with tmux capture-pane and the assertions are on that text. Skipped when
tmux is not installed (toolchains/install-deps.sh installs it).
"""
import os
import re
import shutil
import subprocess
import time
import unittest

from harness import BIN, IntegrationTest, gateway_config, wait_for
from test_cli import aqt

TMUX = shutil.which("tmux")


@unittest.skipIf(TMUX is None, "tmux is not installed")
class Terminal(IntegrationTest):
    def setUp(self):
        super().setUp()
        env = self.env
        self.broker = env.broker()
        self.sim = env.modbus({"1": {"hr": aqt(20)}, "2": {"hr": aqt(30)}})
        self.socket = env.path("control.sock")
        cfg = gateway_config("gw-tty", self.broker.uri, env,
                             f'modbus_bus {{ name: "b" tcp {{ host: "127.0.0.1" port: {self.sim.port} }}\n'
                             '  device { id: "air" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 300 }\n'
                             '  device { id: "air2" unit_id: 2 profile: "vaisala-aqt530" poll_interval_ms: 300 } }\n')
        self.sub = env.subscriber(self.broker, "gw-tty")
        self.gw = env.gateway(cfg)
        self.gw.wait_log("control socket")
        self.sub.wait_for(lambda: self.sub.of("air") and self.sub.of("air2"), 20, "readings")
        # A private tmux server with one 200x50 window running a plain shell.
        self.tmux_socket = f"cg-{os.getpid()}-{id(self)}"
        self.tmux("new-session", "-d", "-s", "cg", "-x", "200", "-y", "50",
                  f"env -i PATH={BIN}:/usr/bin:/bin TERM=xterm-256color HOME={env.dir} PS1='$ ' "
                  "bash --norc --noprofile")
        self.addCleanup(lambda: self.tmux("kill-server", check=False))
        wait_for(lambda: "$" in self.screen(), 10, what="the shell prompt")

    def tmux(self, *args, check=True):
        out = subprocess.run([TMUX, "-L", self.tmux_socket, *args], capture_output=True, text=True, timeout=10)
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {args}: {out.stderr}")
        return out.stdout

    def screen(self, escapes=False):
        return self.tmux("capture-pane", "-p", "-t", "cg", *(["-e"] if escapes else []))

    def type(self, line):
        self.tmux("send-keys", "-t", "cg", line, "Enter")

    def clear(self):
        self.type("clear")
        wait_for(lambda: self.screen().strip() == "$", 10, what="a clear screen")

    def wait_screen(self, pattern, timeout=20, escapes=False):
        return wait_for(lambda: re.search(pattern, self.screen(escapes), re.M), timeout, what=f"/{pattern}/ on the screen")

    def test_status_as_a_person_sees_it(self):
        self.clear()
        self.type(f"citygatectl --socket {self.socket} status; echo rc=$?")
        self.wait_screen(r"^rc=0$")
        text = self.screen()
        self.assertRegex(text, r"(?m)^Gateway   gw-tty   citygated \d+\.\d+\.\d+, up \d+ s \(boot [0-9a-f]{8}\)$")
        self.assertRegex(text, r"(?m)^MQTT      connected to tcp://127\.0\.0\.1:\d+ since \d\d:\d\d:\d\d, \d+ s")
        self.assertRegex(text, r"(?m)^Spool     .* readings waiting · next seq \d+ · 0 dropped$")
        lines = text.splitlines()
        header = next(l for l in lines if l.startswith("DEVICE"))
        self.assertRegex(header, r"^DEVICE +KIND +WHERE +STATE +LAST OK +OK +FAILED +TIMEOUTS +RTT +LAST ERROR$")
        for dev in ("air", "air2"):
            row = next(l for l in lines if l.startswith(dev + " "))
            # every value starts under its column header
            for col, pattern in (("KIND", r"modbus"), ("WHERE", r"b #\d"), ("STATE", r"OK"), ("LAST OK", r"\d+ s ago"),
                                 ("RTT", r"[\d.]+ (ms|µs)"), ("LAST ERROR", r"-")):
                self.assertRegex(row[header.index(col):], "^" + pattern, f"{col} in {row!r}")
        # colour on a terminal: the state is green ...
        self.assertIn("\x1b[32mOK", self.screen(escapes=True))
        # ... and none with NO_COLOR
        self.clear()
        self.type(f"NO_COLOR=1 citygatectl --socket {self.socket} status; echo rc=$?")
        self.wait_screen(r"^rc=0$")
        self.assertNotIn("\x1b[32m", self.screen(escapes=True))

    def test_tail_until_ctrl_c(self):
        self.clear()
        self.type(f"citygatectl --socket {self.socket} tail --device air")
        self.wait_screen(r"^waiting for readings from device air \(Ctrl-C to stop\)$")
        pattern = r"^\d\d:\d\d:\d\d\.\d{3}  #(\d+)  air  GOOD  no2 38\.24 µg/m³  no 6\.23696 µg/m³  o3 59\.85 µg/m³"
        wait_for(lambda: len(re.findall(pattern, self.screen(), re.M)) >= 3, 20, what="three live readings")
        seqs = [int(s) for s in re.findall(pattern, self.screen(), re.M)]
        self.assertEqual(seqs, sorted(seqs))
        self.assertNotIn("air2", self.screen())  # the filter holds
        self.tmux("send-keys", "-t", "cg", "C-c")
        self.type("echo rc=$?")
        self.wait_screen(r"^rc=0$")
        # the readings on the screen are the ones the platform received
        for s in seqs:
            self.sub.wait_for(lambda: s in self.sub.seqs(), 10, f"seq {s} at the platform")

    def test_scan_shows_its_progress_then_a_table(self):
        self.clear()
        # a slow scan (units 1..40, 100 ms per silent unit) so that the progress line is seen
        self.type(f"citygatectl --socket {self.socket} modbus scan b 1 40 --timeout 100; echo rc=$?")
        self.wait_screen(r"^scanning bus b: unit \d+ \(\d+ of 40\) · found: 1, 2$", timeout=30)
        self.wait_screen(r"^rc=0$", timeout=60)
        text = self.screen()
        self.assertRegex(text, r"(?m)^UNIT +ANSWER +RTT$")
        self.assertRegex(text, r"(?m)^1 +ok +[\d.]+ (ms|µs)$")
        self.assertRegex(text, r"(?m)^2 of 40 unit id\(s\) answered on bus b: 1, 2$")
        self.assertNotRegex(text, r"scanning bus b")  # the progress line is cleared at the end


if __name__ == "__main__":
    unittest.main()
