"""The append-only audit trail: a keyed hash chain over every event.

Owns: appending events (inside the caller's transaction, so an event commits
with the change it records) and verifying the whole chain. Must not: log
secrets; `details` is for facts (codes, fingerprints, reasons), never passwords.

Each event's MAC is HMAC-SHA256(audit key, canonical JSON of [id, at, actor,
action, target, outcome, details, prev_mac]). Ids are consecutive; the single
`audit_head` row holds the newest id, MAC and count, and is row-locked by every
transaction that chains events, so chain ids are given in commit order. On
SQLite every append chains (one writer anyway). On PostgreSQL `append_many`
(the hot paths: deliveries, IMAP access records, acceptances, the relay) does
not wait for the head: when another transaction holds it, its events are staged
(gateway.store.audit_pending, each with a MAC of its own) and chained, oldest
first, by the next transaction that holds the head or by the gateway's linker
(gateway.serve.audit_linker), about a second later; `verify` counts them as
staged. `append` (one event, returned with its id and MAC) always chains. The head row
is itself authenticated: its `mac` is HMAC(audit key, ["barid-audit-head/v1",
last_id, last_mac, count, seq, sealed_at]), `seq` counting every head write. A
changed, deleted, inserted or reordered event, a truncated tail, or a head row
rewritten from values in the table breaks verification. The audit key is derived
from the gateway's master key (keys.gateway_keys), so rewriting the chain needs
that key, not only database access (signed checkpoints, audit_checkpoints.py,
go further: they need the signing key).

Unsealed heads: a database migrated from before the head MAC has none until
`seal_head` (run by `barid init`) or the first append seals it; verification
accepts an unsealed head only while nothing shows a seal ever existed (the
"audit_head_sealed" meta row, a checkpoint row, or a checkpoint event). An
append never launders a head whose MAC is wrong: it keeps the head marked
broken (BROKEN_HEAD_MAC), so the break stays visible to `verify`.

Nodes: every event records the node that appended it (`node`, the gateway's
`server.node_id`, set once per process by `set_node`; the host name until then).
An event with a node has it in its MAC as a ninth element; events from before
the column (node NULL) keep their eight-element MAC, so old chains still verify
and a node added to or removed from an event breaks it.

`acting(...)` names who acts beyond the `actor` string (role, client address,
channel): every event appended inside it carries those facts under "acting".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import audit_pending
from gateway.store.db import utcnow
from gateway.store.models import (
    Agency,
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    AuditPending,
    Employee,
    Meta,
)

log = logging.getLogger("barid.audit")
GENESIS_MAC = "0" * 64
HEAD_LABEL = "barid-audit-head/v1"
SEALED_MARKER = "audit_head_sealed"  # meta row written when a head is first sealed
BROKEN_HEAD_MAC = "broken"  # a head found tampered with stays so (never a valid MAC)
CHECKPOINT_ACTION = "audit.checkpoint"  # the event each signed checkpoint covers
AUDIT_KEY_PURPOSE = "audit-chain"  # HKDF purpose of the chain's MAC key (keys.derive_key)
VERIFY_BATCH = 2000
# An audit-mode policy rule matched one recipient of a submission (details: rule,
# sender, recipient, registry when accepted; target: the registry, else the sender).
POLICY_AUDIT_HIT = "policy.audit-hit"
# Staged events whose MAC failed when they were chained (details: staged_ids).
PENDING_CHANGED = "audit.staged-changed"

_NODE = {"id": (socket.gethostname() or "node")[:64]}


def set_node(node_id: str) -> None:
    """Name this process's node in the events it appends (at start, from the config)."""
    _NODE["id"] = node_id[:64]


def node() -> str:
    return _NODE["id"]


_ACTING: ContextVar[Mapping[str, Any] | None] = ContextVar("barid_audit_acting", default=None)


