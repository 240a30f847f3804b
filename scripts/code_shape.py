#!/usr/bin/env python3
"""The code's shape, checked: no import circle between the modules of a crate, and no function
over 100 lines (tests and their helpers included). `--graph` prints which module uses which,
the map in docs/ARCHITECTURE.md.

A module's uses are the `crate::<module>` paths it names (in `use` lines or inline); its
`#[cfg(test)]` module counts too, since a circle through a test is still a circle to read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rust-core"
MAX_FUNCTION_LINES = 100

FN_START = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def crates() -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(ROOT.glob("*/src"))}


def modules(src: Path) -> dict[str, Path]:
    """Top-level modules of a crate by name (a folder module is one module)."""
    found = {}
    for path in src.iterdir():
        if path.suffix == ".rs" and path.stem not in ("lib", "main"):
            found[path.stem] = path
        elif path.is_dir() and (path / "mod.rs").is_file():
            found[path.name] = path
    return found


def module_text(path: Path) -> str:
    """The module's code without its comments (a doc link is no use)."""
    files = [path] if path.is_file() else sorted(path.rglob("*.rs"))
    text = "\n".join(f.read_text() for f in files)
    return re.sub(r"//[^\n]*", "", text)


def uses(text: str, names: set[str]) -> set[str]:
    used = set()
    for m in re.finditer(r"crate::\{([^}]*)\}|crate::(\w+)", text):
        group = m.group(1)
        heads = [p.strip().split("::")[0] for p in group.split(",")] if group else [m.group(2)]
        used.update(h for h in heads if h in names)
    return used


def graph(src: Path) -> dict[str, set[str]]:
    mods = modules(src)
    names = set(mods)
    return {name: uses(module_text(path), names) - {name} for name, path in sorted(mods.items())}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

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
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def long_functions(path: Path) -> list[tuple[int, str, int]]:
    """(line, name, lines) of each function longer than the limit, by brace depth."""
    lines = path.read_text().split("\n")
    found, i = [], 0
    while i < len(lines):
        m = FN_START.match(lines[i])
        if not m:
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            # Strings, character literals ('{') and comments hold no braces of the code.
            code = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])\'|//.*', "", lines[j])
            if not opened and code.rstrip().endswith(";") and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth <= 0:
                break
            j += 1
        length = j - i + 1
        if opened and length > MAX_FUNCTION_LINES:
            found.append((i + 1, m.group(7), length))
        i += 1 if not opened else 1
    return found


def main() -> int:
    show_graph = "--graph" in sys.argv
    failures = []
    for crate, src in crates().items():
        edges = graph(src)
        if show_graph:
            print(f"{crate}:")
            for name, used in edges.items():
                print(f"  {name} -> {', '.join(sorted(used)) or '(nothing)'}")
        for group in circles(edges):
            failures.append(f"import circle in {crate}: {' <-> '.join(group)}")
        for path in sorted(src.rglob("*.rs")):
            for line, name, length in long_functions(path):
                failures.append(f"{path.relative_to(ROOT.parent)}:{line}: fn {name} is {length} lines (at most {MAX_FUNCTION_LINES})")
    for f in failures:
        print(f, file=sys.stderr)
    if not failures and not show_graph:
        print("code shape: no import circle, no function over 100 lines")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
