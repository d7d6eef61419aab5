#!/usr/bin/python3
"""The wire schema against its last release: fails on a change that breaks a platform's consumer.

    toolchains/check-schema.py                    # proto/ against proto/released/citygate-v1.txtpb
    toolchains/check-schema.py --update-baseline  # at a release: the schema of now becomes the baseline
    toolchains/check-schema.py --proto-dir D --baseline F   # another copy (the test's mutations)

The baseline is proto/released/citygate-v1.txtpb: the FileDescriptorSet that
`protoc -I proto --include_imports --descriptor_set_out=...` makes of proto/citygate/v1/*.proto,
in protobuf text format (readable, and a release's diff shows what it released), without the
well-known types (google/protobuf/*). Release 1 is the schema of issue 18. Messages and enums are
compared by their full name, so one moved to another file of the package is no finding.

One line per finding, `file: message.field: what changed`, and exit 1, on:
  - a field or enum value renumbered (same name, another number);
  - a number used now with another name than released (a rename, or a reuse after a removal);
  - a field or enum value removed without `reserved` for both its number and its name;
  - a reserved number or name of the release used again, or no longer reserved;
  - a field's type changed, or its label except the two below, its JSON name or its oneof;
  - a message or enum removed, a package renamed.
Allowed, besides everything added: a proto3 singular string, bytes or message field made
`repeated`. The bytes on the wire are the same (length-delimited, one record per element), a
new reader of an old writer sees a list of one, and an old reader of a new writer keeps the last
element (a message: all of them merged), which is what the singular field always meant.
Not allowed although the wire would carry them: int32/int64/uint32/uint64/bool among themselves
(the varints decode, but an old reader truncates or flips the sign of what no longer fits, and
proto3 JSON writes 64-bit integers as strings, 32-bit ones as numbers), enum <-> integer and
string <-> bytes (same bytes, other JSON), fixed32/sfixed32/float and their 64-bit kin; a
numeric field made repeated (proto3 packs it: an old reader drops the packed record).
Needs protoc and Debian's python3-protobuf (/usr/bin/python3).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, text_format

ROOT = Path(__file__).resolve().parent.parent
FDP = descriptor_pb2.FieldDescriptorProto
HEADER = (
    "# The citygate.v1 wire schema as released: the baseline of toolchains/check-schema.py.\n"
    "# Written by `toolchains/check-schema.py --update-baseline` at a release; never by hand.\n"
)
# Singular -> repeated is wire-compatible for length-delimited fields only (see above).
LENGTH_DELIMITED = {FDP.TYPE_STRING, FDP.TYPE_BYTES, FDP.TYPE_MESSAGE}


def compile_schema(proto_dir):
    """The FileDescriptorSet protoc makes of proto_dir/citygate/v1/*.proto, well-known types left out."""
    files = sorted(str(p.relative_to(proto_dir)) for p in (proto_dir / "citygate/v1").glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "schema.binpb"
        cmd = ["protoc", "-I", str(proto_dir), "--include_imports", f"--descriptor_set_out={out}", *files]
        if subprocess.run(cmd).returncode != 0:
            sys.exit("check-schema: protoc failed (above)")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    own = [f for f in fds.file if not f.name.startswith("google/protobuf/")]
    del fds.file[:]
    fds.file.extend(own)
    return fds


def index(fds):
    """{full name: (file, descriptor)} for every message and every enum, nested ones included."""
    messages, enums = {}, {}

    def walk(file, prefix, msgs, ens):
        for e in ens:
            enums[prefix + e.name] = (file, e)
        for m in msgs:
            messages[prefix + m.name] = (file, m)
            walk(file, prefix + m.name + ".", m.nested_type, m.enum_type)

    for f in fds.file:
        walk(f.name, f.package + ".", f.message_type, f.enum_type)
    return messages, enums


def reserved(desc):
    numbers = set()
    for r in desc.reserved_range:
        # A message's reserved range ends after its last number, an enum's at it.
        end = r.end if isinstance(desc, descriptor_pb2.DescriptorProto) else r.end + 1
        numbers.update(range(r.start, min(end, r.start + 100000)))
    return numbers, set(desc.reserved_name)


def type_name(f):
    if f.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
        return f.type_name.lstrip(".")
    return FDP.Type.Name(f.type)[5:].lower()


def label_name(f):
    return "repeated" if f.label == FDP.LABEL_REPEATED else "singular"


def oneof(m, f):
    if not f.HasField("oneof_index") or f.proto3_optional:
        return None
    return m.oneof_decl[f.oneof_index].name


def compare_members(what, old, new, old_desc, new_desc, say):
    """Fields or enum values: {name: number} of the release and of now."""
    old_by_number = {n: name for name, n in old.items()}
    new_by_number = {n: name for name, n in new.items()}
    old_res_n, old_res_names = reserved(old_desc)
    new_res_n, new_res_names = reserved(new_desc)
    for name, number in old.items():
        if name in new and new[name] != number:
            say(name, f"{what} renumbered {number} -> {new[name]}")
        if number in new_by_number and new_by_number[number] != name:
            say(new_by_number[number], f"number {number} was {what} '{name}' in the release: reused with another name")
        if name not in new and number not in new_by_number:
            missing = [f"reserved {number}"] if number not in new_res_n else []
            missing += [f'reserved "{name}"'] if name not in new_res_names else []
            if missing:
                say(name, f"{what} {number} removed without {' and '.join(missing)}")
    for number in sorted(old_res_n):
        if number in new_by_number and number not in old_by_number:
            say(new_by_number[number], f"reuses number {number}, reserved in the release")
        elif number not in new_res_n and number not in new_by_number:
            say(str(number), "reserved in the release, no longer reserved")
    for name in sorted(old_res_names):
        if name in new:
            say(name, f"reuses the name '{name}', reserved in the release")
        elif name not in new_res_names:
            say(name, "name reserved in the release, no longer reserved")


def compare_field(old_m, new_m, old, new, say):
    if old.type != new.type or old.type_name != new.type_name:
        say(old.name, f"type changed: {type_name(old)} -> {type_name(new)}")
    if old.label != new.label:
        widened = old.label == FDP.LABEL_OPTIONAL and new.label == FDP.LABEL_REPEATED
        if not (widened and old.type in LENGTH_DELIMITED and old.type == new.type):
            say(old.name, f"label changed: {label_name(old)} -> {label_name(new)}")
    if old.json_name != new.json_name:
        say(old.name, f"JSON name changed: {old.json_name} -> {new.json_name}")
    if oneof(old_m, old) != oneof(new_m, new):
        say(old.name, f"oneof changed: {oneof(old_m, old) or '(none)'} -> {oneof(new_m, new) or '(none)'}")


def check(baseline, current):
    findings = []
    old_messages, old_enums = index(baseline)
    new_messages, new_enums = index(current)
    new_files = {f.name: f.package for f in current.file}
    new_packages = set(new_files.values())
    gone_packages = {f.package for f in baseline.file} - new_packages
    for f in baseline.file:
        if f.name in new_files and new_files[f.name] != f.package:
            findings.append(f"{f.name}: package renamed {f.package} -> {new_files[f.name]}")
        elif f.package in gone_packages and f.name not in new_files:
            findings.append(f"{f.name}: package {f.package} removed or renamed")

    def in_gone_package(full):
        return any(full.startswith(p + ".") for p in gone_packages)

    for full, (file, old) in old_enums.items():
        if full not in new_enums:
            if not in_gone_package(full):
                findings.append(f"{file}: {full}: enum removed")
            continue
        new_file, new = new_enums[full]

        def say_value(member, text, file=new_file, full=full):
            findings.append(f"{file}: {full}.{member}: {text}")

        compare_members(
            "value",
            {v.name: v.number for v in old.value},
            {v.name: v.number for v in new.value},
            old,
            new,
            say_value,
        )
    for full, (file, old) in old_messages.items():
        if full not in new_messages:
            if not in_gone_package(full):
                findings.append(f"{file}: {full}: message removed")
            continue
        new_file, new = new_messages[full]

        def say_field(member, text, file=new_file, full=full):
            findings.append(f"{file}: {full}.{member}: {text}")

        compare_members(
            "field",
            {f.name: f.number for f in old.field},
            {f.name: f.number for f in new.field},
            old,
            new,
            say_field,
        )
        new_fields = {f.name: f for f in new.field}
        for field in old.field:
            if field.name in new_fields and new_fields[field.name].number == field.number:
                compare_field(old, new, field, new_fields[field.name], say_field)
    return findings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto-dir", type=Path, default=ROOT / "proto")
    parser.add_argument("--baseline", type=Path, default=ROOT / "proto/released/citygate-v1.txtpb")
    parser.add_argument("--update-baseline", action="store_true", help="at a release: write the schema of now as the baseline")
    args = parser.parse_args()
    current = compile_schema(args.proto_dir.resolve())
    if args.update_baseline:
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        args.baseline.write_text(HEADER + text_format.MessageToString(current))
        print(f"check-schema: {args.baseline} written ({len(current.file)} files)")
        return 0
    baseline = text_format.Parse(args.baseline.read_text(), descriptor_pb2.FileDescriptorSet())
    findings = check(baseline, current)
    for line in findings:
        print(f"check-schema: {line}")
    if findings:
        print(f"check-schema: {len(findings)} breaking change(s) against {args.baseline.name}; "
              "add fields, never renumber or reuse (proto/CHANGELOG.md)", file=sys.stderr)
        return 1
    print(f"check-schema: no breaking change against {args.baseline.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
