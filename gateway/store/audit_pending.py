"""Audit events staged without the chain's head lock (PostgreSQL), until linked.

Owns: the `audit_pending` rows: `stage` (events inserted in the caller's
transaction, each with a MAC of the event alone), `take` (every committed
staged event, oldest first, removed for linking by a transaction that holds the
head) and `tail` (their count and the ones whose MAC no longer matches, for
`audit.verify`). Must not: take the head lock or write the chain (gateway.store.audit
does both).

Why: a chained append locks the single `audit_head` row until its transaction
commits, so audited transactions were serialised across every node sharing the
database. On PostgreSQL `audit.append_many` tries the head with SKIP LOCKED:
free, the events are chained at once (after the staged backlog); held by another
transaction, they are staged here and the transaction goes on without waiting.
The next transaction that holds the head (any append, the gateway's periodic
linker, gateway.serve.audit_linker) links them, oldest first. A staged row commits
or rolls back with the change it records, so the chain stays gap-free and chain
ids are still given in commit order, under the head lock.

A staged event is not in the chain yet: deleting one before it is linked (about a
second with the linker running) goes unseen; changing one is detected (its MAC
is checked when linked and by `verify`). The MAC is HMAC(audit key, canonical JSON
of ["barid-audit-pending/v1", id, at, actor, action, target, outcome, details, node]).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import AuditPending

PENDING_LABEL = "barid-audit-pending/v1"
TAKE_BATCH = 5000  # staged events linked per transaction at most
_IDS = "SELECT nextval(pg_get_serial_sequence('audit_pending', 'id')) FROM generate_series(1, :n)"


@dataclass(frozen=True)
class Item:
    """One event's facts, ready for the chain (details as canonical JSON)."""

    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: str
    node: str


def pending_mac(key: bytes, pending_id: int, item: Item) -> str:
    body = json.dumps(
        [PENDING_LABEL, pending_id, item.at, item.actor, item.action, item.target,
         item.outcome, item.details, item.node],
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def _item(row: AuditPending) -> Item:
    return Item(row.at, row.actor, row.action, row.target, row.outcome, row.details, row.node)


async def stage(session: AsyncSession, key: bytes, items: Sequence[Item]) -> None:
    """Insert `items` in the caller's transaction, in order; no lock is taken."""
    ids = (await session.execute(text(_IDS), {"n": len(items)})).scalars().all()
    session.add_all(
        AuditPending(id=pending_id, at=item.at, actor=item.actor, action=item.action,
                     target=item.target, outcome=item.outcome, details=item.details,
                     node=item.node, mac=pending_mac(key, pending_id, item))
        for pending_id, item in zip(sorted(ids), items, strict=True)
    )  # fmt: skip
    await session.flush()


async def take(session: AsyncSession, key: bytes) -> tuple[list[Item], list[int]]:
    """The committed staged events, oldest first, removed in this transaction (which
    must hold the head); and the staged ids among them whose MAC did not match."""
    rows = (
        await session.scalars(
            select(AuditPending)
            .order_by(AuditPending.id)
            .limit(TAKE_BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return [], []
    await session.execute(
        delete(AuditPending)
        .where(AuditPending.id.in_([row.id for row in rows]))
        .execution_options(synchronize_session=False)
    )
    changed = [row.id for row in rows if not _intact(key, row)]
    return [_item(row) for row in rows], changed


async def tail(session: AsyncSession, key: bytes) -> tuple[int, list[int]]:
    """How many events wait to be linked, and the ids of those whose MAC fails."""
    count = int(await session.scalar(select(func.count()).select_from(AuditPending)) or 0)
    if not count:
        return 0, []
    rows = (await session.scalars(select(AuditPending).order_by(AuditPending.id))).all()
    return count, [r.id for r in rows if not _intact(key, r)]


def _intact(key: bytes, row: AuditPending) -> bool:
    return hmac.compare_digest(row.mac, pending_mac(key, row.id, _item(row)))
