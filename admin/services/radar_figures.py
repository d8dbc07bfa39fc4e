"""The verification radar's figures for auditors, from what the gateway keeps durably.

Owns: `radar_figures` (taking the `Actor` first): per day over the last 30 days
(UTC), the radar's alerts by kind ("forgery-spike": more than 100 forged tokens
gateway-wide in ten minutes; "document-spike": more than 200 lookups of one
registry number), the forged and document lookups those alerts counted, the
client addresses they named; the client addresses named most often and the
registry numbers looked up most. The radar itself (gateway.verification.radar)
counts every lookup and throttle in memory, per process; what lasts is its
"verify.alert" audit events, so these figures are the alerts' (an alert's
count is a floor: the count when the spike was seen, not the window's end).

The radar watches the whole gateway, so only unscoped roles that may read
alerts (system-admin, security-auditor) read these figures; any other role is
`Forbidden`. Must not: write anything, show a token (alerts never hold one), or
lay anything out (admin.web renders).

Failure behaviour: a database that cannot be reached gives `Unavailable`. At
most MAX_EVENTS alerts are read (the newest); `truncated` then says so.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from admin.context import App
from admin.services.actor import SCOPED_ROLES, Actor, Area, Forbidden, require
from admin.services.errors import Unavailable
from admin.services.model import Frozen
from gateway.alerts.kinds import VERIFY_ALERT_ACTION
from gateway.store.audit_alerts import AlertEvent, alert_events
from gateway.store.db import iso
from gateway.store.errors import DATABASE_ERRORS

DAYS = 30
TOP = 10
MAX_EVENTS = 5000
FORGERY = "forgery-spike"
DOCUMENT = "document-spike"


class RadarDay(Frozen):
    day: str  # YYYY-MM-DD (UTC)
    forgery_alerts: int
    document_alerts: int
    forged_lookups: int  # counted by that day's forgery-spike alerts (at least)
    document_lookups: int  # counted by that day's document-spike alerts (at least)
    clients: int  # distinct client addresses the day's alerts named


class RadarClient(Frozen):
    address: str
    alerts: int  # alerts naming it
    last_at: str  # the newest of them


class RadarRegistry(Frozen):
    registry: str
    alerts: int
    lookups: int  # counted by those alerts (at least)


class RadarFigures(Frozen):
    first_day: str
    last_day: str
    days: list[RadarDay]  # DAYS of them, oldest first, quiet days included
    clients: list[RadarClient]  # the TOP most named, most first
    registries: list[RadarRegistry]  # the TOP most looked up, most first
    alerts: int  # all radar alerts of the period
    truncated: bool  # more than MAX_EVENTS alerts: only the newest were counted


def _count(details: dict[str, Any]) -> int:
    value = details.get("count")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _clients(details: dict[str, Any]) -> list[str]:
    found = details.get("clients")
    if not isinstance(found, list):
        return []
    return list(dict.fromkeys(str(c)[:64] for c in found if isinstance(c, str) and c))


class _Tally:
    def __init__(self, days: list[str]) -> None:
        self.kinds: dict[str, Counter[str]] = {d: Counter() for d in days}
        self.lookups: dict[str, Counter[str]] = {d: Counter() for d in days}
        self.named: dict[str, set[str]] = {d: set() for d in days}
        self.clients: Counter[str] = Counter()
        self.last: dict[str, str] = {}
        self.registries: Counter[str] = Counter()
        self.registry_lookups: Counter[str] = Counter()

    def add(self, event: AlertEvent) -> None:
        day, details = event.at[:10], event.details
        kind = details.get("kind")
        if day not in self.kinds or kind not in (FORGERY, DOCUMENT):
            return
        self.kinds[day][kind] += 1
        self.lookups[day][kind] += _count(details)
        for client in _clients(details):
            self.named[day].add(client)
            self.clients[client] += 1
            self.last[client] = max(self.last.get(client, ""), event.at)
        registry = details.get("registry")
        if kind == DOCUMENT and isinstance(registry, str) and registry:
            self.registries[registry[:64]] += 1
            self.registry_lookups[registry[:64]] += _count(details)

    def days(self) -> list[RadarDay]:
        return [
            RadarDay(day=d, forgery_alerts=k[FORGERY], document_alerts=k[DOCUMENT],
                     forged_lookups=self.lookups[d][FORGERY],
                     document_lookups=self.lookups[d][DOCUMENT], clients=len(self.named[d]))
            for d, k in self.kinds.items()
        ]  # fmt: skip

    def top_clients(self) -> list[RadarClient]:
        ranked = sorted(self.clients.items(), key=lambda item: (-item[1], item[0]))[:TOP]
        return [RadarClient(address=a, alerts=n, last_at=self.last[a]) for a, n in ranked]

    def top_registries(self) -> list[RadarRegistry]:
        ranked = sorted(self.registries.items(), key=lambda item: (-item[1], item[0]))[:TOP]
        return [RadarRegistry(registry=r, alerts=n, lookups=self.registry_lookups[r])
                for r, n in ranked]  # fmt: skip


async def radar_figures(actor: Actor, app: App, *, now: dt.datetime | None = None) -> RadarFigures:
    """The radar's figures of the last DAYS days (today included), see the module doc."""
    if actor.role in SCOPED_ROLES:
        raise Forbidden(f"role {actor.role.value} may not read the verification radar")
    require(actor, Area.ALERTS, write=False, agency_path=None)
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=DAYS - 1)
    days = [(first + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    since = iso(dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC))
    try:
        async with app.sessions() as session:
            events = await alert_events(
                session, [VERIFY_ALERT_ACTION], limit=MAX_EVENTS + 1, since=since
            )
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    tally = _Tally(days)
    for event in events[:MAX_EVENTS]:
        tally.add(event)
    counted = sum(sum(k.values()) for k in tally.kinds.values())
    return RadarFigures(
        first_day=days[0], last_day=days[-1], days=tally.days(), clients=tally.top_clients(),
        registries=tally.top_registries(), alerts=counted, truncated=len(events) > MAX_EVENTS,
    )  # fmt: skip
