#!/usr/bin/python3
"""Writes the spool golden files: one directory per recovery case, each a spool directory as a
crash, a power cut or a damaged medium leaves it, plus expected.txt (what recovery must make of
it). The encoder below is written from gateway/src/spool/FORMAT.md, independently of the C++
code, so the golden files also check that the code matches the document.

    /usr/bin/python3 tests/data/spool/make_golden.py      # rewrites tests/data/spool/*/
    cp tests/data/spool/*/seg-*.cgs tests/data/fuzz/spool_segment/   (fuzz seeds; see README)

expected.txt keys (tests/unit/spool/recovery_golden_test.cpp reads them):
  seqs      the seqs readBatch() hands out after recovery, in order
  next_seq  recoveredNextSeq()
  corrupt   stats().corruptRecords (damaged stretches, headers and files)
  lost      stats().corruptReadings (readings that damage cost, by seq range; 0 when absent)
  size      FILE BYTES: the file's size after recovery ("gone": deleted; "kept": unchanged)
  error     open() must fail with a message containing this text, and change no file
"""
import shutil
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CREATED_MS = 1795000000000  # fixed, so the files are reproducible


def reading(seq):
    """A minimal citygate.v1.Reading: seq (field 1) and sensor_id (field 2)."""
    def varint(v):
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)
    sensor = f"golden-sensor-{seq:04d}".encode()
    return b"\x08" + varint(seq) + b"\x12" + varint(len(sensor)) + sensor


def header(first_seq, version=1, magic=b"CGSP"):
    body = magic + struct.pack("<HHQqI", version, 32, first_seq, CREATED_MS, 0)
    return body + struct.pack("<I", zlib.crc32(body))


def frame(seq, payload=None):
    payload = reading(seq) if payload is None else payload
    head = struct.pack("<IQ", len(payload), seq)
    return head + struct.pack("<I", zlib.crc32(head + payload)) + payload


def segment(first_seq, seqs):
    return header(first_seq) + b"".join(frame(s) for s in seqs)


def ack_file(slots):
    """slots: {offset: (generation, settled_seq, version)}; 544 bytes, unwritten slots zero."""
    out = bytearray(544)
    for off, (gen, settled, version) in slots.items():
        body = b"CGAK" + struct.pack("<HHQQI", version, 32, gen, settled, 0)
        out[off:off + 32] = body + struct.pack("<I", zlib.crc32(body))
    return bytes(out)


def name(first_seq):
    return f"seg-{first_seq:020d}.cgs"


CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


@case
def intact():
    """Two segments and an ack file: the acknowledged prefix is skipped."""
    files = {name(1): segment(1, range(1, 6)), name(6): segment(6, range(6, 9)),
             "spool.ack": ack_file({512: (1, 2, 1)})}
    return files, {"seqs": range(3, 9), "next_seq": 9, "corrupt": 0,
                   "size": {name(1): "kept", name(6): "kept"}}


@case
def truncated_tail():
    """The newest segment ends in the middle of a frame (the process died inside write())."""
    full = segment(1, range(1, 5))
    torn = frame(5)[:11]
    return {name(1): full + torn}, {"seqs": range(1, 5), "next_seq": 5, "corrupt": 0,
                                    "size": {name(1): len(full)}}


@case
def zero_tail():
    """A power cut after the file grew but before its last page was written: zeroes."""
    full = segment(1, range(1, 4))
    return {name(1): full + bytes(4096)}, {"seqs": range(1, 4), "next_seq": 4, "corrupt": 0,
                                           "size": {name(1): len(full)}}


@case
def bad_crc():
    """One payload byte flipped in record 3 of 5: skipped and counted, the rest delivered."""
    frames = [bytearray(frame(s)) for s in range(1, 6)]
    frames[2][20] ^= 0x01
    return {name(1): header(1) + b"".join(frames)}, {"seqs": [1, 2, 4, 5], "next_seq": 6, "corrupt": 1, "lost": 1,
                                                     "size": {name(1): "kept"}}


