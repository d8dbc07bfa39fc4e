"""The dashboard's figures: documents accepted per day and per agency, their copies
by delivery state, the delivery queue's depth and oldest age per target kind, open
alerts, the audit chain, and when the gateway's TLS certificate and keys expire.

Owns: reading these figures for one actor, within its scope: a scoped actor
(agency administrator, registrar) counts only messages its subtree issued and
queue entries of those messages; alerts and the audit chain are read only by
the roles that may read them, the gateway's credentials only by unscoped roles
(otherwise None, not an error). Must not: write
anything or lay anything out (admin.web renders).

Failure behaviour: a role that may not read messages gets `Forbidden`; a database
that cannot be reached gives `Unavailable`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.context import App
from admin.services import alerts, audit
from admin.services.actor import SCOPED_ROLES, Actor, Area, may
from admin.services.errors import Unavailable
from admin.services.model import Frozen
from admin.services.scope import actor_subtree, check, home_path, tree
from gateway.store.db import iso
from gateway.store.errors import DATABASE_ERRORS
from gateway.store.models import Agency, DeliveryQueueEntry, Message, MessageCopy
from gateway.store.queue import WAITING
from keys import expiry

DAYS = 30
TOP_AGENCIES = 10
RECENT_ALERTS = 5
EXPIRY_WARNING_DAYS = 30
COPY_STATES = ("queued", "delivering", "held", "delivered", "failed")


class DayCount(Frozen):
    day: str  # YYYY-MM-DD (UTC)
    count: int


class AgencyCount(Frozen):
    agency: str
    name_en: str
    name_ar: str
    count: int


class QueueFigure(Frozen):
    kind: str  # the target kind: local, peer or imap
    depth: int  # entries waiting (queued or held)
    oldest_seconds: int  # age of the oldest waiting entry


class StateCount(Frozen):
    state: str  # a delivery state of COPY_STATES
    count: int


class CredentialFigure(Frozen):
    kind: str  # tls | signing | signing-retired | dkim-rsa | dkim-ed25519
    name: str  # the certificate's subject, or the key's id or file
    not_after: str | None  # ISO time; None: no expiry date (tls: also unreadable)
    days_left: int | None
    soon: bool  # expires within EXPIRY_WARNING_DAYS (or has expired)
    since: str | None  # the file's last change (created or rotated)
    readable: bool = True


class Dashboard(Frozen):
    days: list[DayCount]  # the last DAYS days, oldest first, empty days included
    agencies: list[AgencyCount]  # the busiest TOP_AGENCIES over those days
    copies: list[StateCount]  # copies of those days' messages by delivery state
    queue: list[QueueFigure] | None  # None: the role may not read the queue
    alerts: list[alerts.AlertView] | None  # open alerts, newest first; None: may not
    chain: audit.ChainReport | None  # None: the role may not verify the chain
    credentials: list[CredentialFigure] | None  # None: a scoped role


def _scoped(query: Select, agencies: Collection[str] | None) -> Select:  # type: ignore[type-arg]
    if agencies is None:
        return query
    return query.where(Agency.code.in_(sorted(agencies)))


async def _days(
    session: AsyncSession, agencies: Collection[str] | None, today: dt.date
) -> list[DayCount]:
    first = today - dt.timedelta(days=DAYS - 1)
    since = iso(dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC))
    day = func.substr(Message.accepted_at, 1, 10)
    query = (
        select(day, func.count())
        .join(Agency, Agency.id == Message.agency_id)
        .where(Message.accepted_at >= since)
        .group_by(day)
    )
    counts = {str(d): int(n) for d, n in (await session.execute(_scoped(query, agencies))).all()}
    every = [(first + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    return [DayCount(day=d, count=counts.get(d, 0)) for d in every]


async def _agencies(
    session: AsyncSession, agencies: Collection[str] | None, since: str
) -> list[AgencyCount]:
    count = func.count(Message.id)
    query = (
        select(Agency.code, Agency.name_en, Agency.name_ar, count)
        .join(Message, Message.agency_id == Agency.id)
        .where(Message.accepted_at >= since)
        .group_by(Agency.code, Agency.name_en, Agency.name_ar)
        .order_by(count.desc(), Agency.code)
        .limit(TOP_AGENCIES)
    )
    rows = (await session.execute(_scoped(query, agencies))).all()
    return [AgencyCount(agency=c, name_en=en, name_ar=ar, count=int(n)) for c, en, ar, n in rows]


async def _queue(
    session: AsyncSession, agencies: Collection[str] | None, now: dt.datetime
) -> list[QueueFigure]:
    query = (
        select(DeliveryQueueEntry.target, func.count(), func.min(DeliveryQueueEntry.created_at))
        .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
        .join(Message, Message.id == MessageCopy.message_id)
        .join(Agency, Agency.id == Message.agency_id)
        .where(DeliveryQueueEntry.state.in_(WAITING))
        .group_by(DeliveryQueueEntry.target)
    )
    figures: dict[str, tuple[int, str]] = {}
    for target, depth, oldest in (await session.execute(_scoped(query, agencies))).all():
        kind = str(target).partition(":")[0]
        before = figures.get(kind, (0, str(oldest)))
        figures[kind] = (before[0] + int(depth), min(before[1], str(oldest)))
    return [
        QueueFigure(kind=kind, depth=depth, oldest_seconds=_age(now, oldest))
        for kind, (depth, oldest) in sorted(figures.items())
    ]


async def _copies(
    session: AsyncSession, agencies: Collection[str] | None, since: str
) -> list[StateCount]:
    query = (
        select(DeliveryQueueEntry.state, func.count())
        .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
        .join(Message, Message.id == MessageCopy.message_id)
        .join(Agency, Agency.id == Message.agency_id)
        .where(Message.accepted_at >= since)
        .group_by(DeliveryQueueEntry.state)
    )
    counts = {str(s): int(n) for s, n in (await session.execute(_scoped(query, agencies))).all()}
    return [StateCount(state=state, count=counts.get(state, 0)) for state in COPY_STATES]


def _figure(found: expiry.Credential, now: dt.datetime) -> CredentialFigure:
    since = iso(found.since) if found.since else None
    if found.not_after is None:
        return CredentialFigure(kind=found.kind, name=found.name, not_after=None,
                                days_left=None, soon=False, since=since)  # fmt: skip
    left = (found.not_after - now).days
    return CredentialFigure(kind=found.kind, name=found.name, not_after=iso(found.not_after),
                            days_left=left, soon=left < EXPIRY_WARNING_DAYS,
                            since=since)  # fmt: skip


def credentials(app: App, now: dt.datetime) -> list[CredentialFigure]:
    """The TLS certificate (or that it cannot be read) and the gateway's key files."""
    cert = expiry.tls_certificate(app.settings.tls_cert)
    if cert is None:
        tls = CredentialFigure(kind="tls", name=app.settings.tls_cert.name, not_after=None,
                               days_left=None, soon=True, since=None, readable=False)  # fmt: skip
    else:
        tls = _figure(cert, now)
    return [tls] + [_figure(found, now) for found in expiry.key_files(app.keys)]


