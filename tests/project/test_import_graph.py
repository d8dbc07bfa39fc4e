"""The import graph of the product packages: no cycles, dependencies one way.

Builds the graph from the source with `ast` (every import counts, at module
level, inside functions or under TYPE_CHECKING; relative imports resolved),
collapses it to packages (`gateway.X` for each subpackage or top-level module
of gateway; `policies`, `keys`, `admin` whole) and fails on a cycle between
gateway packages or an import against `policies` <- `keys` <- `gateway` <- `admin`.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("gateway", "policies", "keys", "admin")

# package -> the packages it must never import
FORBIDDEN = {
    "gateway": ("admin",),
    "policies": ("keys", "gateway", "admin"),
    "keys": ("gateway", "admin"),
}


@dataclass(frozen=True, slots=True)
class Edge:
    """One import between two packages, with the line that makes it."""

    source: str
    target: str
    where: str  # path:line of the import statement
    module: str  # the module imported


def module_names(root: Path, tops: tuple[str, ...]) -> dict[str, Path]:
    """Every module of the given top-level packages: dotted name -> file."""
    names: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def _base(module: str, path: Path, level: int) -> str:
    """The package a relative import with `level` dots starts from."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts)


def imported_modules(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, resolved to a known module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _base(module, path, node.level)
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            for alias in node.names:
                # `from a.b import c` imports the module a.b.c when there is one.
                candidate = f"{origin}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else origin))
    return found


def package_of(module: str) -> str | None:
    """The node a module belongs to: `gateway.X`, `policies`, `keys`, `admin`."""
    parts = module.split(".")
    if parts[0] not in PRODUCT:
        return None
    if parts[0] == "gateway":
        return ".".join(parts[:2])
    return parts[0]


def import_edges(root: Path, tops: tuple[str, ...] = PRODUCT) -> list[Edge]:
    """Every import between two different packages of the product."""
    names = module_names(root, tops)
    known = set(names)
    edges: list[Edge] = []
    for module, path in names.items():
        source = package_of(module)
        for line, imported in imported_modules(module, path, known):
            target = package_of(imported)
            if source is None or target is None or target == source:
                continue
            where = f"{path.relative_to(root)}:{line}"
            edges.append(Edge(source, target, where, imported))
    return edges


def _shortest_cycle(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """The shortest path start -> ... -> start, or None."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return None


def cycles(edges: list[Edge]) -> list[list[str]]:
    """One shortest cycle through each package that is on one, without repeats."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for node in sorted(graph):
        cycle = _shortest_cycle(node, graph)
        if cycle is not None and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            found.append(cycle)
    return found


def describe(cycle: list[str], edges: list[Edge]) -> str:
    """The cycle as a path, each step with the first import that makes it."""
    steps = []
    for source, target in itertools.pairwise(cycle):
        why = next(e for e in edges if e.source == source and e.target == target)
        steps.append(f"  {source} -> {target}  ({why.where} imports {why.module})")
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_no_cycle_between_gateway_packages() -> None:
    edges = [
        e
        for e in import_edges(ROOT)
        if e.source.startswith("gateway.") and e.target.startswith("gateway.")
    ]
    found = cycles(edges)
    assert not found, "import cycles between gateway packages:\n" + "\n".join(
        describe(cycle, edges) for cycle in found
    )


def test_dependencies_run_one_way() -> None:
    wrong = [
        f"{e.where}: {e.source} imports {e.module}"
        for e in import_edges(ROOT)
        if e.target.split(".")[0] in FORBIDDEN.get(e.source.split(".")[0], ())
    ]
    assert not wrong, "imports against policies <- keys <- gateway <- admin:\n" + "\n".join(wrong)


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: relative, function-level and `from pkg import module`."""
    files = {
        "gateway/__init__.py": "",
        "gateway/a/__init__.py": "from . import inner\n",
        "gateway/a/inner.py": "def f() -> None:\n    from ..b.mod import thing\n",
        "gateway/b/__init__.py": "",
        "gateway/b/mod.py": "from gateway.c import leaf\nthing = 1\n",
        "gateway/c/__init__.py": "",
        "gateway/c/leaf.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import gateway.a.inner\n",
        "gateway/d.py": "from gateway import c\nimport admin.cli\n",
        "admin/__init__.py": "",
        "admin/cli.py": "import gateway.d\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    edges = import_edges(tmp_path, ("gateway", "admin"))
    pairs = {(e.source, e.target) for e in edges}
    assert pairs == {
        ("gateway.a", "gateway.b"),
        ("gateway.b", "gateway.c"),
        ("gateway.c", "gateway.a"),
        ("gateway.d", "gateway.c"),
        ("gateway.d", "admin"),
        ("admin", "gateway.d"),
    }
    gateway_edges = [e for e in edges if e.target.startswith("gateway.")]
    assert cycles(gateway_edges) == [["gateway.a", "gateway.b", "gateway.c", "gateway.a"]]
    assert "gateway/a/inner.py:2" in describe(cycles(gateway_edges)[0], gateway_edges)