@case
def bad_length():
    """The length field of record 3 is garbage: resynchronise at record 4."""
    frames = [bytearray(frame(s)) for s in range(1, 6)]
    frames[2][0:4] = struct.pack("<I", 0x00FFFFF0)
    return {name(1): header(1) + b"".join(frames)}, {"seqs": [1, 2, 4, 5], "next_seq": 6, "corrupt": 1, "lost": 1,
                                                     "size": {name(1): "kept"}}


@case
def bad_crc_last():
    """The last record is damaged and nothing intact follows: a torn tail, cut (never sent, so
    its seq may be reused: see FORMAT.md)."""
    frames = [bytearray(frame(s)) for s in range(1, 6)]
    frames[4][-1] ^= 0x80
    body = header(1) + b"".join(bytes(f) for f in frames[:4])
    return {name(1): body + bytes(frames[4])}, {"seqs": range(1, 5), "next_seq": 5, "corrupt": 0,
                                                "size": {name(1): len(body)}}


@case
def bad_header_crc():
    """A damaged header: the records, checked one by one, are still delivered."""
    h = bytearray(header(1))
    h[17] ^= 0x10
    return {name(1): bytes(h) + b"".join(frame(s) for s in range(1, 4)), name(4): segment(4, [4])}, {
        "seqs": range(1, 5), "next_seq": 5, "corrupt": 1, "size": {name(1): "kept", name(4): "kept"}}


@case
def bad_magic():
    """Not a segment at all: renamed to *.corrupt, counted, the other segment delivered. The
    readings it held are counted by seq: from its name up to the next segment's (1..10)."""
    return {name(1): b"JUNK" * 40, name(11): segment(11, range(11, 14))}, {
        "seqs": range(11, 14), "next_seq": 14, "corrupt": 1, "lost": 10,
        "size": {name(1): "gone", name(1) + ".corrupt": 160, name(11): "kept"}}


@case
def bad_newest_segment():
    """The newest segment is not a segment any more: renamed to *.corrupt. Nothing says how many
    readings it held; its size bounds them (the smallest frame is 16 bytes: 8 here, seq 4..12), and
    numbering goes on above that bound, so no seq it may have held names another reading: an empty
    newest segment named 13 carries that across restarts."""
    return {name(1): segment(1, range(1, 4)), name(4): b"JUNK" * 40}, {
        "seqs": range(1, 4), "next_seq": 13, "corrupt": 1, "lost": 9,
        "size": {name(1): "kept", name(4): "gone", name(4) + ".corrupt": 160, name(13): 32}}


@case
def bad_segment():
    """A whole older segment overwritten with zeroes (28 readings, seq 6..33): corruption, counted
    by seq range from its name to the next segment's, renamed to *.corrupt."""
    zeros = bytes(len(segment(6, range(6, 34))))
    return {name(1): segment(1, range(1, 6)), name(6): zeros, name(34): segment(34, range(34, 37))}, {
        "seqs": [1, 2, 3, 4, 5, 34, 35, 36], "next_seq": 37, "corrupt": 1, "lost": 28,
        "size": {name(1): "kept", name(6): "gone", name(6) + ".corrupt": len(zeros), name(34): "kept"}}


@case
def truncated_sealed():
    """An older, sealed segment cut short in the middle of record 13 of 20: only the newest
    segment's tail can be torn by a crash, so this is corruption: seq 13..20 (8 readings, up to
    the next segment's first seq) counted, the tail cut, the rest delivered."""
    full = segment(1, range(1, 13))
    return {name(1): full + frame(13)[:9], name(21): segment(21, range(21, 26))}, {
        "seqs": list(range(1, 13)) + list(range(21, 26)), "next_seq": 26, "corrupt": 1, "lost": 8,
        "size": {name(1): len(full), name(21): "kept"}}


