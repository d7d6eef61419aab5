#!/usr/bin/python3
"""Folder graph of the gateway's #include dependencies, and its cycles.

    toolchains/check-includes.py            # the graph, then every cycle; exit 1 if there is one
    toolchains/check-includes.py --dot      # the graph in Graphviz dot (exit status the same)
    toolchains/check-includes.py --root DIR # another checkout (a copy to try a change on)

Folders: the components of gateway/src (core, config, inputs/modbus, inputs/lora, spool,
outputs/mqtt, control, platform, app) and gateway/cli; a file in a sub-folder belongs to its
component (inputs/lora/codecs is inputs/lora). `#include "x/y.hpp"` is resolved against
gateway/src, gateway/ and the including file's folder, as the build does; system headers,
generated headers (citygate/v1/*.pb.h) and the schema (proto/) are leaves and are not drawn.
A cycle is printed as A -> B -> ... -> A, each edge with the files that make it
(`including file -> included file`). Needs only the standard library of /usr/bin/python3.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "gateway" / "src"


def set_root(root: Path):
    global ROOT, SRC
    ROOT = root.resolve()
    SRC = ROOT / "gateway" / "src"

COMPONENTS = [
    "core",
    "config",
    "inputs/modbus",
    "inputs/lora",
    "spool",
    "outputs/mqtt",
    "control",
    "platform",
    "app",
]
CLI = "cli"  # gateway/cli
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
SUFFIXES = {".hpp", ".cpp", ".h", ".cc", ".ipp"}


def folder_of(path: Path) -> str | None:
    """The component a file of gateway/ belongs to, or None outside them."""
    try:
        rel = path.relative_to(SRC).as_posix()
    except ValueError:
        try:
            rel = path.relative_to(ROOT / "gateway").as_posix()
        except ValueError:
            return None
        return CLI if rel.startswith(CLI + "/") else None
    for c in sorted(COMPONENTS, key=len, reverse=True):
        if rel.startswith(c + "/"):
            return c
    # A file of gateway/src outside the known components is its own folder, so it is not lost.
    return str(Path(rel).parent) if "/" in rel else "."


def resolve(including: Path, name: str) -> Path | None:
    for base in (SRC, ROOT / "gateway", including.parent):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    return None


def sources():
    for base in (SRC, ROOT / "gateway" / CLI):
        for p in sorted(base.rglob("*")):
            if p.suffix in SUFFIXES and p.is_file():
                yield p


def build_graph():
    """{(from, to): [(including, included), ...]} between distinct folders, and every folder."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    folders: set[str] = set()
    for path in sources():
        src_folder = folder_of(path)
        if src_folder is None:
            continue
        folders.add(src_folder)
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in INCLUDE.findall(text):
            target = resolve(path, name)
            if target is None:
                continue  # generated (citygate/v1/*.pb.h), the schema (proto/) or external
            dst_folder = folder_of(target)
            if dst_folder is None or dst_folder == src_folder:
                continue
            edges.setdefault((src_folder, dst_folder), []).append(
                (path.relative_to(ROOT).as_posix(), target.relative_to(ROOT).as_posix())
            )
    return folders, edges


def elementary_cycles(folders, edges):
    """Every elementary cycle, each once, starting at its smallest folder (the graph is small)."""
    succ = {f: sorted({b for (a, b) in edges if a == f}) for f in folders}
    order = sorted(folders)
    cycles = []
    for i, start in enumerate(order):
        allowed = set(order[i:])

        def walk(node, path, on_path):
            for nxt in succ[node]:
                if nxt == start:
                    cycles.append(path + [start])
                elif nxt in allowed and nxt not in on_path:
                    on_path.add(nxt)
                    walk(nxt, path + [nxt], on_path)
                    on_path.discard(nxt)

        walk(start, [start], {start})
    return cycles


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print the graph in Graphviz dot")
    parser.add_argument("--root", type=Path, help="the checkout to read (default: this script's)")
    args = parser.parse_args()
    if args.root:
        set_root(args.root)
    if not SRC.is_dir():
        print(f"check-includes: no {SRC}", file=sys.stderr)
        return 2

    folders, edges = build_graph()
    cycles = elementary_cycles(folders, edges)
    in_cycle = {(c[k], c[k + 1]) for c in cycles for k in range(len(c) - 1)}

    if args.dot:
        print("digraph includes {")
        for (a, b), files in sorted(edges.items()):
            style = ' color="red"' if (a, b) in in_cycle else ""
            print(f'  "{a}" -> "{b}" [label="{len(files)}"{style}];')
        print("}")
    else:
        print("include graph of gateway/src and gateway/cli (folder -> folders it includes, #includes):")
        for f in sorted(folders):
            outs = sorted((b, len(files)) for (a, b), files in edges.items() if a == f)
            listed = ", ".join(f"{b} ({n}){' *' if (f, b) in in_cycle else ''}" for b, n in outs)
            print(f"  {f:14} -> {listed or '-'}")
        print("  (* = the edge is part of a cycle)")

    if not cycles:
        print("check-includes: no cycle between folders", file=sys.stderr if args.dot else sys.stdout)
        return 0
    out = sys.stderr if args.dot else sys.stdout
    print(f"\ncheck-includes: {len(cycles)} cycle(s) between folders:", file=out)
    for c in cycles:
        print("  " + " -> ".join(c), file=out)
        for k in range(len(c) - 1):
            a, b = c[k], c[k + 1]
            print(f"    {a} -> {b}:", file=out)
            for including, included in edges[(a, b)]:
                print(f"      {including} -> {included}", file=out)
    return 1


if __name__ == "__main__":
    sys.exit(main())
