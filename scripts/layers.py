#!/usr/bin/env python3
"""The structure check in `make lint`: no import cycle between the top-level
modules of a crate, and no source file far over 600 lines.

A top-level module is a file or folder directly under `src/`. An arrow A -> B
is any `crate::B` path written in A (in `use` lines, `crate::{B, ..}` groups
and inline paths). Cycles are the strongly connected components with more
than one module. Other folders given (tests) are checked for length only.
Usage: layers.py DIR... | layers.py --selftest
"""

import re
import sys
import tempfile
from pathlib import Path

MAX_LINES = 650  # "about 600": a file past this is split, not stretched

PATH_RE = re.compile(r"\bcrate::(\{[^}]*\}|\w+)")
COMMENT_RE = re.compile(r"^\s*//")


def module_of(src: Path, file: Path) -> str:
    first = file.relative_to(src).parts[0]
    return first[:-3] if first.endswith(".rs") else first


def graph(src: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for file in sorted(src.rglob("*.rs")):
        here = module_of(src, file)
        if here in ("lib", "main"):
            continue  # the crate root wires everything; it is above every module
        targets = edges.setdefault(here, set())
        for line in file.read_text().splitlines():
            if COMMENT_RE.match(line):
                continue
            for m in PATH_RE.finditer(line):
                names = m.group(1).strip("{}").split(",")
                for name in names:
                    head = name.strip().split("::")[0]
                    if head and head != here and head != "self" and re.fullmatch(r"\w+", head):
                        targets.add(head)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def long_files(src: Path) -> list[str]:
    out = []
    for file in sorted(src.rglob("*.rs")):
        n = len(file.read_text().splitlines())
        if n > MAX_LINES:
            out.append(f"{file}: {n} lines (split it; the limit is about 600)")
    return out


def check(src: Path) -> list[str]:
    if src.name != "src":  # tests, benches: their length only
        return long_files(src)
    edges = graph(src)
    problems = []
    for c in cycles(edges):
        arrows = [f"{a} -> {b}" for a in c for b in sorted(edges[a]) if b in c]
        problems.append(f"{src}: import cycle between {', '.join(c)} ({'; '.join(arrows)})")
    return problems + long_files(src)


def selftest() -> None:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d)
        (src / "a").mkdir()
        (src / "a" / "mod.rs").write_text("use crate::b::X;\n")
        (src / "b.rs").write_text("// crate::a in a comment is not an arrow\nfn f() { crate::c::g() }\n")
        (src / "c.rs").write_text("use crate::{oci, a::Y};\n")
        (src / "oci.rs").write_text("")
        assert cycles(graph(src)) == [["a", "b", "c"]], graph(src)
        (src / "c.rs").write_text("use crate::oci;\n")
        assert cycles(graph(src)) == [], graph(src)
        (src / "big.rs").write_text("\n" * (MAX_LINES + 1))
        assert len(long_files(src)) == 1


def main(args: list[str]) -> int:
    if args == ["--selftest"]:
        selftest()
        print("layers.py selftest: ok")
        return 0
    problems = [p for a in args for p in check(Path(a))]
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"no import cycles, no file over {MAX_LINES} lines: {' '.join(args)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
