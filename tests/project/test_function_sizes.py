"""Function sizes: every function and method in product code stays short.

A function counts from its `def` line to the last line of its body (decorators
not included). No function in gateway, policies, keys or admin may be longer
than MAX_FUNCTION_LINES lines. The few that still are (in modules being
rewritten) are listed in OVER_LIMIT with their length when they were listed:
that length is a ceiling (a listed function may shrink, never grow past it), and
a function leaves the list once it is split into named steps.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("gateway", "policies", "keys", "admin")
MAX_FUNCTION_LINES = 80

# Still too long: "path::Class.function" -> length when listed (a ceiling).
# Remove an entry when its function is split; never raise a length.
OVER_LIMIT = {}

_Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, _Function]]:
    """Every function and method under `node`, nested ones too, with its dotted name."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, _Function):
            yield f"{prefix}{child.name}", child
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _length(function: _Function) -> int:
    assert function.end_lineno is not None
    return function.end_lineno - function.lineno + 1


def _product_functions() -> dict[str, int]:
    """'path::qualified name' -> length, for every function in product code (the
    longest, if a module defines one name twice)."""
    lengths: dict[str, int] = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            module = path.relative_to(ROOT).as_posix()
            for name, function in _functions(tree):
                key = f"{module}::{name}"
                lengths[key] = max(lengths.get(key, 0), _length(function))
    return lengths


def test_no_product_function_grows_past_its_ceiling() -> None:
    too_long = [
        f"{name}: {length} lines (at most {OVER_LIMIT.get(name, MAX_FUNCTION_LINES)})"
        for name, length in sorted(_product_functions().items())
        if length > OVER_LIMIT.get(name, MAX_FUNCTION_LINES)
    ]
    assert not too_long, "split these functions into named steps:\n" + "\n".join(too_long)


def test_the_allowlist_only_names_functions_over_the_limit() -> None:
    # A listed function that has come under the limit (or is gone) must leave the
    # list, so that it, or a new function of the same name, cannot grow back.
    lengths = _product_functions()
    stale = []
    for name, ceiling in OVER_LIMIT.items():
        assert ceiling > MAX_FUNCTION_LINES, name
        if name not in lengths:
            stale.append(f"{name} no longer exists: remove it from OVER_LIMIT")
        elif lengths[name] <= MAX_FUNCTION_LINES:
            stale.append(f"{name} is now {lengths[name]} lines: remove it from OVER_LIMIT")
    assert not stale, "\n".join(stale)


def test_the_walk_sees_methods_and_nested_functions() -> None:
    source = (
        "def outer():\n"
        "    def inner():\n"
        "        pass\n"
        "class Box:\n"
        "    async def open(self):\n"
        "        if True:\n"
        "            return 1\n"
    )
    found = {name: _length(node) for name, node in _functions(ast.parse(source))}
    assert found == {"outer": 3, "outer.inner": 2, "Box.open": 3}
