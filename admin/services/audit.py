"""Audit use cases: query audit events, verify the chain and its signed checkpoints,
write a checkpoint on demand, query the access trail.

Owns: one function per use case, each taking the `Actor` first. Scoping: an
agency-admin's event query returns only events about its subtree (target an
agency of it, an employee of it, or a message it issued; events with no such
target, e.g. policy or import events, are not shown), and its access-trail query
only fetches of messages its subtree issued or by its employees. The chain is
global: verifying it is for unscoped roles (a scoped actor gets OutOfScope);
writing a checkpoint is a change, for system-admin only. Must not: write
anything but a checkpoint (its audit event and signed row).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from admin.context import App
from admin.services.actor import Actor, Area
from admin.services.errors import InvalidInput, Unavailable
from admin.services.model import Frozen
from admin.services.scope import acting, actor_subtree, check, home_path, tree
from gateway.stamping.trace import normalize as normalize_trace
from gateway.store import audit, audit_checkpoints
from gateway.store.access_trail import AccessEntry, access_entries, parse_since
from gateway.store.db import transaction
from gateway.store.directory.scope import employees_of
from gateway.store.errors import DATABASE_ERRORS

__all__ = [
    "AccessEntry",
    "AccessQuery",
    "AuditEventView",
    "AuditQuery",
    "ChainReport",
    "CheckpointView",
    "PolicyHit",
    "PolicyHitQuery",
    "access_trail",
    "checkpoint",
    "policy_hits",
    "query_events",
    "signed_checkpoint",
    "verify_chain",
]

T = TypeVar("T")

MAX_EVENTS = 10_000
MAX_ACCESSES = 100_000


class AuditQuery(Frozen):
    action: str | None = None
    since: str | None = None  # ISO 8601 date or date-time (UTC unless given), or 24h, 7d
    limit: int = 50
    actor: str | None = None  # the acting account, exactly as recorded
    until: str | None = None  # as `since`, exclusive
    before: int | None = None  # only events with a lower id (the paging position)
    newest_first: bool = False


class AuditEventView(Frozen):
    id: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]
    node: str | None = None  # the gateway node that appended it (None: before nodes)


class ChainReport(Frozen):
    ok: bool
    events: int
    checkpoints: int  # signed checkpoints checked
    head_sealed: bool  # the head row carries a MAC
    problems: list[str]
    staged: int = 0  # of `events`, appended but not chained yet (PostgreSQL, about a second)


class CheckpointView(Frozen):
    """A signed checkpoint: event `event_id` had MAC `event_mac`, `count` events."""

    event_id: int
    event_mac: str
    count: int
    at: str
    node: str
    key_id: str
    signature: str


class AccessQuery(Frozen):
    registry: str | None = None
    employee: str | None = None
    trace: str | None = None  # as typed: case, confusables and spacing are forgiven
    since: str | None = None  # ISO 8601 date or date-time, or a span back: 24h, 7d
    limit: int = 1000
    until: str | None = None  # as `since`, exclusive
    before: int | None = None  # only events with a lower id (the paging position)
    newest_first: bool = False


class PolicyHitQuery(Frozen):
    rule: str | None = None
    since: str | None = None  # ISO 8601 date or date-time, or a span back: 24h, 7d
    limit: int = 1000
    before: int | None = None  # only events with a lower id (the paging position)
    newest_first: bool = False


class PolicyHit(Frozen):
    """One audit-mode policy match, as its "policy.audit-hit" audit event records it."""

    event_id: int
    at: str
    rule: str
    sender: str
    recipient: str
    registry: str | None  # None when the message was refused
    outcome: str  # "accepted" or "refused"


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[message])


def _time(name: str, value: str | None, now: dt.datetime | None) -> str | None:
    """Stored-time text for a `since`/`until` filter (see `parse_since`)."""
    if value is None:
        return None
    try:
        return parse_since(value, now or dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise _invalid(f"{name}: {exc}") from None


def _ordered(items: list[T], newest_first: bool) -> list[T]:
    return items[::-1] if newest_first else items


def _limit(value: int, highest: int) -> int:
    if not 1 <= value <= highest:
        raise _invalid(f"limit must be between 1 and {highest}")
    return value


async def query_events(
    actor: Actor, app: App, query: AuditQuery, *, now: dt.datetime | None = None
) -> list[AuditEventView]:
    """The newest events (newest last, or first with `newest_first`); a scoped
    actor's only about its subtree."""
    agencies = await tree(app)
    check(actor, Area.AUDIT, write=False, path=home_path(actor, agencies))
    limit = _limit(query.limit, MAX_EVENTS)
    since, until = _time("since", query.since, now), _time("until", query.until, now)
    try:
        async with app.sessions() as session:
            rows = await audit.recent(
                session,
                action=query.action,
                since=since,
                limit=limit,
                agencies=actor_subtree(actor, agencies),
                actor=query.actor,
                until=until,
                before=query.before,
            )
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return _ordered([AuditEventView(**row) for row in rows], query.newest_first)


