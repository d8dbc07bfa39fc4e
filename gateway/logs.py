"""Structured logging for the gateway: one JSON object per line on stderr.

Owns: log set-up and the rule that log records carry facts, never secrets
(passwords, keys, message bodies): an error's traceback keeps its frames, but
exception texts are cut short and scrubbed of credentials and SQL parameters.
Every line names the node (`server.node_id`) that wrote it, so the logs of
several gateways sharing one database can be merged. Must not: write audit
events; those go to the audit chain, which is durable and tamper-evident,
unlike logs.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import time
import traceback
from types import TracebackType
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
MAX_EXCEPTION_TEXT = 300
MAX_CHAIN = 5
_SCRUB = (
    # user:password@ in URLs (database URLs, proxies)
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@]*@"), r"\1***@"),
    # SQLAlchemy's "[parameters: ...]" carries row values (engines also hide them)
    (re.compile(r"(?s)\[parameters: .*"), "[parameters hidden]"),
    # key=value / key: value for secret-looking names
    (
        re.compile(
            r"(?i)\b(password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key)"
            r"(\s*[=:]\s*)\S+"
        ),
        r"\1\2***",
    ),
)


def scrub(text: str) -> str:
    """An exception text fit for a log line: short, without credentials or row values."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_EXCEPTION_TEXT:
        text = text[:MAX_EXCEPTION_TEXT] + "..."
    return text


def safe_traceback(exc: BaseException, tb: TracebackType | None) -> list[str]:
    """Frames (file, line, function, source line; never local values) of the error and
    the errors it came from, each ending with its type and scrubbed text."""
    chain: list[tuple[BaseException, TracebackType | None]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, tb if current is exc else current.__traceback__))
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    lines: list[str] = []
    for error, frames in reversed(chain):
        if lines:
            lines.append("-- which led to --")
        for frame in traceback.extract_tb(frames):
            lines.append(f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line or ''}")
        lines.append(f"{type(error).__module__}.{type(error).__qualname__}: {scrub(str(error))}")
    return lines


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `node` (the gateway's server.node_id) on every line."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
        }
        if self.node is not None:
            entry["node"] = self.node
        entry |= {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            if record.exc_info[1] is not None:
                entry["traceback"] = safe_traceback(record.exc_info[1], record.exc_info[2])
        return json.dumps(entry, ensure_ascii=False, default=str)


def node_name(configured: str = "") -> str:
    """This node's name: `server.node_id` when set, else the machine's host name."""
    return (configured or socket.gethostname() or "node")[:64]


def configure(level: str = "info", fmt: str = "json", node: str | None = None) -> None:
    """Log to stderr; every line names `node` (server.node_id) when given."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(node))
    else:
        where = "" if node is None else node.replace("%", "%%") + " "
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {where}%(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