def _age(now: dt.datetime, stamp: str) -> int:
    then = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0, int((now - then).total_seconds()))


async def dashboard(actor: Actor, app: App, *, now: dt.datetime | None = None) -> Dashboard:
    """The figures `actor` may see, as of `now` (the current time by default)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        agencies_tree = await tree(app)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    home = home_path(actor, agencies_tree)
    check(actor, Area.MESSAGES, write=False, path=home)
    subtree = actor_subtree(actor, agencies_tree)
    first = now.date() - dt.timedelta(days=DAYS - 1)
    since = iso(dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC))
    try:
        async with app.sessions() as session:
            days = await _days(session, subtree, now.date())
            busiest = await _agencies(session, subtree, since)
            copies = await _copies(session, subtree, since)
            queue = None
            if may(actor, Area.QUEUE, write=False, agency_path=home):
                queue = await _queue(session, subtree, now)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    open_alerts = None
    if may(actor, Area.ALERTS, write=False, agency_path=None):
        query = alerts.AlertQuery(acknowledged=False, limit=RECENT_ALERTS)
        open_alerts = await alerts.list_alerts(actor, app, query, now=now)
    chain = None
    if may(actor, Area.AUDIT, write=False, agency_path=None):
        chain = await audit.verify_chain(actor, app)
    held = None if actor.role in SCOPED_ROLES or actor.agency else credentials(app, now)
    return Dashboard(days=days, agencies=busiest, copies=copies, queue=queue,
                     alerts=open_alerts, chain=chain, credentials=held)  # fmt: skip
