"""Presenting command results: JSON for machines, aligned text for people.

Owns: the two output forms and the one-line error form. Must not: decide
anything; commands hand it plain data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click


def emit(data: Any, text: str | Callable[[], str] | None, *, as_json: bool) -> None:
    """Print `data` as JSON, or `text` (a string or a function making one) for people."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False))
    elif text is not None:
        click.echo(text() if callable(text) else text)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, "") or "")) for r in rows)) for c in columns}
    head = "  ".join(c.upper().ljust(widths[c]) for c in columns)
    body = ["  ".join(str(r.get(c, "") or "").ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in [head, *body])


def fields(data: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    chosen = keys or [k for k, v in data.items() if not isinstance(v, dict | list)]
    width = max(len(k) for k in chosen)
    return "\n".join(
        f"{k.replace('_', ' ')}:".ljust(width + 2) + f" {_cell(data.get(k))}" for k in chosen
    )


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def error(message: str, *, as_json: bool, details: Mapping[str, Any] | None = None) -> None:
    """One line on stderr (and one JSON object on stdout in --json mode)."""
    line = " ".join(message.split())
    if as_json:
        click.echo(json.dumps({"ok": False, "error": line, **(details or {})}, ensure_ascii=False))
    click.echo(f"barid: {line}", err=True)
    sys.stderr.flush()
