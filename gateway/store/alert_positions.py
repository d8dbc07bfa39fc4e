"""The alert machinery's durable positions in the audit trail (rows of `meta`).

Owns: two positions, each the id of the newest audit event a job has dealt
with: `alert_scan_position` (the alert rules' evaluator: events up to it have
been evaluated) and `alert_mail_position` (the security-mailbox mailer: alerts
up to it have been filed). Migration 0014 creates both rows at the end of the
audit trail as it stands then, so a new installation (an empty trail) starts at
0 and an upgraded one starts after its history instead of replaying it; a row
found missing later is made the same way, at the current end. A position moves
only by compare-and-set (`advance`), inside the caller's transaction, so the
move commits or rolls back with the work it records and two nodes never both
do the same step. Must not: decide what an alert is or file anything.
Failure behaviour: database errors reach the caller; a lost compare-and-set is
`False`, not an error.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.db import transaction
from gateway.store.models import AuditEvent, Meta

log = logging.getLogger("barid.alerts")
SCAN_POSITION = "alert_scan_position"
MAIL_POSITION = "alert_mail_position"
KEYS = (SCAN_POSITION, MAIL_POSITION)


async def trail_end(session: AsyncSession) -> int:
    """The id of the newest audit event (0 for an empty trail)."""
    return int(await session.scalar(select(func.max(AuditEvent.id))) or 0)


async def read(session: AsyncSession, key: str) -> int | None:
    value = await session.scalar(select(Meta.value).where(Meta.key == key))
    return int(value) if value is not None else None


async def ensure(sessions: async_sessionmaker[AsyncSession], key: str) -> int:
    """The position `key`; a missing row is made at the current end of the trail
    (logged), so nothing recorded before it is replayed."""
    async with sessions() as session:
        found = await read(session, key)
    if found is not None:
        return found
    try:
        async with transaction(sessions) as session:
            end = await trail_end(session)
            await session.execute(insert(Meta).values(key=key, value=end))
        log.warning("alert position was missing; it starts at the end of the audit trail",
                    extra={"position": key, "event": end})  # fmt: skip
    except IntegrityError:
        pass  # another node made it meanwhile
    async with sessions() as session:
        made = await read(session, key)
    assert made is not None
    return made


async def advance(session: AsyncSession, key: str, before: int, to: int) -> bool:
    """Move `key` from `before` to `to` in the session's transaction; False when it
    was not at `before` (another node moved it first)."""
    result = await session.execute(
        update(Meta)
        .where(Meta.key == key, Meta.value == before)
        .values(value=to)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