@case
def zero_tail_sealed():
    """An older, sealed segment whose last four records (seq 7..10) read back as zeroes: counted
    as 4 lost readings (corruption, not a torn tail), the zeroes cut, the rest delivered."""
    full = segment(1, range(1, 7))
    zeros = bytes(sum(len(frame(s)) for s in range(7, 11)))
    return {name(1): full + zeros, name(11): segment(11, range(11, 15))}, {
        "seqs": list(range(1, 7)) + list(range(11, 15)), "next_seq": 15, "corrupt": 1, "lost": 4,
        "size": {name(1): len(full), name(11): "kept"}}


@case
def sealed_failed_write():
    """A sealed segment ends in part of a frame, and the next segment starts with that frame's
    seq: an append that failed (ENOSPC) and was retried in a new segment. Cut, nothing lost."""
    full = segment(1, range(1, 6))
    return {name(1): full + frame(6)[:11], name(6): segment(6, range(6, 9))}, {
        "seqs": range(1, 9), "next_seq": 9, "corrupt": 0, "lost": 0,
        "size": {name(1): len(full), name(6): "kept"}}


@case
def torn_header():
    """The newest segment was being created when the power went: shorter than a header."""
    return {name(1): segment(1, range(1, 4)), name(4): header(4)[:10]}, {
        "seqs": range(1, 4), "next_seq": 4, "corrupt": 0, "size": {name(1): "kept", name(4): "gone"}}


@case
def empty_newest():
    """Everything acknowledged; the newest segment holds only its header: its first seq tells
    the next seq."""
    return {name(1): segment(1, range(1, 4)), name(4): header(4), "spool.ack": ack_file({0: (2, 3, 1)})}, {
        "seqs": [], "next_seq": 4, "corrupt": 0, "size": {name(1): "gone", name(4): "kept"}}


@case
def empty_newest_alone():
    """Only an empty newest segment survives (older ones deleted, no ack file): its header's first
    seq is all that says where numbering goes on."""
    return {name(40): header(40)}, {"seqs": [], "next_seq": 40, "corrupt": 0, "size": {name(40): "kept"}}


@case
def torn_ack_slot():
    """The newer ack slot was torn by the power cut: the older one counts (duplicates, no gap)."""
    ack = bytearray(ack_file({0: (4, 7, 1), 512: (3, 2, 1)}))
    ack[20] ^= 0xFF
    return {name(1): segment(1, range(1, 9)), "spool.ack": bytes(ack)}, {
        "seqs": range(3, 9), "next_seq": 9, "corrupt": 0, "size": {name(1): "kept"}}


@case
def future_version():
    """A segment written by a newer citygated: refuse to start, touch nothing."""
    return {name(1): segment(1, range(1, 4)), name(4): header(4, version=2) + frame(4)}, {
        "error": "format version 2 is newer"}


@case
def future_ack_version():
    """An ack file written by a newer citygated: refuse to start, touch nothing."""
    return {name(1): segment(1, range(1, 4)), "spool.ack": ack_file({0: (1, 1, 2)})}, {
        "error": "ack file format version 2 is newer"}


def write_expected(path, exp):
    lines = []
    if "error" in exp:
        lines.append(f"error: {exp['error']}")
    else:
        lines.append("seqs: " + " ".join(str(s) for s in exp["seqs"]))
        lines.append(f"next_seq: {exp['next_seq']}")
        lines.append(f"corrupt: {exp['corrupt']}")
        lines.append(f"lost: {exp.get('lost', 0)}")
        for f, size in exp["size"].items():
            lines.append(f"size: {f} {size}")
    path.write_text("\n".join(lines) + "\n")


def main():
    for case_name, fn in CASES.items():
        d = HERE / case_name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        files, expected = fn()
        for f, data in files.items():
            (d / f).write_bytes(data)
        doc = (fn.__doc__ or "").strip().replace("\n    ", "\n")
        write_expected(d / "expected.txt", expected)
        (d / "README").write_text(doc + "\n")
        print(f"{case_name}: {', '.join(sorted(files))}")


if __name__ == "__main__":
    main()
