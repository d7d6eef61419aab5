#!/usr/bin/python3
"""Folder graph of the gateway's #include dependencies, by layer, and its cycles.

    toolchains/check-includes.py            # the graph, top layer first, then every cycle and
                                            # every edge against the layers; exit 1 on either
    toolchains/check-includes.py --dot      # the graph in Graphviz dot (exit status the same)
    toolchains/check-includes.py --root DIR # another checkout (a copy to try a change on)

Layers (LAYERS below; README.md's layout section draws the same picture): the programs (app:
citygated, cli: citygatectl) on top; the components they assemble (control, inputs, outputs,
spool) below; core (interfaces, the pipeline), config, sources (the Source interface and its
registry) and platform at the bottom. A folder may
include its own layer or lower ones; an edge that goes up a layer is an error even without a
cycle (it is how a cycle starts). Within a layer there is no order, but no cycle either.

Folders: the components of gateway/src (core, config, sources, inputs/modbus, inputs/lora, spool,
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
    "sources",
    "inputs/modbus",
    "inputs/lora",
    "spool",
    "outputs/mqtt",
    "control",
    "commands",
    "platform",
    "app",
]
CLI = "cli"  # gateway/cli
# Top first. A folder in no layer (a new one) is listed after them, and its edges are not checked
# against the layers (cycles still are): give it a layer here.
LAYERS = [
    ("programs", ["app", CLI]),
    ("components", ["control", "commands", "inputs/modbus", "inputs/lora", "outputs/mqtt", "spool"]),
    ("base", ["core", "config", "sources", "platform"]),
]
LAYER_OF = {f: i for i, (_, folders) in enumerate(LAYERS) for f in folders}
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


def upward_edges(edges):
    """Edges from a folder to one in a higher layer (both folders in LAYERS)."""
    return sorted(
        (a, b) for (a, b) in edges if a in LAYER_OF and b in LAYER_OF and LAYER_OF[b] < LAYER_OF[a]
    )


def layered(folders):
    """[(layer name, [folders])], top first; folders in no layer last, as "unlayered"."""
    out = [(name, [f for f in members if f in folders]) for name, members in LAYERS]
    rest = sorted(f for f in folders if f not in LAYER_OF)
    if rest:
        out.append(("unlayered", rest))
    return [(name, members) for name, members in out if members]


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
    upward = upward_edges(edges)

    if args.dot:
        print("digraph includes {")
        print("  rankdir=TB;")
        for name, members in layered(folders):
            nodes = " ".join(f'"{f}";' for f in members)
            print(f"  subgraph {name} {{ rank=same; {nodes} }}")
        for (a, b), files in sorted(edges.items()):
            style = ' color="red"' if (a, b) in in_cycle or (a, b) in set(upward) else ""
            print(f'  "{a}" -> "{b}" [label="{len(files)}"{style}];')
        print("}")
    else:
        print("include graph of gateway/src and gateway/cli, top layer first")
        print("(folder -> folders it includes, #includes):")
        for name, members in layered(folders):
            print(f"  [{name}]")
            for f in members:
                outs = sorted(((b, len(files)) for (a, b), files in edges.items() if a == f),
                              key=lambda bn: (LAYER_OF.get(bn[0], len(LAYERS)), bn[0]))
                marks = lambda b: ("*" if (f, b) in in_cycle else "") + ("^" if (f, b) in upward else "")
                listed = ", ".join(f"{b} ({n}){' ' + marks(b) if marks(b) else ''}" for b, n in outs)
                print(f"    {f:14} -> {listed or '-'}")
        print("  (* = the edge is part of a cycle, ^ = the edge goes up a layer)")

    out = sys.stderr if args.dot else sys.stdout
    if not cycles and not upward:
        print("check-includes: no cycle between folders, no edge up a layer", file=out)
        return 0
    if cycles:
        print(f"\ncheck-includes: {len(cycles)} cycle(s) between folders:", file=out)
        for c in cycles:
            print("  " + " -> ".join(c), file=out)
            for k in range(len(c) - 1):
                a, b = c[k], c[k + 1]
                print(f"    {a} -> {b}:", file=out)
                for including, included in edges[(a, b)]:
                    print(f"      {including} -> {included}", file=out)
    if upward:
        print(f"\ncheck-includes: {len(upward)} edge(s) up a layer (see LAYERS in {Path(__file__).name}):", file=out)
        for a, b in upward:
            print(f"  {a} ({LAYERS[LAYER_OF[a]][0]}) -> {b} ({LAYERS[LAYER_OF[b]][0]}):", file=out)
            for including, included in edges[(a, b)]:
                print(f"      {including} -> {included}", file=out)
    return 1


if __name__ == "__main__":
    sys.exit(main())
