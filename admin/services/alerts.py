"""Alert use cases: list the alerts the gateway raised, acknowledge one, run the
alert rules on demand.

Owns: listing alerts (newest first, by kind, time and acknowledgement) and acknowledging one
with an "alert.ack" audit event. Alerts belong to no agency: system-admin and
security-auditor read and acknowledge them (the auditor's one change), other
roles get Forbidden. Must not: show anything of an event's details beyond the
named facts, or write anything but the acknowledgement, or name alert kinds (the
one table of them is gateway.alerts.kinds). Failure behaviour: an
unknown id, or the id of an event that is not an alert, is NotFound; bad input
is InvalidInput and changes nothing; acknowledging twice writes nothing more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from admin.context import App
from admin.services.actor import Actor, Area
from admin.services.errors import InvalidInput, NotFound, Unavailable
from admin.services.model import Frozen
from admin.services.scope import acting, check
from gateway.alerts.evaluator import AlertEvaluator
from gateway.alerts.kinds import ACTION_OF, KINDS, AlertKind, KindInfo
from gateway.alerts.progress import Progress
from gateway.serve.alert_mailer import standalone_mailer
from gateway.store import audit_alerts
from gateway.store.access_trail import parse_since
from gateway.store.db import transaction
from gateway.store.errors import DATABASE_ERRORS

__all__ = [
    "ACK_ACTION",
    "KINDS",
    "Acknowledgement",
    "AlertKind",
    "AlertQuery",
    "AlertView",
    "acknowledge",
    "list_alerts",
    "scan",
]

ACK_ACTION = audit_alerts.ACK_ACTION
MAX_ALERTS = 1000
MAX_NOTE = 500
MAX_TEXT = 300  # a longer fact (a peer's error reply) is cut here
MAX_ITEMS = 10
MAX_ID = 2**62


_ACTION_OF = ACTION_OF


class AlertQuery(Frozen):
    kind: AlertKind | None = None
    since: str | None = None  # ISO 8601 date or date-time (UTC unless given), or 24h, 7d
    until: str | None = None  # as `since`, exclusive
    acknowledged: bool | None = None  # None: both; False: the open ones
    before: int | None = None  # only alerts with a lower id (the paging position)
    limit: int = 50


class Acknowledgement(Frozen):
    alert_id: int
    by: str  # the acknowledging account
    role: str | None
    at: str
    note: str
    event_id: int  # the "alert.ack" audit event


class AlertView(Frozen):
    id: int  # the audit event id
    kind: AlertKind
    description: str
    at: str
    subject: str  # what it is about: a registry number, a peer, an account ("" if none)
    facts: dict[str, str | int | list[str]]
    acknowledgement: Acknowledgement | None = None


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[message])


def _time(name: str, value: str | None, now: dt.datetime | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_since(value, now or dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise _invalid(f"{name}: {exc}") from None


def _fact(value: Any) -> str | int | list[str] | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list):
        return [str(item)[:MAX_TEXT] for item in value[:MAX_ITEMS]]
    return None


def _facts(info: KindInfo, details: dict[str, Any]) -> dict[str, str | int | list[str]]:
    shown = {key: _fact(details.get(key)) for key in info.facts}
    return {key: value for key, value in shown.items() if value is not None}


def _ack_view(ack: audit_alerts.StoredAck) -> Acknowledgement:
    return Acknowledgement(
        alert_id=ack.alert_id, by=ack.actor, role=ack.role, at=ack.at, note=ack.note,
        event_id=ack.event_id,
    )  # fmt: skip


def _view(event: audit_alerts.AlertEvent, ack: audit_alerts.StoredAck | None) -> AlertView:
    info = KINDS[event.action]
    return AlertView(
        id=event.id,
        kind=info.kind,
        description=info.description,
        at=event.at,
        subject=event.target,
        facts=_facts(info, event.details),
        acknowledgement=_ack_view(ack) if ack is not None else None,
    )


async def list_alerts(
    actor: Actor, app: App, query: AlertQuery, *, now: dt.datetime | None = None
) -> list[AlertView]:
    """The newest alerts first (at most `limit`), of one kind, in a time range, open
    or acknowledged, each with its acknowledgement if it has one."""
    check(actor, Area.ALERTS, write=False, path=None)
    if not 1 <= query.limit <= MAX_ALERTS:
        raise _invalid(f"limit must be between 1 and {MAX_ALERTS}")
    since, until = _time("since", query.since, now), _time("until", query.until, now)
    actions = [_ACTION_OF[query.kind]] if query.kind is not None else list(KINDS)
    try:
        async with app.sessions() as session:
            events = await audit_alerts.alert_events(
                session, actions, limit=query.limit, since=since, until=until,
                before=query.before, acknowledged=query.acknowledged,
            )  # fmt: skip
            acks = await audit_alerts.acknowledgements(session, [e.id for e in events])
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return [_view(event, acks.get(event.id)) for event in events]


def _note(note: str) -> str:
    text = note.strip()
    if len(text) > MAX_NOTE:
        raise _invalid(f"note: at most {MAX_NOTE} characters")
    if any(ch < " " or ch == "\x7f" for ch in text):
        raise _invalid("note: one line, without control characters")
    return text


async def acknowledge(actor: Actor, app: App, alert_id: int, note: str = "") -> Acknowledgement:
    """Acknowledge an alert: one "alert.ack" audit event (target: the alert's id,
    details: the note). Idempotent: an alert acknowledged already answers its
    existing acknowledgement (first account, time and note) and nothing is written."""
    check(actor, Area.ALERTS, write=True, path=None)
    text = _note(note)
    if not 1 <= alert_id <= MAX_ID:
        raise NotFound(f"no alert {alert_id}")
    try:
        with acting(actor):
            async with transaction(app.sessions) as session:
                event = await audit_alerts.alert_event(session, alert_id)
                if event is None or event.action not in KINDS:
                    raise NotFound(f"no alert {alert_id}")
                ack, _written = await audit_alerts.acknowledge_once(
                    session, app.audit_key, alert_id=alert_id, actor=actor.audit_name,
                    details={"note": text, "kind": KINDS[event.action].kind.value},
                )  # fmt: skip
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return _ack_view(ack)


class ScanReport(Frozen):
    events: int  # audit events the rules read (new ones and their history)
    fired: int  # alerts the events call for, written now or before
    raised: list[AlertView]  # the alerts written by this scan
    filed: int = 0  # alert messages filed into security mailboxes (of any scan or source)


async def scan(
    actor: Actor,
    app: App,
    since: str | None = None,
    *,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """Run the alert rules at once over the events new since the last scan (the
    running gateway's or this command's; the position is shared), or over those at
    or after `since` (leaving the position alone), writing each alert not written
    before (audit event, metric, the webhook if configured); then file every alert
    not filed yet into its security mailbox, through the gateway's own mailer."""
    check(actor, Area.ALERTS, write=True, path=None)
    moment = now or dt.datetime.now(dt.UTC)
    start = _time("since", since, moment)
    mailer = standalone_mailer(app.settings, app.sessions, app.keys)
    evaluator = AlertEvaluator(app.settings.alerts, app.sessions, app.audit_key, mailer=mailer)
    try:
        with acting(actor):
            result = await evaluator.scan(
                since=dt.datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None,
                now=moment, drain=True, progress=progress,
            )  # fmt: skip
        async with app.sessions() as session:
            events = [await audit_alerts.alert_event(session, r.event_id) for r in result.raised]
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    finally:
        await evaluator.stop()  # waits for the webhook deliveries
    raised = [_view(event, None) for event in events if event is not None]
    return ScanReport(events=result.events, fired=result.fired, raised=raised, filed=result.filed)
