"""Every screen of citygatectl fits 80 columns: every command's human output (from the command
list of `citygatectl --help`, so that a new command cannot be forgotten) and every --help, with
COLUMNS=80 and the real daemon's data (a healthy Modbus device, a dead one with its error, LoRa
devices with and without frames). Display width: UTF-8 code points, colour codes aside.
`config show` is the exception: it prints a file to apply back, as it is.

CITYGATE_SHOW_SCREENS=1 prints every screen as rendered."""
import os
import pty
import re
import select
import subprocess
import sys
import time
import unittest

from test_cli import CTL, CliWorld

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
WIDTH = 80


def too_wide(text, width=WIDTH):
    """The lines (each piece a carriage return redraws, too) wider than `width`."""
    return [piece for line in text.split("\n") for piece in line.split("\r") if len(ANSI.sub("", piece)) > width]


def command_list(help_text):
    """The commands of the general help: 'modbus read', 'config validate', 'status' ..."""
    names = []
    in_list = False
    for line in help_text.splitlines():
        if line == "Commands:":
            in_list = True
            continue
        if in_list and not line.strip():
            break
        if in_list and line.startswith("  ") and not line.startswith("   "):
            words = []
            for w in re.split(r" {2,}", line.strip())[0].split():
                if not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                words.append(w)
            if words and words[0] != "help":
                names.append(" ".join(words[:2]) if len(words) > 1 and words[0] in GROUPS else words[0])
    return names


GROUPS = {"config", "modbus", "lora", "profiles", "mqtt", "node"}


class Width(CliWorld):
    def examples(self):
        """Arguments for each command, run against the world of CliWorld."""
        changed = self.env.path("changed.textproto")
        self.write_config(changed, tcp_devices=[("air", 1), ("air-dead", 9)])
        return {
            "status": [[], ["--check"]],
            "devices": [[]],
            "device": [["air"], ["air-dead"], ["air-node-01"], ["parking-bay-0042"], ["nope"], ["ari"],
                       ["air-dead", "--retry"]],
            "tail": [["-c", "3"], ["air", "-c", "2"]],
            "config validate": [[self.cfg_path], [changed], [self.env.path("missing.textproto")]],
            "config show": [[]],
            "config diff": [[changed]],
            "config apply": [[self.cfg_path], [changed], [changed, "--runtime-only"]],
            "modbus read": [["b", 1, "holding", 0, 12], ["b", 9, "holding", 0, 2, "--timeout", 100],
                            ["b", 1, "holding", 40001, 2]],
            "modbus probe": [["b", 1, 20]],
            "modbus scan": [["b", 1, 6, "--timeout", 100]],
            "modbus write": [["b", 1, "holding", 0, 5, "--yes"]],
            "lora devices": [[]],
            "lora heard": [[]],
            "lora devstatus": [["air-node-01"], ["nope"]],
            "spool": [[]],
            "log-level": [[]],
            "profiles": [[]],
            "profiles show": [["vaisala-aqt530"], ["citygate-traffic-counter-4lane"], ["parking-guidance-8bay"]],
            "doctor": [[]],
            "mqtt reconnect": [[]],
            # The node commands' screens are in test_firmware_node_cli.py; here their errors.
            "node show": [["--port", "/dev/null"], ["--port", self.env.path("ttyUSB9")]],
            "node provision": [[self.env.path("missing.textproto"), "--port", "/dev/null"]],
        }

    def run80(self, *args, timeout=60):
        """citygatectl on a pseudo-terminal that says 80 columns: stdout and stderr are a terminal
        (colour on, errors wrapped, a scan's progress line), as at the cabinet. The output of both."""
        master, slave = pty.openpty()
        argv = [str(CTL), "--socket", self.socket, *map(str, args)]
        env = {**os.environ, "COLUMNS": str(WIDTH), "TERM": "xterm"}
        env.pop("NO_COLOR", None)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    proc.kill()
                    self.fail(f"citygatectl {args} did not end within {timeout} s")
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            proc.wait(timeout=10)
        finally:
            os.close(master)
        return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")

    def test_every_screen_and_every_help_fits_80_columns(self):
        # A device that is DOWN (its error shown), LoRa frames.
        self.write_config(tcp_devices=[("air", 1), ("air-dead", 9)])
        self.ctl("config", "apply", self.cfg_path, check=0)
        self.lora(["parking-bay-0042"])
        self.wait_readings("air", "air-rtu", "parking-bay-0042")
        self.wait_down("air-dead")

        general = self.run80("--help")
        self.assertEqual(too_wide(general), [], "citygatectl --help")
        commands = command_list(ANSI.sub("", general))
        self.assertIn("modbus read", commands)
        self.assertIn("status", commands)
        examples = self.examples()
        checked = 0
        for cmd in commands:
            self.assertIn(cmd, examples, f"add an example of `{cmd}` to test_cli_width.py")
            words = cmd.split()
            helped = self.run80(*words, "--help")
            self.assertEqual(too_wide(helped), [], f"{cmd} --help")
            self.assertEqual(helped, self.run80("help", *words))
            for args in examples[cmd]:
                out = self.run80(*words, *args, timeout=90)
                if os.environ.get("CITYGATE_SHOW_SCREENS"):  # to look at them: the screens as rendered
                    print(f"\n$ citygatectl {cmd} {' '.join(map(str, args))}\n{out}", file=sys.stderr)
                if cmd == "config show":  # a file to apply back, never wrapped: its lines are the technician's
                    self.assertIn('nwk_s_key: "<redacted>"', out)
                    continue
                self.assertEqual(too_wide(out), [], f"`citygatectl {cmd} {args}`")
                checked += 1
        self.assertGreaterEqual(checked, 20)
        for group in sorted(GROUPS):
            if any(c.startswith(group + " ") for c in commands):
                self.assertEqual(too_wide(self.run80(group, "--help")), [], f"{group} --help")
                self.assertEqual(too_wide(self.run80(group)), [], f"{group} alone")

    def test_the_width_follows_columns_and_json_is_never_wrapped(self):
        self.wait_readings("air")
        narrow = self.ctl("devices", check=0, env={"COLUMNS": "50"}).stdout
        self.assertEqual(too_wide(narrow, 50), [])
        wide = self.ctl("devices", check=0, env={"COLUMNS": "200"}).stdout
        self.assertGreater(max(len(ANSI.sub("", l)) for l in wide.splitlines()), 80)  # nothing cut when there is room
        js = self.ctl("--json", "devices", check=0, env={"COLUMNS": "40"}).stdout
        self.assertGreater(max(len(l) for l in js.splitlines()), 40)  # JSON is data, not a screen

    def wait_down(self, device_id, timeout=30):
        from harness import wait_for
        wait_for(lambda: self.device_status(device_id)["health"]["state"] == "DOWN", timeout,
                 what=f"{device_id} DOWN")


if __name__ == "__main__":
    unittest.main()
