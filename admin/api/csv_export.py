"""CSV for exports: RFC 4180 rows, safe to open in a spreadsheet.

Owns: turning rows of cells into CSV text (CRLF line ends, quotes where a cell
needs them) and the guard against spreadsheet formula injection: a cell that
starts with = + - @ (or a tab or carriage return) is prefixed with ' so that
it is shown as text, never evaluated. Must not: fetch rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell's text; a formula-looking one prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(rows: Iterable[Sequence[object]]) -> str:
    """The rows as CSV text (each line ends in CRLF)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