async def verify_chain(actor: Actor, app: App) -> ChainReport:
    """Walk the whole audit chain, its authenticated head and every signed checkpoint;
    every changed, missing or reordered event, rewritten head or forged checkpoint
    is reported."""
    check(actor, Area.AUDIT, write=False, path=None)
    try:
        async with app.sessions() as session:
            report = await audit.verify(session, app.audit_key)
            count, problems = await audit_checkpoints.verify_checkpoints(
                session, app.keys.verification_keys
            )
            head_sealed = await audit.head_sealed(session)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return ChainReport(
        ok=report.ok and not problems,
        events=report.events,
        checkpoints=count,
        head_sealed=head_sealed,
        problems=report.problems + problems,
        staged=report.staged,
    )


async def checkpoint(actor: Actor, app: App) -> CheckpointView:
    """Sign a checkpoint of the chain now (the gateway also writes them periodically)."""
    check(actor, Area.AUDIT, write=True, path=None)
    return await signed_checkpoint(actor, app)


async def signed_checkpoint(actor: Actor, app: App) -> CheckpointView:
    """Write a signed checkpoint as `actor` (the caller has checked the actor may:
    `checkpoint` for its own sake, `audit_archive.export_archive` for an export's end)."""
    try:
        with acting(actor):
            async with transaction(app.sessions) as session:
                facts = await audit_checkpoints.write_checkpoint(
                    session,
                    app.audit_key,
                    app.keys.signing_key,
                    app.keys.signing_key_id,
                    node=app.settings.server.hostname,
                    actor=actor.audit_name,
                )
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return CheckpointView(**facts.as_dict())


def _filter(name: str, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise _invalid(f"{name} must not be empty")
    return value


async def access_trail(
    actor: Actor, app: App, query: AccessQuery, *, now: dt.datetime | None = None
) -> list[AccessEntry]:
    """Who fetched which official message, oldest first (the newest `limit`; newest
    first with `newest_first`); a scoped actor's only about its subtree."""
    agencies = await tree(app)
    check(actor, Area.ACCESS_TRAIL, write=False, path=home_path(actor, agencies))
    registry = _filter("registry", query.registry)
    employee = _filter("employee", query.employee)
    trace = _filter("trace", query.trace)
    since, until = _time("since", query.since, now), _time("until", query.until, now)
    if trace is not None:
        trace = normalize_trace(trace) or trace
    limit = _limit(query.limit, MAX_ACCESSES)
    subtree = actor_subtree(actor, agencies)
    newest_first: list[AccessEntry] = []
    before = query.before
    async with app.sessions() as session:
        # A scoped actor's entries are picked from batches until `limit` are found.
        while len(newest_first) < limit:
            batch = await access_entries(
                session, registry=registry, employee=employee, trace=trace, since=since,
                until=until, before=before, limit=limit,
            )  # fmt: skip
            batch.reverse()
            newest_first += await _visible(session, batch, subtree)
            if len(batch) < limit:
                break
            before = batch[-1].event_id
    kept = newest_first[:limit]
    return kept if query.newest_first else kept[::-1]


async def _visible(
    session: AsyncSession, entries: list[AccessEntry], subtree: frozenset[str] | None
) -> list[AccessEntry]:
    """The entries a scoped actor may see: its subtree's messages or its employees'."""
    if subtree is None:
        return entries
    staff = await employees_of(session, {e.employee for e in entries}, subtree)
    return [e for e in entries if e.registry.split("/", 1)[0] in subtree or e.employee in staff]


async def policy_hits(
    actor: Actor, app: App, query: PolicyHitQuery, *, now: dt.datetime | None = None
) -> list[PolicyHit]:
    """Audit-mode policy matches (newest `limit`, oldest first), optionally of one rule
    or since a time; a scoped actor's only about its subtree (its messages, its senders)."""
    agencies = await tree(app)
    check(actor, Area.AUDIT, write=False, path=home_path(actor, agencies))
    rule = _filter("rule", query.rule)
    since = _time("since", query.since, now)
    limit = _limit(query.limit, MAX_EVENTS)
    try:
        async with app.sessions() as session:
            rows = await audit.recent(
                session,
                action=audit.POLICY_AUDIT_HIT,
                since=since,
                limit=limit,
                agencies=actor_subtree(actor, agencies),
                rule=rule.strip() if rule is not None else None,
                before=query.before,
            )
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return _ordered([_policy_hit(row) for row in rows], query.newest_first)


def _policy_hit(row: dict[str, Any]) -> PolicyHit:
    details = row["details"]
    registry = details.get("registry")
    return PolicyHit(
        event_id=row["id"],
        at=row["at"],
        rule=str(details.get("rule", "")),
        sender=str(details.get("sender", "")),
        recipient=str(details.get("recipient", "")),
        registry=str(registry) if registry else None,
        outcome="accepted" if registry else "refused",
    )
