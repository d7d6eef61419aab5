#!/usr/bin/python3
"""toolchains/check-schema.py catches what breaks a consumer and lets additions through.

Each case copies proto/ to a scratch directory, edits one .proto file (every edit must match the
text exactly once, so a case cannot silently test nothing), runs the check against the committed
baseline (or one the case writes first) and expects exit 1 with a finding that names the change,
or exit 0. ctest: "schema: check-schema" (label unit); also by hand with /usr/bin/python3.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "toolchains/check-schema.py"
BASELINE = ROOT / "proto/released/citygate-v1.txtpb"
READING = "citygate/v1/reading.proto"
STATUS = "citygate/v1/status.proto"
CONFIG = "citygate/v1/config.proto"
BATCH_EPOCH = "  string epoch = 4;"

# (name, edits before a baseline is written or None, edits checked, expected finding or None)
CASES = [
    ("the committed schema", None, [], None),
    (
        "a field renumbered",
        None,
        [(STATUS, "uint64 disk_free_bytes = 24;", "uint64 disk_free_bytes = 99;")],
        "citygate/v1/status.proto: citygate.v1.SpoolHealth.disk_free_bytes: field renumbered 24 -> 99",
    ),
    (
        "a field retyped (string -> bytes)",
        None,
        [(READING, BATCH_EPOCH, "  bytes epoch = 4;")],
        "citygate.v1.ReadingBatch.epoch: type changed: string -> bytes",
    ),
    (
        "a varint widened (bool -> uint32: wire-compatible, other meaning and JSON)",
        None,
        [(READING, "  bool resent = 5;", "  uint32 resent = 5;")],
        "citygate.v1.ReadingBatch.resent: type changed: bool -> uint32",
    ),
    (
        "a scalar made repeated (packed: an old reader drops it)",
        None,
        [(READING, "  bool resent = 5;", "  repeated bool resent = 5;")],
        "citygate.v1.ReadingBatch.resent: label changed: singular -> repeated",
    ),
    (
        "a field removed without reserved",
        None,
        [(READING, BATCH_EPOCH, "")],
        "citygate.v1.ReadingBatch.epoch: field 4 removed without reserved 4 and reserved \"epoch\"",
    ),
    (
        "a field removed, its number reserved but not its name",
        None,
        [(READING, BATCH_EPOCH, "  reserved 4;")],
        "citygate.v1.ReadingBatch.epoch: field 4 removed without reserved \"epoch\"",
    ),
    (
        "a number reused with another name",
        None,
        [(READING, BATCH_EPOCH, "  string era = 4;")],
        "citygate.v1.ReadingBatch.era: number 4 was field 'epoch' in the release: reused with another name",
    ),
    (
        "a reserved number of the release reused",
        [(READING, BATCH_EPOCH, '  reserved 4;\n  reserved "epoch";')],
        [(READING, "  reserved 4;\n", "  string era = 4;\n")],
        "citygate.v1.ReadingBatch.era: reuses number 4, reserved in the release",
    ),
    (
        "an enum value renumbered",
        None,
        [(STATUS, "  OFFLINE = 2;", "  OFFLINE = 3;")],
        "citygate.v1.GatewayState.OFFLINE: value renumbered 2 -> 3",
    ),
    (
        "an enum value removed without reserved",
        None,
        [(STATUS, "  OFFLINE = 2;\n", "")],
        "citygate.v1.GatewayState.OFFLINE: value 2 removed without reserved 2 and reserved \"OFFLINE\"",
    ),
    (
        "a message removed",
        None,
        [(READING, "message ReadingBatch {", "message ReadingBatchV2 {")],
        "citygate/v1/reading.proto: citygate.v1.ReadingBatch: message removed",
    ),
    (
        "the package renamed",
        None,
        [(f, "package citygate.v1;", "package citygate.v2;") for f in (
            "citygate/v1/node.proto", READING, STATUS, CONFIG, "citygate/v1/control.proto", "citygate/v1/commands.proto")],
        "citygate/v1/reading.proto: package renamed citygate.v1 -> citygate.v2",
    ),
    (
        "a field removed with its number and name reserved",
        None,
        [(READING, BATCH_EPOCH, '  reserved 4;\n  reserved "epoch";')],
        None,
    ),
    (
        "additions: a field, a message, an enum value",
        None,
        [
            (READING, "  bool resent = 5;", "  bool resent = 5;\n  string site = 6;\n}\n\nmessage Added {\n  int32 n = 1;"),
            (STATUS, "  OFFLINE = 2;", "  OFFLINE = 2;\n  MAINTENANCE = 3;"),
        ],
        None,
    ),
    (
        "a singular string made repeated (wire-compatible)",
        None,
        [(READING, BATCH_EPOCH, "  repeated string epoch = 4;")],
        None,
    ),
]


def edit(proto_dir, edits):
    for file, old, new in edits:
        path = proto_dir / file
        text = path.read_text()
        if text.count(old) != 1:
            sys.exit(f"check_schema_test: {file}: {old!r} found {text.count(old)} times, not once")
        path.write_text(text.replace(old, new))


def run(*args):
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True, text=True)


def main():
    failed = 0
    for name, before, edits, expected in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            proto_dir = Path(tmp) / "proto"
            shutil.copytree(ROOT / "proto", proto_dir, ignore=shutil.ignore_patterns("check", "released"))
            baseline = Path(tmp) / "baseline.txtpb"
            if before is None:
                shutil.copy(BASELINE, baseline)
            else:
                edit(proto_dir, before)
                if run("--proto-dir", str(proto_dir), "--baseline", str(baseline), "--update-baseline").returncode:
                    sys.exit(f"check_schema_test: {name}: --update-baseline failed")
            edit(proto_dir, edits)
            result = run("--proto-dir", str(proto_dir), "--baseline", str(baseline))
            findings = [line.removeprefix("check-schema: ") for line in result.stdout.splitlines()]
            if expected is None:
                ok = result.returncode == 0
            else:
                ok = result.returncode == 1 and any(line.endswith(expected) for line in findings)
            print(f"{'ok  ' if ok else 'FAIL'} {name}")
            if not ok:
                failed += 1
                print(f"  expected {'success' if expected is None else expected!r}; exit {result.returncode}")
                print("  " + (result.stdout + result.stderr).replace("\n", "\n  "))
    print(f"check_schema_test: {len(CASES) - failed} of {len(CASES)} cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
