"""The audit trail as the alert rules read and write it.

Owns: reading the events the rules look at (by action, from a time on, up to an
id), the newest event id, the first id at or after a time, and appending a
fired alert at most once per (action, subject, window): under the audit head's
row lock, so two nodes scanning at once write one event. Must not: decide what
is an alert (gateway.alerts.rules does).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import audit
from gateway.store.access_trail import stored_time
from gateway.store.models import AuditEvent, AuditHead

ALERT_OUTCOME = "alert"


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _details(text: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


async def newest_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(AuditEvent.id))) or 0)


async def first_id_since(session: AsyncSession, since: dt.datetime) -> int | None:
    """The lowest id of an event at or after `since`, or None."""
    found = await session.scalar(
        select(func.min(AuditEvent.id)).where(AuditEvent.at >= stored_time(since))
    )
    return int(found) if found is not None else None


async def oldest_time_after(session: AsyncSession, position: int) -> dt.datetime | None:
    """The earliest time of an event with an id above `position`, or None."""
    found = await session.scalar(select(func.min(AuditEvent.at)).where(AuditEvent.id > position))
    return _time(found) if found is not None else None


async def events(
    session: AsyncSession, actions: Collection[str], *, since: dt.datetime, upto: int
) -> list[tuple[int, dt.datetime, str, str, str, dict[str, Any]]]:
    """(id, at, action, actor, target, details) of the events of `actions` at or
    after `since` with an id at most `upto`, in id order."""
    stmt = (
        select(
            AuditEvent.id,
            AuditEvent.at,
            AuditEvent.action,
            AuditEvent.actor,
            AuditEvent.target,
            AuditEvent.details,
        )
        .where(AuditEvent.action.in_(sorted(actions)))
        .where(AuditEvent.at >= stored_time(since), AuditEvent.id <= upto)
        .order_by(AuditEvent.id)
    )
    rows = (await session.execute(stmt)).all()
    return [(r.id, _time(r.at), r.action, r.actor, r.target, _details(r.details)) for r in rows]


async def append_once(
    session: AsyncSession,
    key: bytes,
    *,
    actor: str,
    action: str,
    subject: str,
    window: str,
    details: Mapping[str, Any],
) -> int | None:
    """Append the alert event unless one of `action` about `subject` for `window`
    exists; the new event's id, or None when it existed."""
    await session.get(AuditHead, 1, with_for_update=True)
    stmt = select(AuditEvent.details).where(
        AuditEvent.action == action, AuditEvent.target == subject
    )
    for text in (await session.scalars(stmt)).all():
        if _details(text).get("window") == window:
            return None
    event = await audit.append(
        session, key, actor=actor, action=action, target=subject, outcome=ALERT_OUTCOME,
        details=details,
    )  # fmt: skip
    return event.id
