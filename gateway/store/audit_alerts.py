"""Alert events in the audit trail and their acknowledgements.

Owns: reading the events of given alert actions (newest first, by time, id
position and acknowledgement), the "alert.ack" events that acknowledge them
(target: the alert's event id as text; the first one counts), and appending an
acknowledgement at most once: under the audit head's row lock, so two
concurrent acknowledgements of one alert write one event. Must not: name the
alert kinds or decide who may acknowledge (admin.services.alerts does both).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.store import audit
from gateway.store.models import AuditEvent, AuditHead

ACK_ACTION = "alert.ack"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: int
    at: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredAck:
    """The acknowledgement of alert `alert_id`: event `event_id`, by `actor`."""

    event_id: int
    alert_id: int
    at: str
    actor: str
    role: str | None
    note: str


def _alert(ev: AuditEvent) -> AlertEvent:
    return AlertEvent(ev.id, ev.at, ev.action, ev.target, json.loads(ev.details))


def _ack(ev: AuditEvent) -> StoredAck:
    details = json.loads(ev.details)
    acting = details.get("acting")
    role = acting.get("role") if isinstance(acting, dict) else None
    return StoredAck(
        event_id=ev.id,
        alert_id=int(ev.target),
        at=ev.at,
        actor=ev.actor,
        role=str(role) if role is not None else None,
        note=str(details.get("note", "")),
    )


async def alert_events(
    session: AsyncSession,
    actions: Collection[str],
    *,
    limit: int,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
    acknowledged: bool | None = None,
) -> list[AlertEvent]:
    """The newest `limit` events of `actions`, newest first: at or after `since`,
    before `until` (exclusive), with an id below `before`, and acknowledged or
    not (None: either)."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.action.in_(sorted(actions)))
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    if acknowledged is not None:
        ack = aliased(AuditEvent)
        acked = exists().where(ack.action == ACK_ACTION, ack.target == cast(AuditEvent.id, String))
        stmt = stmt.where(acked if acknowledged else ~acked)
    return [_alert(ev) for ev in (await session.scalars(stmt)).all()]


async def alert_event(session: AsyncSession, event_id: int) -> AlertEvent | None:
    """The event with this id (any action), or None."""
    ev = await session.get(AuditEvent, event_id)
    return _alert(ev) if ev is not None else None


async def acknowledgements(
    session: AsyncSession, alert_ids: Collection[int]
) -> dict[int, StoredAck]:
    """The first acknowledgement of each of these alerts that has one."""
    if not alert_ids:
        return {}
    stmt = (
        select(AuditEvent)
        .where(
            AuditEvent.action == ACK_ACTION,
            AuditEvent.target.in_(sorted(str(i) for i in alert_ids)),
        )
        .order_by(AuditEvent.id)
    )
    found: dict[int, StoredAck] = {}
    for ev in (await session.scalars(stmt)).all():
        found.setdefault(int(ev.target), _ack(ev))
    return found


async def acknowledge_once(
    session: AsyncSession,
    key: bytes,
    *,
    alert_id: int,
    actor: str,
    details: Mapping[str, Any],
) -> tuple[StoredAck, bool]:
    """Append the "alert.ack" event of `alert_id` in the session's transaction unless
    one exists; (the acknowledgement, True when written now). The head row is locked
    first, so a concurrent acknowledgement waits and then finds this one."""
    await session.get(AuditHead, 1, with_for_update=True)
    existing = (await acknowledgements(session, [alert_id])).get(alert_id)
    if existing is not None:
        return existing, False
    event = await audit.append(
        session, key, actor=actor, action=ACK_ACTION, target=str(alert_id), details=details
    )
    return _ack(event), True
