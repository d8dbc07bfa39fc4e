"""Who fetched which official message: the access trail read from the audit chain.

Owns: reading `message.access` events back out of `audit_events` (filtered by
registry number, employee, trace code and time) and parsing the `--since`
forms (ISO 8601 date or date-time, or a span back from now such as 24h).
Must not: write anything; the IMAP server appends the events (one per body
fetch) through `audit.append_many`, so they stay inside the keyed hash chain.

Each event has action "message.access", actor = the employee's lower-cased
address, target = the registry number and details = {"trace", "copy",
"protocol", "client", "mailbox", "uid", "items"}; `trace` is null for the
sender's own Sent copy. `node` is the event's node column (the gateway node that
served the fetch; null for events from before nodes were recorded). Registry
number, employee and time are filtered in SQL.
The trace code is narrowed in SQL with a LIKE on the canonical details JSON and
then compared exactly on the parsed details, so a LIKE that matches too much
(SQLite's LIKE ignores ASCII case; a nested "trace" key) never leaks through.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import AuditEvent

ACCESS_ACTION = "message.access"
SCAN_BATCH = 500  # rows read per query while a trace filter is checked in Python

_SPAN = re.compile(r"(\d{1,9})\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True)
class AccessEntry:
    """One fetch of a message body by one employee over IMAP."""

    at: str
    employee: str
    registry: str
    trace: str | None
    copy: str
    protocol: str
    client: str
    mailbox: str
    uid: int | None
    items: tuple[str, ...]
    event_id: int
    node: str | None = None  # the gateway node that served the fetch (None: before nodes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "employee": self.employee,
            "registry": self.registry,
            "trace": self.trace,
            "copy": self.copy,
            "protocol": self.protocol,
            "client": self.client,
            "mailbox": self.mailbox,
            "uid": self.uid,
            "items": list(self.items),
            "event_id": self.event_id,
            "node": self.node,
        }


def stored_time(moment: dt.datetime) -> str:
    """`moment` as the fixed-width UTC text of `audit_events.at` (naive means UTC)."""
    utc = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def parse_since(text: str, now: dt.datetime) -> str:
    """The stored-time text for `text`: an ISO 8601 date or date-time, or a span before `now`.

    Dates mean midnight UTC; date-times without an offset are UTC; spans are a
    whole number and a unit: s, m (minutes), h, d or w, e.g. "30m", "24h", "7d".
    Raises ValueError naming the accepted forms otherwise.
    """
    value = text.strip()
    try:
        span = _SPAN.fullmatch(value)
        if span is not None:
            seconds = int(span.group(1)) * _UNIT_SECONDS[span.group(2)]
            return stored_time(now - dt.timedelta(seconds=seconds))
        return stored_time(dt.datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        pass
    raise ValueError(
        f"not a time: {text!r}; use an ISO 8601 date or date-time (2026-11-22,"
        " 2026-11-22T10:00:00Z, 2026-11-22T13:00:00+03:00) or a span back from now"
        " such as 30m, 24h or 7d"
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _entry(event: AuditEvent) -> AccessEntry:
    try:
        loaded = json.loads(event.details)
    except ValueError:
        loaded = None
    details: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    trace = details.get("trace")
    uid = details.get("uid")
    items = details.get("items")
    return AccessEntry(
        at=event.at,
        employee=event.actor,
        registry=event.target,
        trace=trace if isinstance(trace, str) else None,
        copy=_text(details.get("copy")),
        protocol=_text(details.get("protocol")),
        client=_text(details.get("client")),
        mailbox=_text(details.get("mailbox")),
        uid=uid if isinstance(uid, int) and not isinstance(uid, bool) else None,
        items=tuple(str(i) for i in items) if isinstance(items, list) else (),
        event_id=event.id,
        node=event.node,
    )


async def access_entries(
    session: AsyncSession,
    *,
    registry: str | None = None,
    employee: str | None = None,
    trace: str | None = None,
    since: str | None = None,
    limit: int = 1000,
    until: str | None = None,
    before: int | None = None,
) -> list[AccessEntry]:
    """The newest `limit` accesses matching every given filter, oldest first.

    `registry` is compared after strip and upper-casing, `employee` after strip
    and lower-casing, `trace` after strip and upper-casing (trace codes are
    upper case); `since` is stored-time text (see `parse_since`), inclusive;
    `until` the same, exclusive; `before` an event id (the paging position).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    stmt = select(AuditEvent).where(AuditEvent.action == ACCESS_ACTION)
    if registry is not None:
        stmt = stmt.where(AuditEvent.target == registry.strip().upper())
    if employee is not None:
        stmt = stmt.where(AuditEvent.actor == employee.strip().lower())
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    wanted: str | None = None
    batch = limit
    if trace is not None:
        wanted = trace.strip().upper()
        # The canonical details JSON (audit.canonical_details) writes the pair exactly so.
        needle = '"trace":' + json.dumps(wanted, ensure_ascii=False)
        stmt = stmt.where(AuditEvent.details.contains(needle, autoescape=True))
        batch = max(limit, SCAN_BATCH)
    stmt = stmt.order_by(AuditEvent.id.desc())

    newest_first: list[AccessEntry] = []
    while len(newest_first) < limit:
        page = stmt if before is None else stmt.where(AuditEvent.id < before)
        rows = (await session.scalars(page.limit(batch))).all()
        for event in rows:
            entry = _entry(event)
            if wanted is None or entry.trace == wanted:
                newest_first.append(entry)
                if len(newest_first) == limit:
                    break
        if len(rows) < batch:
            break
        before = rows[-1].id
    newest_first.reverse()
    return newest_first