@contextmanager
def acting(facts: Mapping[str, Any]) -> Iterator[None]:
    """Events appended in this block (same task) carry `facts` under details["acting"]."""
    token = _ACTING.set(dict(facts))
    try:
        yield
    finally:
        _ACTING.reset(token)


def _with_acting(details: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    facts = _ACTING.get()
    if not facts:
        return details
    merged = dict(details or {})
    merged.setdefault("acting", dict(facts))
    return merged


def canonical_details(details: Mapping[str, Any] | None) -> str:
    return json.dumps(
        dict(details or {}), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


def event_mac(
    key: bytes,
    *,
    event_id: int,
    at: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: str,
    prev_mac: str,
    node: str | None = None,
) -> str:
    fields: list[object] = [event_id, at, actor, action, target, outcome, details, prev_mac]
    if node is not None:
        fields.append(node)
    body = json.dumps(
        fields,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def head_mac(
    key: bytes, *, last_id: int, last_mac: str, count: int, seq: int, sealed_at: str | None
) -> str:
    """The head row's MAC (domain-separated from event MACs by its label)."""
    body = json.dumps(
        [HEAD_LABEL, last_id, last_mac, count, seq, sealed_at],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def _expected_head_mac(key: bytes, head: AuditHead) -> str:
    return head_mac(
        key,
        last_id=head.last_id,
        last_mac=head.last_mac,
        count=head.count,
        seq=head.seq,
        sealed_at=head.sealed_at,
    )


async def seal_evidence(session: AsyncSession) -> bool:
    """True when something shows the head was sealed once (so it must be sealed now)."""
    marker = await session.scalar(select(Meta.value).where(Meta.key == SEALED_MARKER))
    if marker is not None:
        return True
    checkpoint = await session.scalar(select(AuditCheckpoint.id).limit(1))
    if checkpoint is not None:
        return True
    event = await session.scalar(
        select(AuditEvent.id).where(AuditEvent.action == CHECKPOINT_ACTION).limit(1)
    )
    return event is not None


async def _head_intact(session: AsyncSession, key: bytes, head: AuditHead) -> bool:
    """The head as last written by an append: a valid MAC, or never sealed."""
    if head.mac is None:
        return not await seal_evidence(session)
    return hmac.compare_digest(head.mac, _expected_head_mac(key, head))


async def _locked_head(session: AsyncSession) -> AuditHead:
    head = await session.get(AuditHead, 1, with_for_update=True)
    if head is None:  # pragma: no cover - the first migration creates it
        raise RuntimeError("audit_head row missing: run the migrations")
    return head


async def _reseal(
    session: AsyncSession, key: bytes, head: AuditHead, *, intact: bool, at: str
) -> None:
    """After the head moved: a fresh MAC when it was intact, else keep it broken."""
    first_seal = head.mac is None
    head.seq = (head.seq or 0) + 1
    head.sealed_at = at
    if not intact:
        log.error("audit head found rewritten; it stays marked broken until investigated")
        head.mac = BROKEN_HEAD_MAC
        return
    head.mac = _expected_head_mac(key, head)
    if first_seal and not await session.scalar(select(Meta.value).where(Meta.key == SEALED_MARKER)):
        session.add(Meta(key=SEALED_MARKER, value=1))


async def chain_length(session: AsyncSession) -> int:
    """The newest event id the head records (0: no event yet)."""
    head = await session.get(AuditHead, 1)
    return head.last_id if head is not None else 0


async def head_sealed(session: AsyncSession) -> bool:
    head = await session.get(AuditHead, 1)
    return head is not None and head.mac is not None


async def seal_head(session: AsyncSession, key: bytes) -> bool:
    """Seal a head that has no MAC yet (after the upgrade); True when it did.

    Idempotent; a head whose seal was removed (evidence of a seal exists) is left
    unsealed, for `verify` to report."""
    head = await _locked_head(session)
    if head.mac is not None or await seal_evidence(session):
        return False
    await _reseal(session, key, head, intact=True, at=utcnow())
    await session.flush()
    return True


async def append(
    session: AsyncSession,
    key: bytes,
    *,
    actor: str,
    action: str,
    target: str = "",
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the session's open transaction, in the chain at once
    (waiting for the head); returns it (flushed)."""
    item = _item(Event(actor, action, target, outcome, details))
    rows = await _chain(session, key, await _locked_head(session), [item])
    return AuditEvent(**rows[-1])


@dataclass(frozen=True)
class Event:
    """One event to append with `append_many`."""

    actor: str
    action: str
    target: str = ""
    outcome: str = "ok"
    details: Mapping[str, Any] | None = None


def _item(event: Event) -> audit_pending.Item:
    details = canonical_details(_with_acting(event.details))
    return audit_pending.Item(
        utcnow(), event.actor, event.action, event.target, event.outcome, details, node()
    )


async def append_many(session: AsyncSession, key: bytes, events: Sequence[Event]) -> None:
    """Append `events` in order in the session's transaction, with one insert.

    SQLite: in the chain at once (the head lock). PostgreSQL: in the chain at once
    when no other transaction holds the head; else staged (gateway.store.audit_pending)
    without waiting, to be linked by the next transaction that holds it."""
    if not events:
        return
    items = [_item(event) for event in events]
    if _postgres(session):
        head = await session.get(
            AuditHead, 1, with_for_update={"skip_locked": True}, populate_existing=True
        )
        if head is None:  # another transaction holds it (the row always exists)
            await audit_pending.stage(session, key, items)
            return
    else:
        head = await _locked_head(session)
    await _chain(session, key, head, items)


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _chain(
    session: AsyncSession, key: bytes, head: AuditHead, items: list[audit_pending.Item]
) -> list[dict[str, Any]]:
    """Chain the staged backlog (PostgreSQL), then `items`, after the locked head."""
    intact = await _head_intact(session, key, head)
    if _postgres(session):
        backlog, changed = await audit_pending.take(session, key)
        if changed:
            log.error("staged audit events changed before they were chained: %s", changed[:20])
            backlog.append(_item(Event("gateway", PENDING_CHANGED, outcome="failed",
                                       details={"staged_ids": changed[:100]})))  # fmt: skip
        items = backlog + items
    if not items:
        return []
    rows = []
    prev, event_id = head.last_mac, head.last_id
    for item in items:
        event_id += 1
        mac = event_mac(key, event_id=event_id, prev_mac=prev, **asdict(item))
        rows.append({"id": event_id, "at": item.at, "actor": item.actor, "action": item.action,
                     "target": item.target, "outcome": item.outcome, "details": item.details,
                     "prev_mac": prev, "mac": mac, "node": item.node})  # fmt: skip
        prev = mac
    await session.execute(insert(AuditEvent), rows)
    head.last_id, head.last_mac, head.count = event_id, prev, head.count + len(rows)
    await _reseal(session, key, head, intact=intact, at=str(rows[-1]["at"]))
    await session.flush()
    return rows


async def link_pending(session: AsyncSession, key: bytes) -> int:
    """Chain the staged backlog now (PostgreSQL; waits for the head): how many."""
    if not _postgres(session):
        return 0
    if not await session.scalar(select(AuditPending.id).limit(1)):
        return 0
    return len(await _chain(session, key, await _locked_head(session), []))


@dataclass
class AuditReport:
    events: int = 0  # in the chain, plus `staged`
    problems: list[str] = field(default_factory=list)
    staged: int = 0  # PostgreSQL: appended, not chained yet (gateway.store.audit_pending)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(session: AsyncSession, key: bytes, *, max_problems: int = 20) -> AuditReport:
    """Walk the whole chain in id order, then check the head row and its MAC, then
    the staged events' MACs (PostgreSQL); report every break (up to max_problems)."""
    report = AuditReport()
    last_id, prev = await _walk_chain(session, key, report, max_problems)
    await _check_head(session, key, report, last_id=last_id, last_mac=prev)
    if _postgres(session):
        report.staged, changed = await audit_pending.tail(session, key)
        report.events += report.staged
        report.problems += [f"staged event {i}: content changed (MAC mismatch)" for i in changed]
    return report


async def _walk_chain(
    session: AsyncSession, key: bytes, report: AuditReport, max_problems: int
) -> tuple[int, str]:
    """Every event in id order: consecutive ids, links and MACs. The last id and MAC."""
    expected_id = 1
    prev = GENESIS_MAC
    last_id = 0
    while len(report.problems) < max_problems:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(VERIFY_BATCH)
            )
        ).all()
        if not rows:
            break
        for ev in rows:
            report.events += 1
            if ev.id != expected_id:
                report.problems.append(f"event {expected_id}: missing (next event is {ev.id})")
            if ev.prev_mac != prev:
                report.problems.append(f"event {ev.id}: does not follow the event before it")
            mac = event_mac(
                key,
                event_id=ev.id,
                at=ev.at,
                actor=ev.actor,
                action=ev.action,
                target=ev.target,
                outcome=ev.outcome,
                details=ev.details,
                prev_mac=ev.prev_mac,
                node=ev.node,
            )
            if not hmac.compare_digest(mac, ev.mac):
                report.problems.append(f"event {ev.id}: content changed (MAC mismatch)")
            prev = ev.mac
            expected_id = ev.id + 1
            last_id = ev.id
    return last_id, prev


async def _check_head(
    session: AsyncSession, key: bytes, report: AuditReport, *, last_id: int, last_mac: str
) -> None:
    head = await session.get(AuditHead, 1)
    if head is None:
        report.problems.append("audit head missing")
        return
    if head.mac is None:
        if await seal_evidence(session):
            report.problems.append("audit head is not sealed, but was sealed before (MAC removed)")
    elif not hmac.compare_digest(head.mac, _expected_head_mac(key, head)):
        report.problems.append(
            "audit head MAC mismatch: the head row was rewritten without the audit key"
        )
    if head.last_id != last_id or head.last_mac != last_mac:
        report.problems.append(
            f"chain ends at event {last_id} but the head records event {head.last_id}"
            " (events deleted from the end?)"
        )
    if head.count != report.events:
        report.problems.append(f"head counts {head.count} events, found {report.events}")


def about_agencies(codes: Collection[str]) -> ColumnElement[bool]:
    """Events whose target is one of these agencies, an employee of one of them, or a
    message one of them issued (registry numbers start with the agency code and "/")."""
    ordered = sorted(codes)
    staff = (
        select(Employee.address)
        .join(Agency, Agency.id == Employee.agency_id)
        .where(Agency.code.in_(ordered))
    )
    return or_(
        AuditEvent.target.in_(ordered),
        AuditEvent.target.in_(staff),
        *(AuditEvent.target.startswith(f"{code}/", autoescape=True) for code in ordered),
    )


async def recent(
    session: AsyncSession,
    *,
    action: str | None = None,
    since: str | None = None,
    limit: int = 50,
    agencies: Collection[str] | None = None,
    rule: str | None = None,
    actor: str | None = None,
    until: str | None = None,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """The newest `limit` events (optionally one action, or since an ISO time, or only
    about `agencies`: see `about_agencies`, or naming policy `rule` in their
    details, or of one `actor`, or before `until` (exclusive), or with an id below
    `before`: the paging position), oldest first."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    if rule is not None:
        needle = canonical_details({"rule": rule})[1:-1]  # '"rule":"<id>"'
        stmt = stmt.where(AuditEvent.details.contains(needle, autoescape=True))
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if agencies is not None:
        stmt = stmt.where(about_agencies(agencies))
    rows = (await session.scalars(stmt)).all()
    return [
        {
            "id": ev.id,
            "at": ev.at,
            "actor": ev.actor,
            "action": ev.action,
            "target": ev.target,
            "outcome": ev.outcome,
            "details": json.loads(ev.details),
            "node": ev.node,
        }
        for ev in reversed(rows)
    ]
