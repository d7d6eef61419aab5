"""Issue 12: files that are not what they seem, read on request, and what `config apply` may read.

A FIFO named *.textproto, a link to /dev/zero and a 1 GiB (sparse) file in profile_dir: the real
citygated's start, `citygated --check-config`, `citygatectl config apply` (and SIGHUP) and SIGTERM
during an apply must neither hang nor read without bound, and each says which file and why. Every
run has a deadline, and an address-space limit (1 GiB) in case something does read without bound.

`config apply` through the control socket reads only inside the running configuration's
directory and profile_dir, and says nothing about files elsewhere. A Latin-1 byte gets the same
FILE:LINE:COL diagnostic from `config validate`, `--check-config` and `config apply`.
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from harness import BIN, IntegrationTest, gateway_config, wait_for

CTL = BIN / "citygatectl"
DAEMON = BIN / "citygated"
LIMIT = 1 << 30  # address space: a read without bound fails fast instead of taking the machine


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


class HostileFiles(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = self.env.broker()
        self.profiles = self.env.path("profiles")
        os.makedirs(self.profiles)
        self.socket = self.env.path("control.sock")
        self.cfg = self.env.path("citygated.textproto")
        Path(self.cfg).write_text(self.config())
        self.daemon = None

    def tearDown(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        super().tearDown()

    def config(self, extra=""):
        return gateway_config("gw-files", self.broker.uri, self.env, extra=f'profile_dir: "{self.profiles}"\n' + extra)

    def plant(self):
        """The three hostile files; returns what each must be reported as."""
        fifo = os.path.join(self.profiles, "fifo.textproto")
        os.mkfifo(fifo)
        zero = os.path.join(self.profiles, "zero.textproto")
        os.symlink("/dev/zero", zero)
        huge = os.path.join(self.profiles, "huge.textproto")
        with open(huge, "wb") as f:
            f.truncate(1 << 30)
        return {fifo: "not a regular file (FIFO)", zero: "not a regular file (character device)",
                huge: "1073741824 bytes: larger than the 1 MiB limit"}

    def run_limited(self, argv, timeout=20):
        try:
            return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=limited)
        except subprocess.TimeoutExpired:
            self.fail(f"{argv[0]} {argv[1]} did not finish within {timeout} s (a FIFO waited on, or a read without end?)")

    def ctl(self, *args, timeout=30):
        try:
            return subprocess.run([str(CTL), "--socket", self.socket, *map(str, args)], capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"citygatectl {' '.join(map(str, args))} did not finish within {timeout} s")

    def start_daemon(self):
        log = open(self.env.path("citygated.log"), "ab")
        self.daemon = subprocess.Popen([str(DAEMON), "--config", self.cfg, "--log-level", "debug"], stdout=log,
                                       stderr=subprocess.STDOUT, preexec_fn=limited, start_new_session=True)
        log.close()

    def daemon_log(self):
        return Path(self.env.path("citygated.log")).read_text(errors="replace")

    def assert_reported(self, text, expected):
        for path, why in expected.items():
            self.assertIn(f"{path}: {why}", text)

    def test_check_config_and_start_report_each_file_without_hanging(self):
        expected = self.plant()
        out = self.run_limited([DAEMON, "--check-config", self.cfg])
        self.assertEqual(out.returncode, 78, out.stderr)
        self.assert_reported(out.stderr, expected)
        # The daemon's start: refused with the same lines (exit 78, EX_CONFIG), not a hang.
        self.start_daemon()
        try:
            code = self.daemon.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("citygated did not start or exit within 20 s:\n" + self.daemon_log()[-3000:])
        self.assertEqual(code, 78, self.daemon_log()[-3000:])
        self.assert_reported(self.daemon_log(), expected)

    def test_config_apply_sighup_and_sigterm_with_hostile_profiles(self):
        self.start_daemon()
        wait_for(lambda: "ready" in self.daemon_log() or self.daemon.poll() is not None, 20, what="citygated ready")
        self.assertIsNone(self.daemon.poll(), self.daemon_log())
        expected = self.plant()
        # Through the control socket, the link to /dev/zero is refused for where it leads.
        zero = os.path.join(self.profiles, "zero.textproto")
        through_socket = dict(expected)
        through_socket[zero] = f"not allowed: {zero} leads outside {self.env.dir}"
        # config apply: answered within its deadline, each file named with its reason.
        out = self.ctl("config", "apply", self.cfg)
        self.assertEqual(out.returncode, 78, out.stdout + out.stderr)
        self.assert_reported(out.stderr, through_socket)
        # The apply thread is free: the next apply is answered too (not BUSY).
        out = self.ctl("config", "diff", self.cfg)
        self.assertEqual(out.returncode, 78, out.stdout + out.stderr)
        self.assert_reported(out.stderr, through_socket)
        # citygatectl itself does not wait on a FIFO given as the configuration.
        fifo_cfg = self.env.path("fifo-config.textproto")
        os.mkfifo(fifo_cfg)
        out = self.ctl("config", "apply", fifo_cfg)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn(f"cannot read {fifo_cfg}: not a regular file (FIFO)", out.stderr)
        # SIGHUP re-reads the file the same way.
        self.daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: not applied" in self.daemon_log(), 20, what="the SIGHUP reload to give up")
        self.assert_reported(self.daemon_log(), expected)
        # SIGTERM right after an apply was asked: a clean stop within the unit's deadline.
        ctl = subprocess.Popen([str(CTL), "--socket", self.socket, "config", "apply", self.cfg],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.daemon.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.wait(10)
        except subprocess.TimeoutExpired:
            self.fail("citygated did not stop within 10 s of SIGTERM during an apply")
        finally:
            ctl.wait(30)
        self.assertEqual(code, 0, self.daemon_log()[-3000:])

    def test_config_apply_reads_only_the_configured_directories(self):
        self.start_daemon()
        wait_for(lambda: "ready" in self.daemon_log() or self.daemon.poll() is not None, 20, what="citygated ready")
        outside = tempfile.mkdtemp(prefix="cg-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        Path(outside, "secret.textproto").write_text("hunter2 {\n")
        Path(outside, "key.hex").write_text("2b7e151628aed2a6abf7158809cf4f3c\n")
        os.chmod(os.path.join(outside, "key.hex"), 0o644)
        proposal = self.env.path("proposal.textproto")
        Path(proposal).write_text(gateway_config("gw-files", self.broker.uri, self.env, extra=(
            f'profile_dir: "{outside}"\n'
            'lora {\n'
            f'  device {{ id: "bay" dev_addr: "26011F42" codec: "bosch-tps110" nwk_s_key_file: "{outside}/key.hex"\n'
            '    app_s_key_file: "/nonexistent/app.hex" }\n'
            '}\n')))
        for cmd in ("apply", "diff"):
            out = self.ctl("config", cmd, proposal)
            self.assertEqual(out.returncode, 78, out.stdout + out.stderr)
            text = out.stdout + out.stderr
            where = f"is outside {self.env.dir} (the running configuration's directory) and {self.profiles} (its profile_dir)"
            self.assertIn(f"profile_dir: not allowed: {outside} {where}", text)
            self.assertIn(f"nwk_s_key_file: not allowed: {outside}/key.hex {where}", text)
            self.assertIn(f"app_s_key_file: not allowed: /nonexistent/app.hex {where}", text)
            # Nothing about those files: not their content, mode or existence.
            for leak in ("hunter2", "0644", "No such file", "mode"):
                self.assertNotIn(leak, text)
            self.assertRegex(text, rf"(?m)^{re.escape(proposal)}:\d+:\d+: profile_dir: not allowed")
        # The same file on disk, checked by root offline: every file is looked at.
        out = self.ctl("config", "validate", proposal)
        self.assertEqual(out.returncode, 78)
        self.assertIn("has mode 0644", out.stderr)
        self.assertIn("hunter2", out.stderr)

    def test_a_latin1_byte_is_one_diagnostic_for_validate_check_config_and_apply(self):
        self.start_daemon()
        wait_for(lambda: "ready" in self.daemon_log() or self.daemon.poll() is not None, 20, what="citygated ready")
        latin1 = self.env.path("latin1.textproto")
        Path(latin1).write_bytes(b"# Kabinett Z\xfcrich\n" + self.config().encode())
        want = f"{latin1}:1:13: byte 0xFC is not UTF-8"
        for argv in ([CTL, "config", "validate", latin1], [DAEMON, "--check-config", latin1],
                     [CTL, "--socket", self.socket, "config", "apply", latin1],
                     [CTL, "--socket", self.socket, "config", "diff", latin1]):
            out = self.run_limited(argv)
            self.assertEqual(out.returncode, 78, f"{argv}: {out.stdout}{out.stderr}")
            self.assertIn(want, out.stderr)
            self.assertNotIn("malformed request", out.stderr)
        self.assertIsNone(self.daemon.poll())


if __name__ == "__main__":
    unittest.main()
