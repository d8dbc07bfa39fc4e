"""Operator control of the durable delivery queue: look, retry, hold, release, purge.

Owns: reading `delivery_queue` entries with their message facts, and the operator's
state changes. Each change is one write transaction with a guarded UPDATE
(`WHERE id=:id AND state IN (...)`), so it never races the delivery worker (which
claims only 'queued' entries the same way): the change applies to the state it
was meant for or does nothing and raises `QueueStateError` naming the current
state. Every change is audited ("queue.retry", "queue.hold", "queue.release",
"queue.purge"). A purge owes the sender a non-delivery receipt (reason
"withdrawn"), rendered by the worker. Also owns `skip_locked`, the candidate
select of every queue claim on PostgreSQL (FOR UPDATE SKIP LOCKED), so several
nodes share the work. Must not: deliver anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.model.target import DeliveryTarget
from gateway.store import audit
from gateway.store.db import utcnow, writing
from gateway.store.models import Agency, DeliveryQueueEntry, Message, MessageCopy, ReceiptJob

STATES = ("queued", "delivering", "delivered", "failed", "held")
WAITING = ("queued", "held")  # counted in the queue depth
WITHDRAWN = "withdrawn"  # the non-delivery reason of a purged entry
MAX_LIMIT = 10_000
_S = TypeVar("_S", bound=Select)  # type: ignore[type-arg]


def shares_work(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """True when several nodes may claim from this database (PostgreSQL)."""
    bind = sessions.kw.get("bind")
    return getattr(getattr(bind, "dialect", None), "name", "sqlite") != "sqlite"


def skip_locked(stmt: _S, session: AsyncSession, *of: Any) -> _S:
    """`stmt` as a claim's candidate select for several nodes: on PostgreSQL it locks
    the rows of `of` it returns and skips rows another transaction holds (FOR UPDATE
    SKIP LOCKED), so two workers never take the same rows and never wait on each
    other. SQLite keeps its single writer (the write lock), so `stmt` is unchanged."""
    if session.get_bind().dialect.name == "sqlite":
        return stmt
    return stmt.with_for_update(skip_locked=True, of=list(of) or None)


class QueueError(Exception):
    """A queue change that does not apply; the message says why."""


class UnknownEntry(QueueError):
    def __init__(self, entry_id: int) -> None:
        super().__init__(f"no delivery queue entry {entry_id}")
        self.entry_id = entry_id


class QueueStateError(QueueError):
    def __init__(self, entry_id: int, action: str, state: str, allowed: Collection[str]) -> None:
        super().__init__(
            f"cannot {action} delivery queue entry {entry_id}: it is {state}"
            f" (only {' or '.join(allowed)} entries)"
        )
        self.entry_id = entry_id
        self.state = state


@dataclass(frozen=True)
class QueueEntry:
    id: int
    state: str
    target: DeliveryTarget
    registry: str
    recipient: str
    trace_code: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    updated_at: str
    delivered_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target": self.target.column}


@dataclass(frozen=True)
class TargetDepth:
    target: DeliveryTarget
    waiting: int  # queued + held
    oldest_seconds: float  # age of the oldest waiting entry (0 when none)


def _select() -> Select[*tuple[Any, ...]]:
    return (
        select(
            DeliveryQueueEntry.id,
            DeliveryQueueEntry.state,
            DeliveryQueueEntry.target,
            Message.registry_number,
            MessageCopy.recipient,
            MessageCopy.trace_code,
            DeliveryQueueEntry.attempts,
            DeliveryQueueEntry.next_attempt_at,
            DeliveryQueueEntry.last_error,
            DeliveryQueueEntry.created_at,
            DeliveryQueueEntry.updated_at,
            DeliveryQueueEntry.delivered_at,
        )
        .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
        .join(Message, Message.id == MessageCopy.message_id)
    )


def _entry(row: Any) -> QueueEntry:
    entry_id, state, target, *rest = row
    return QueueEntry(entry_id, state, DeliveryTarget.parse(target), *rest)


def _age_seconds(stamp: str | None, now: dt.datetime) -> float:
    if not stamp:
        return 0.0
    then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return max(0.0, (now - then).total_seconds())


class QueueAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit_key: bytes) -> None:
        self._sessions = sessions
        self._audit_key = audit_key

    # ---- reading -----------------------------------------------------------------

    async def list(
        self,
        state: str | None = None,
        target: DeliveryTarget | None = None,
        limit: int = 100,
        *,
        agencies: Collection[str] | None = None,
        after: int | None = None,
    ) -> list[QueueEntry]:
        """Entries, oldest first, optionally of one state and/or target, and only of
        messages issued by `agencies` (codes) when given; `after`: ids above it only."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r} (expected one of: {', '.join(STATES)})")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        query = _select()
        if state is not None:
            query = query.where(DeliveryQueueEntry.state == state)
        if target is not None:
            query = query.where(DeliveryQueueEntry.target == target.column)
        if after is not None:
            query = query.where(DeliveryQueueEntry.id > after)
        if agencies is not None:
            issuers = select(Agency.id).where(Agency.code.in_(sorted(agencies)))
            query = query.where(Message.agency_id.in_(issuers))
        async with self._sessions() as session:
            rows = (await session.execute(query.order_by(DeliveryQueueEntry.id).limit(limit))).all()
        return [_entry(row) for row in rows]

    async def show(self, entry_id: int) -> QueueEntry:
        async with self._sessions() as session:
            return await self._get(session, entry_id)

    async def depth_by_target(self) -> dict[DeliveryTarget, TargetDepth]:
        """Per target: queued + held entries and the age of the oldest of them."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(
                        DeliveryQueueEntry.target,
                        func.count(),
                        func.min(DeliveryQueueEntry.created_at),
                    )
                    .where(DeliveryQueueEntry.state.in_(WAITING))
                    .group_by(DeliveryQueueEntry.target)
                )
            ).all()
        now = dt.datetime.now(dt.UTC)
        depths = [
            TargetDepth(DeliveryTarget.parse(target), int(count), _age_seconds(oldest, now))
            for target, count, oldest in rows
        ]
        return {depth.target: depth for depth in depths}

    # ---- changing ----------------------------------------------------------------

    async def retry(self, entry_id: int, *, actor: str = "cli") -> QueueEntry:
        """A queued or held entry becomes queued and due now."""
        now = utcnow()
        return await self._change(
            entry_id,
            "retry",
            ("queued", "held"),
            {"state": "queued", "next_attempt_at": now},
            actor=actor,
        )

    async def hold(self, entry_id: int, *, actor: str = "cli") -> QueueEntry:
        """A queued entry is set aside: the worker does not take it until released."""
        return await self._change(entry_id, "hold", ("queued",), {"state": "held"}, actor=actor)

    async def release(self, entry_id: int, *, actor: str = "cli") -> QueueEntry:
        """A held entry becomes queued and due now."""
        now = utcnow()
        return await self._change(
            entry_id,
            "release",
            ("held",),
            {"state": "queued", "next_attempt_at": now},
            actor=actor,
        )

    async def purge(self, entry_id: int, reason: str, *, actor: str = "cli") -> QueueEntry:
        """A queued or held entry fails; the sender is owed a non-delivery receipt."""
        reason = " ".join(reason.split())
        if not reason:
            raise ValueError("a reason is required")
        values = {"state": "failed", "last_error": f"withdrawn by an operator: {reason}"}
        return await self._change(
            entry_id, "purge", ("queued", "held"), values, actor=actor, reason=reason
        )

    async def _get(self, session: AsyncSession, entry_id: int) -> QueueEntry:
        row = (await session.execute(_select().where(DeliveryQueueEntry.id == entry_id))).first()
        if row is None:
            raise UnknownEntry(entry_id)
        return _entry(row)

    async def _change(
        self,
        entry_id: int,
        action: str,
        allowed: tuple[str, ...],
        values: Mapping[str, object],
        *,
        actor: str,
        reason: str | None = None,
    ) -> QueueEntry:
        now = utcnow()
        async with writing(self._sessions) as session:
            before = await self._get(session, entry_id)
            changed = (
                await session.execute(
                    update(DeliveryQueueEntry)
                    .where(DeliveryQueueEntry.id == entry_id, DeliveryQueueEntry.state.in_(allowed))
                    .values(updated_at=now, **values)
                    .returning(DeliveryQueueEntry.id)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if changed is None:
                raise QueueStateError(entry_id, action, before.state, allowed)
            if action == "purge":
                message_id = await session.scalar(
                    select(MessageCopy.message_id)
                    .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
                    .where(DeliveryQueueEntry.id == entry_id)
                )
                await session.execute(
                    insert(ReceiptJob).values(
                        message_id=message_id,
                        kind="non-delivery",
                        recipient=before.recipient,
                        reason=WITHDRAWN,
                        detail=None,
                        state="pending",
                        event_at=now,
                        done_at=None,
                    )
                )
            await audit.append(
                session,
                self._audit_key,
                actor=actor,
                action=f"queue.{action}",
                target=before.registry,
                details={
                    "entry": entry_id,
                    "recipient": before.recipient,
                    "from": before.state,
                    "reason": reason,
                },
            )
            return await self._get(session, entry_id)
