"""Issue 7: the aarch64 citygated, run under qemu-user, against the host's real peers.

A real mosquitto, a real pymodbus server (Modbus TCP, and RTU over a socat pseudo-terminal so the
aarch64 termios path runs too), the cross-built daemon under qemu-aarch64-static, and the
platform-side subscriber decoding the protobuf readings. Same harness as test_end_to_end.py; only
the daemon's binary and how it is started differ.

The binary: $CITYGATE_CROSS_BIN, else build/aarch64/bin/citygated (toolchains/cross-build.sh
aarch64). Skipped, with the reason, when it or qemu-aarch64-static is absent.
"""
import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CROSS_BIN = Path(os.environ.get("CITYGATE_CROSS_BIN", REPO / "build" / "aarch64" / "bin" / "citygated"))
QEMU = shutil.which("qemu-aarch64-static") or "/usr/bin/qemu-aarch64-static"

# The harness imports the Python modules generated from proto/ out of $CITYGATE_BUILD_DIR/python.
# Any build dir has them (the host protoc generates them for the cross builds too): prefer the one
# the caller names, then the native build, then the aarch64 build itself.
if "CITYGATE_BUILD_DIR" not in os.environ:
    for candidate in (os.environ.get("CITYGATE_CROSS_BUILD_DIR"), REPO / "build" / "default",
                      REPO / "build" / "aarch64"):
        if candidate and (Path(candidate) / "python" / "citygate" / "v1" / "reading_pb2.py").exists():
            os.environ["CITYGATE_BUILD_DIR"] = str(candidate)
            break

SKIP_REASON = None
if not CROSS_BIN.exists():
    SKIP_REASON = f"no aarch64 build at {CROSS_BIN} (run toolchains/cross-build.sh aarch64)"
elif not os.access(QEMU, os.X_OK):
    SKIP_REASON = f"{QEMU} is missing (toolchains/install-cross-deps.sh aarch64)"
else:
    try:
        import harness  # noqa: F401
    except ImportError as e:  # no generated Python modules, or a test peer library missing
        SKIP_REASON = f"integration harness unavailable: {e}"

if SKIP_REASON is None:
    from harness import Gateway, IntegrationTest, Process, gateway_config, status_pb2
else:
    IntegrationTest = unittest.TestCase  # only so that the class below can be defined
    Gateway = object


def elf_machine(path):
    """e_machine of an ELF file (183 = EM_AARCH64)."""
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


class QemuGateway(Gateway):
    """The harness's Gateway, started as `qemu-aarch64-static citygated ...`. No -L: the loader
    and the libraries are the multiarch :arm64 ones at their usual paths (with -L pointing at the
    cross toolchain's tree, threaded programs hang)."""

    def start(self):
        self.process = Process(self.env, self.name,
                               [QEMU, self.binary, "--config", self.config_path, "--log-level", self.log_level]).start()
        return self


# Vaisala AQT530 registers (ppb, 0.1 units) and what the platform must see after normalisation.
AIR = {"hr": {"0": 20, "1": 3, "2": 40, "5": 30, "6": 7, "8": 123, "9": 456, "10": 215, "11": 655, "12": 9650}}
RTU_AIR = {"hr": {"0": 11, "1": 1, "2": 5, "5": 15, "6": 2, "8": 80, "9": 90, "11": 420, "12": 10120},
           "values": [{"table": "hr", "address": 10, "type": "INT16", "value": -35}]}


@unittest.skipIf(SKIP_REASON is not None, SKIP_REASON or "")
class CrossSmoke(IntegrationTest):
    def test_binary_is_aarch64(self):
        self.assertEqual(elf_machine(CROSS_BIN), 183, f"{CROSS_BIN} is not an aarch64 ELF file")

    def test_packaged_default_config_is_accepted_under_qemu(self):
        default = REPO / "gateway" / "packaging" / "citygate.textproto"
        r = subprocess.run([QEMU, str(CROSS_BIN), "--check-config", str(default)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stdout)

    def test_aarch64_daemon_publishes_decoded_readings(self):
        env = self.env
        broker = env.broker()
        tcp_sim = env.modbus({"1": AIR})
        rtu_sim = env.modbus({"2": RTU_AIR}, transport="rtu", baudrate=19200)
        buses = (
            f'modbus_bus {{ name: "cab-tcp" tcp {{ host: "127.0.0.1" port: {tcp_sim.port} }}\n'
            '  device { id: "air-tcp" unit_id: 1 profile: "vaisala-aqt530" poll_interval_ms: 500 } }\n'
            f'modbus_bus {{ name: "cab-rtu" rtu {{ device: "{rtu_sim.device}" baud: 19200 }}\n'
            '  response_timeout_ms: 2000\n'
            '  device { id: "air-rtu" unit_id: 2 profile: "vaisala-aqt530" poll_interval_ms: 500 } }\n')
        cfg = gateway_config("gw-cross", broker.uri, env, buses)
        sub = env.subscriber(broker, "gw-cross")
        gw = QemuGateway(env, cfg, name="citygated-aarch64", binary=CROSS_BIN)
        env._track(gw)
        gw.start()

        # Under emulation start-up is slower than native: generous deadlines, polled.
        sub.wait_for(lambda: [s for s in sub.status if s.state == status_pb2.ONLINE], 90, "the ONLINE birth")
        sub.wait_for(lambda: len(sub.of("air-tcp")) >= 2 and len(sub.of("air-rtu")) >= 2, 90,
                     "two readings from each bus")

        a = sub.of("air-tcp")[0].air_quality_observed
        self.assertAlmostEqual(a.no2.value, 20 * 1.912, places=9)
        self.assertEqual(a.no2.unit_code, "GQ")
        self.assertAlmostEqual(a.co.value, 40 * 0.001164, places=12)
        self.assertEqual(a.co.unit_code, "GP")
        self.assertAlmostEqual(a.pm25.value, 12.3, places=9)
        self.assertAlmostEqual(a.temperature.value, 21.5, places=9)
        self.assertAlmostEqual(a.relative_humidity.value, 0.655, places=9)
        self.assertEqual(a.relative_humidity.unit_code, "C62")
        self.assertAlmostEqual(a.pressure.value, 965.0, places=9)

        b = sub.of("air-rtu")[0].air_quality_observed
        self.assertAlmostEqual(b.no2.value, 11 * 1.912, places=9)
        self.assertAlmostEqual(b.temperature.value, -3.5, places=9)  # a negative INT16 on ARM
        self.assertAlmostEqual(b.pressure.value, 1012.0, places=9)

        seqs = sub.seqs()
        self.assertEqual(seqs, sorted(seqs), "seq must increase")
        self.assertEqual(len(set(seqs)), len(seqs), "no duplicates without a crash")
        self.assertGreater(rtu_sim.requests(2), 0)

        # SIGTERM under qemu: a clean stop (exit 0), the OFFLINE will is not needed for that.
        self.assertEqual(gw.stop(timeout=60), 0, gw.log()[-4000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
