"""Issue 15: what `citygatectl config apply` changes survives a SIGHUP and a restart.

The real citygated (Modbus TCP on pymodbus, RTU on a socat pty, LoRaWAN frames from npm
lora-packet) and the real citygatectl, as in test_cli.py:
- `config apply --save FILE` writes FILE's text to the daemon's --config file (atomically, the
  old one kept as <config>.bak, both mode 0600): a SIGHUP and a restart keep the change;
- `config apply --runtime-only FILE` changes the running configuration only: `status` and
  `config show` say the file differs, and a SIGHUP brings the file's version back;
- any other FILE without either flag is checked, then refused (exit 2) naming both;
- `config show` output applies back: its `<redacted>` keys keep the running secrets, and the
  file saved holds the real keys, never `<redacted>`;
- offline `config validate` and `config diff` report a serial port that does not open the same way.
"""
import os
import re
import signal
import stat
import subprocess
import unittest
from pathlib import Path

from harness import BIN, wait_for
from test_cli import LORA_DEVICES, CliWorld


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class ConfigSave(CliWorld):
    def new_config(self, name="new.textproto"):
        """The running configuration plus a second device on bus b."""
        return self.write_config(self.env.path(name), tcp_devices=[("air", 1), ("air2", 2)])

    def device_ids(self):
        return {d["id"] for d in self.status()["devices"]}

    def sighup(self, generation):
        self.gw.process.signal(signal.SIGHUP)
        wait_for(lambda: self.status()["config_generation"] == str(generation), 15,
                 what=f"configuration {generation} after SIGHUP")

    def restart(self):
        boot = self.status()["gateway"]["boot_id"]
        self.assertEqual(self.gw.stop(), 0, self.gw.log()[-2000:])
        self.gw.start()

        def answered():
            out = self.ctl("--json", "status")
            return out.returncode == 0 and boot not in out.stdout

        wait_for(answered, 20, what="the restarted daemon's status")

    def test_save_survives_sighup_and_restart(self):
        self.wait_readings("air", "air-rtu")
        old = Path(self.cfg_path).read_text()
        new = self.new_config()
        # Another file without --save or --runtime-only: checked, then refused; nothing changes.
        out = self.ctl("config", "apply", new, check=2)
        self.assertIn(f"{new} is not citygated's --config file {self.cfg_path}", out.stderr)
        self.assertIn("nothing was changed", out.stderr)
        self.assertIn("--save", out.stderr)
        self.assertIn("--runtime-only", out.stderr)
        self.assertEqual(self.status()["config_generation"], "1")
        self.assertFalse(os.path.exists(self.cfg_path + ".bak"))
        # A relative path is shown and sent absolute.
        out = self.ctl("config", "apply", "--save", os.path.relpath(new), check=0).stdout
        self.assertIn(f"applied configuration 2 from {new}", out)
        self.assertIn(f"saved to {self.cfg_path}", out)
        self.assertIn(f"previous file kept as {self.cfg_path}.bak", out)
        self.assertEqual(Path(self.cfg_path).read_text(), Path(new).read_text())
        self.assertEqual(Path(self.cfg_path + ".bak").read_text(), old)
        self.assertEqual(mode(self.cfg_path), 0o600)
        self.assertEqual(mode(self.cfg_path + ".bak"), 0o600)
        self.assertEqual([n for n in os.listdir(self.env.dir) if n.startswith(".citygated")], [])  # no temp left
        s = self.status()
        self.assertEqual(s["config_file"]["path"], self.cfg_path)
        self.assertEqual(s["config_file"]["state"], "SAME")
        self.wait_readings("air2")

        self.sighup(3)
        self.assertIn("air2", self.device_ids())
        self.restart()
        self.assertEqual(self.status()["config_generation"], "1")
        self.assertIn("air2", self.device_ids())
        n = len(self.sub.of("air2"))
        self.sub.wait_for(lambda: len(self.sub.of("air2")) > n, 20, "air2 polled after the restart")
        self.assertEqual(self.status()["config_file"]["state"], "SAME")

    def test_runtime_only_undone_by_sighup(self):
        self.wait_readings("air")
        before = Path(self.cfg_path).read_text()
        new = self.new_config()
        out = self.ctl("config", "apply", "--runtime-only", new, check=0).stdout
        self.assertIn("not saved (--runtime-only)", out)
        self.assertEqual(Path(self.cfg_path).read_text(), before)
        self.assertFalse(os.path.exists(self.cfg_path + ".bak"))
        self.assertIn("air2", self.device_ids())
        s = self.status()
        self.assertEqual(s["config_file"]["state"], "DIFFERS")
        self.assertEqual(s["config_path"], new)
        human = self.ctl("status", check=0).stdout
        self.assertRegex(human, rf"(?m)^File +{re.escape(self.cfg_path)} · differs from running$")
        self.assertIn("a SIGHUP or restart loads the file", human)
        show = self.ctl("config", "show", check=0)
        self.assertIn(f"{self.cfg_path}: differs from running", show.stderr)
        self.assertNotIn("differs", show.stdout)  # stdout stays a configuration text

        self.sighup(3)
        self.assertNotIn("air2", self.device_ids())
        self.assertEqual(self.status()["config_file"]["state"], "SAME")
        self.assertNotIn("File ", self.ctl("status", check=0).stdout)
        # Both flags at once: a usage error.
        self.ctl("config", "apply", "--save", "--runtime-only", new, check=2)

    def test_show_applies_back_keeping_secrets(self):
        self.wait_readings("air")
        shown = self.ctl("config", "show", check=0).stdout
        self.assertIn('nwk_s_key: "<redacted>"', shown)
        edited = self.env.path("shown.textproto")
        Path(edited).write_text(shown.replace("poll_interval_ms: 300", "poll_interval_ms: 350", 1))
        diff = self.ctl("config", "diff", edited, check=0).stdout
        changed = [l for l in diff.splitlines() if re.match(r"^[-+](?![-+])", l)]
        self.assertEqual(len(changed), 2, diff)  # the interval's line, out and in; no key line
        self.assertTrue(all("_s_key" not in l for l in changed), diff)
        self.assertRegex(diff, r"(?m)^  keep +bus r, LoRa$")  # same keys: LoRa untouched

        out = self.ctl("config", "apply", "--save", edited, check=0).stdout
        self.assertIn("4 <redacted> secret(s): the running values kept", out)
        saved = Path(self.cfg_path).read_text()
        self.assertNotIn("<redacted>", saved)
        for d in self.LORA_IDS:
            self.assertIn(LORA_DEVICES[d]["nwk_s_key"], saved)
            self.assertIn(LORA_DEVICES[d]["app_s_key"], saved)
        self.assertIn("poll_interval_ms: 350", saved)
        self.assertEqual(mode(self.cfg_path), 0o600)
        self.assertEqual(mode(self.cfg_path + ".bak"), 0o600)

        # `config show > CONFIG` and `config apply CONFIG`: the file itself, no flag needed; the
        # <redacted> on disk is replaced by the real keys.
        Path(self.cfg_path).write_text(self.ctl("config", "show", check=0).stdout)
        self.assertEqual(self.status()["config_file"]["state"], "DIFFERS")
        self.ctl("config", "apply", self.cfg_path, check=0)
        self.assertNotIn("<redacted>", Path(self.cfg_path).read_text())
        self.assertEqual(self.status()["config_file"]["state"], "SAME")

        # A <redacted> where nothing runs: FILE:LINE:COL, nothing changed, no key in the message.
        stray = self.env.path("stray.textproto")
        Path(stray).write_text(shown.replace('id: "parking-bay-0042"', 'id: "parking-bay-0043"'))
        generation = self.status()["config_generation"]
        out = self.ctl("config", "apply", "--save", stray, check=78)
        self.assertRegex(out.stderr, rf'(?m)^{re.escape(stray)}:\d+:\d+: nwk_s_key is "<redacted>"')
        self.assertIn('device["parking-bay-0043"]', out.stderr)
        for d in self.LORA_IDS:
            self.assertNotIn(LORA_DEVICES[d]["nwk_s_key"], out.stderr + out.stdout)
        self.assertEqual(self.status()["config_generation"], generation)

        # The saved keys work after a restart: the LoRa devices' frames are accepted.
        self.restart()
        self.lora(["parking-bay-0042"])
        wait_for(lambda: self.device_status("parking-bay-0042")["health"].get("frames_accepted") == "1", 15,
                 what="a frame accepted with the saved keys")

    def test_save_to_a_read_only_dir(self):
        """The daemon's config directory read-only (a bind mount in its own mount namespace, as
        ProtectSystem=strict without ReadWritePaths would give): --save changes nothing."""
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {self.env.dir} {self.env.dir}"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("no mount namespace here (unshare -m)")
        self.wait_readings("air")
        self.gw.stop()
        etc = Path(self.env.path("etc"))
        etc.mkdir()
        wrapper = self.env.path("citygated-ro-etc")
        Path(wrapper).write_text(
            "#!/bin/sh\n"
            f'exec unshare -m sh -c \'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"\' '
            f'{etc} {BIN / "citygated"} "$@"\n')
        os.chmod(wrapper, 0o755)
        self.gw = self.env.gateway(Path(self.cfg_path).read_text(), name="etc/citygated", binary=wrapper)
        cfg = self.gw.config_path
        wait_for(lambda: self.ctl("status").returncode == 0, 20, what="citygated with a read-only /etc")
        before = Path(cfg).read_text()
        new = self.new_config()
        out = self.ctl("config", "apply", "--save", new, check=1)
        self.assertIn(f"cannot save to {cfg}: cannot create a file in {etc}: Read-only file system; "
                      "nothing was changed (--runtime-only applies without saving)", out.stderr)
        self.assertEqual(self.status()["config_generation"], "1")
        self.assertNotIn("air2", self.device_ids())
        self.assertEqual(Path(cfg).read_text(), before)
        self.assertEqual(sorted(os.listdir(etc)), ["citygated.log", "citygated.textproto"])
        # --runtime-only still applies; status says the file differs.
        self.ctl("config", "apply", "--runtime-only", new, check=0)
        self.assertIn("air2", self.device_ids())
        self.assertEqual(self.status()["config_file"]["state"], "DIFFERS")

    def test_validate_and_diff_agree_on_ports(self):
        serial = self.write_config(self.env.path("serial.textproto"), extra_buses=(
            'modbus_bus { name: "gone" rtu { device: "/dev/ttyCITYGATE-NONE" baud: 9600 }\n'
            '  device { id: "x" unit_id: 9 profile: "vaisala-aqt530" poll_interval_ms: 1000 } }\n'))
        line = next(i for i, l in enumerate(Path(serial).read_text().splitlines(), 1) if "ttyCITYGATE-NONE" in l)
        want = rf"(?m)^{re.escape(serial)}:{line}:\d+: bus 'gone': cannot open /dev/ttyCITYGATE-NONE: "
        offline = self.ctl("config", "validate", serial, check=1, socket_path="/nonexistent/x.sock")
        self.assertRegex(offline.stderr, want)
        self.assertIn("--no-port-check", offline.stderr)
        diff = self.ctl("config", "diff", serial, check=1)
        self.assertRegex(diff.stderr, want)
        first = lambda text: re.search(want + ".*", text).group(0)  # noqa: E731
        self.assertEqual(first(offline.stderr), first(diff.stderr))
        self.ctl("config", "validate", "--no-port-check", serial, check=0)
        js = self.ctl_json("config", "validate", self.cfg_path)
        self.assertEqual(js["ports"], [])


if __name__ == "__main__":
    unittest.main()
