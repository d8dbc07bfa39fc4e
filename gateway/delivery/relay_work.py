"""Remote delivery's work units: what is due, and claiming it with a lease.

Owns: `Work` (one claimed copy of `delivery_queue` for a peer gateway or an
agency IMAP server, or one `relay_outbox` entry) and `claim_due`: read what is due, then take each
entry by a guarded update (`state='delivering'`, `next_attempt_at` = the lease
end) in one short transaction before anything is sent. On PostgreSQL (several
nodes) the due rows are read FOR UPDATE SKIP LOCKED in that same transaction,
so two nodes never take, or wait on, the same rows. Must not: send or
record outcomes (gateway.delivery.relay does).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.model.target import REMOTE_KINDS, DeliveryTarget, column_prefix, peer_gateway
from gateway.store.db import writing
from gateway.store.errors import DATABASE_ERRORS, database_trouble
from gateway.store.models import Agency, DeliveryQueueEntry, Message, MessageCopy, RelayOutboxEntry
from gateway.store.queue import shares_work, skip_locked

ROUND = 256  # entries taken per round
_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(_FORMAT)


def parse(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, _FORMAT).replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Work:
    """One claimed unit: a copy (entry of delivery_queue) or an outbox entry."""

    table: str  # "copy" | "outbox"
    id: int
    target: DeliveryTarget  # a peer gateway or an agency IMAP server
    attempts: int
    created_at: str
    maybe_done: bool
    mail_from: str
    recipient: str
    registry: str
    blob_ids: tuple[str, ...]
    # copies only
    message_id: int = 0
    trace_code: str = ""
    sign_domain: str = ""


async def claim_due(sessions: async_sessionmaker[AsyncSession], lease: dt.timedelta) -> list[Work]:
    """Take the due copies and outbox entries (at most ROUND of each); the units now ours."""
    now = dt.datetime.now(dt.UTC)
    now_text = stamp(now)
    lease_end = stamp(now + lease)
    if shares_work(sessions):
        return await _claim_locked(sessions, now_text, lease_end)
    try:
        async with sessions() as session:
            copies = await _due_copies(session, now_text)
            outbox = await _due_outbox(session, now_text)
    except DATABASE_ERRORS as exc:
        raise database_trouble("relay", exc) from None
    if not copies and not outbox:
        return []
    try:
        async with writing(sessions) as session:
            return await _take_all(session, copies, outbox, now_text, lease_end)
    except DATABASE_ERRORS as exc:
        raise database_trouble("relay", exc) from None


async def _claim_locked(
    sessions: async_sessionmaker[AsyncSession], now_text: str, lease_end: str
) -> list[Work]:
    """PostgreSQL: the due rows are selected FOR UPDATE SKIP LOCKED and taken in the
    same transaction, so nodes never read (and race for) each other's rows."""
    try:
        async with writing(sessions) as session:
            copies = await _due_copies(session, now_text, lock=True)
            outbox = await _due_outbox(session, now_text, lock=True)
            return await _take_all(session, copies, outbox, now_text, lease_end)
    except DATABASE_ERRORS as exc:
        raise database_trouble("relay", exc) from None


async def _take_all(
    session: AsyncSession,
    copies: Sequence[Any],
    outbox: Sequence[Any],
    now_text: str,
    lease_end: str,
) -> list[Work]:
    claimed: list[Work] = []
    for row in copies:
        if await _take(session, DeliveryQueueEntry, row, now_text, lease_end):
            claimed.append(_copy_work(row))
    for row in outbox:
        if await _take(session, RelayOutboxEntry, row, now_text, lease_end):
            claimed.append(_outbox_work(row))
    return claimed


async def _due_copies(session: AsyncSession, now_text: str, *, lock: bool = False) -> Sequence[Any]:
    query = (
        select(
            DeliveryQueueEntry.id,
            DeliveryQueueEntry.state,
            DeliveryQueueEntry.next_attempt_at,
            DeliveryQueueEntry.target,
            DeliveryQueueEntry.attempts,
            DeliveryQueueEntry.created_at,
            Message.sender_address,
            MessageCopy.recipient,
            Message.registry_number,
            MessageCopy.prefix_blob_id,
            Message.original_blob_id,
            MessageCopy.suffix_blob_id,
            Message.id,
            MessageCopy.trace_code,
            Agency.domain,
        )
        .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
        .join(Message, Message.id == MessageCopy.message_id)
        .join(Agency, Agency.id == Message.agency_id)
        .where(
            or_(
                *(
                    DeliveryQueueEntry.target.startswith(column_prefix(kind))
                    for kind in REMOTE_KINDS
                )
            ),
            DeliveryQueueEntry.state.in_(("queued", "delivering")),
            DeliveryQueueEntry.next_attempt_at <= now_text,
        )
        .order_by(DeliveryQueueEntry.next_attempt_at, DeliveryQueueEntry.id)
        .limit(ROUND)
    )
    if lock:
        query = skip_locked(query, session, DeliveryQueueEntry)
    return (await session.execute(query)).all()


async def _due_outbox(session: AsyncSession, now_text: str, *, lock: bool = False) -> Sequence[Any]:
    query = (
        select(
            RelayOutboxEntry.id,
            RelayOutboxEntry.state,
            RelayOutboxEntry.next_attempt_at,
            RelayOutboxEntry.peer,
            RelayOutboxEntry.attempts,
            RelayOutboxEntry.created_at,
            RelayOutboxEntry.mail_from,
            RelayOutboxEntry.recipient,
            RelayOutboxEntry.registry_number,
            RelayOutboxEntry.blob_id,
        )
        .where(
            RelayOutboxEntry.state.in_(("queued", "delivering")),
            RelayOutboxEntry.next_attempt_at <= now_text,
        )
        .order_by(RelayOutboxEntry.next_attempt_at, RelayOutboxEntry.id)
        .limit(ROUND)
    )
    if lock:
        query = skip_locked(query, session, RelayOutboxEntry)
    return (await session.execute(query)).all()


def _copy_work(row: Any) -> Work:
    return Work(
        table="copy",
        id=row[0],
        target=DeliveryTarget.parse(row[3]),
        attempts=row[4] + 1,
        created_at=row[5],
        maybe_done=row[1] == "delivering",
        mail_from=row[6],
        recipient=row[7],
        registry=row[8],
        blob_ids=(row[9], row[10], row[11]),
        message_id=row[12],
        trace_code=row[13],
        sign_domain=row[14],
    )


def _outbox_work(row: Any) -> Work:
    return Work(
        table="outbox",
        id=row[0],
        target=peer_gateway(row[3]),
        attempts=row[4] + 1,
        created_at=row[5],
        maybe_done=row[1] == "delivering",
        mail_from=row[6],
        recipient=row[7],
        registry=row[8],
        blob_ids=(row[9],),
    )


async def _take(session: AsyncSession, model: Any, row: Any, now: str, lease_end: str) -> bool:
    """Claim one entry as it was read (same state and due time): True when ours."""
    entry_id, state, due = row[0], row[1], row[2]
    taken = (
        await session.execute(
            update(model)
            .where(
                and_(model.id == entry_id, model.state == state, model.next_attempt_at == due),
                model.next_attempt_at <= now,
            )
            .values(
                state="delivering",
                next_attempt_at=lease_end,
                attempts=model.attempts + 1,
                updated_at=now,
            )
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return taken is not None
