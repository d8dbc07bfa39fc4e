"""Alert rules over the audit and access trail: pure logic, no I/O.

Owns: deciding which alerts the events call for, with the thresholds of the
`[alerts]` configuration section (docs/SECURITY-TEAMS.md §4):

* body volume: an employee opening more distinct official bodies (registry
  numbers, from "message.access" events) in one local day than
  max(volume_min_bodies, volume_factor x their median daily count over the
  volume_baseline_days days before; days without reading count as 0);
* after hours: more than after_hours_bodies distinct bodies opened by one
  employee in one local day outside working hours (before workday_start, at or
  after workday_end, or on a weekend day), in the agency's time zone;
* policy denials: at least `denials` submissions of one sender refused by
  policy ("message.reject" with reason "policy") within one fixed window of
  denials_window_minutes (windows aligned to midnight UTC);
* new client address: a "message.access" from a client address the account did
  not use in the new_client_history_days before, when it used another in them
  (an account's very first reads raise nothing). Successful logins are not in
  the audit trail; reading a body is the first audited act of a session.

An alert is identified by (action, subject, window): the rules only report
windows that hold at least one new event (id above the scan's position), and
the caller writes each identity once. Must not: read the database, the clock
or the network; put an address or a registry number in anything but the
alert's subject and facts. Failure behaviour: malformed events (missing or
wrongly typed details) are skipped, never raised.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts import kinds
from gateway.config import AlertsSettings

ACCESS_ACTION = "message.access"
REJECT_ACTION = "message.reject"
MAX_RULES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One audit event as the rules see it (`at` is timezone-aware)."""

    id: int
    at: dt.datetime
    action: str
    actor: str
    target: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Fired:
    """An alert the events call for: the audit action, what it is about (an account,
    a sender), the window it covers (a local day, a UTC window start, a client
    address) and the facts recorded in its details."""

    action: str
    subject: str
    window: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> kinds.AlertKind:
        return kinds.KINDS[self.action].kind

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.action, self.subject, self.window


@dataclass(frozen=True, slots=True)
class Thresholds:
    zone: ZoneInfo
    weekend: frozenset[int]
    workday: tuple[int, int]  # minutes after local midnight: start, end
    volume_min: int
    volume_factor: float
    baseline_days: int
    after_hours: int
    denials: int
    denials_window: dt.timedelta
    history: dt.timedelta

    @classmethod
    def of(cls, settings: AlertsSettings) -> Thresholds:
        return cls(
            zone=ZoneInfo(settings.time_zone),
            weekend=settings.weekend_days,
            workday=settings.workday_minutes,
            volume_min=settings.volume_min_bodies,
            volume_factor=settings.volume_factor,
            baseline_days=settings.volume_baseline_days,
            after_hours=settings.after_hours_bodies,
            denials=settings.denials,
            denials_window=dt.timedelta(minutes=settings.denials_window_minutes),
            history=dt.timedelta(days=settings.new_client_history_days),
        )

    @property
    def lookback(self) -> dt.timedelta:
        """How far before the oldest new event the rules need history."""
        return max(dt.timedelta(days=self.baseline_days + 1), self.history, self.denials_window)

    def outside_hours(self, at: dt.datetime) -> bool:
        local = at.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.weekend or not self.workday[0] <= minute < self.workday[1]


def _access(events: Iterable[TrailEvent]) -> list[TrailEvent]:
    return [e for e in events if e.action == ACCESS_ACTION and e.actor and e.target]


def body_volume(events: Sequence[TrailEvent], position: int, t: Thresholds) -> list[Fired]:
    days: dict[str, dict[dt.date, set[str]]] = defaultdict(lambda: defaultdict(set))
    touched: set[tuple[str, dt.date]] = set()
    for e in _access(events):
        day = e.at.astimezone(t.zone).date()
        days[e.actor][day].add(e.target)
        if e.id > position:
            touched.add((e.actor, day))
    fired = []
    for employee, day in sorted(touched):
        count = len(days[employee][day])
        baseline = [
            len(days[employee].get(day - dt.timedelta(days=n), ()))
            for n in range(1, t.baseline_days + 1)
        ]
        median = statistics.median(baseline)
        threshold = max(t.volume_min, t.volume_factor * median)
        if count > threshold:
            facts = {"window": day.isoformat(), "count": count, "median": median,
                     "threshold": threshold, "baseline_days": t.baseline_days}  # fmt: skip
            fired.append(Fired(kinds.BODY_VOLUME_ACTION, employee, day.isoformat(), facts))
    return fired


def after_hours(events: Sequence[TrailEvent], position: int, t: Thresholds) -> list[Fired]:
    seen: dict[tuple[str, dt.date], dict[str, dt.datetime]] = defaultdict(dict)
    touched: set[tuple[str, dt.date]] = set()
    for e in _access(events):
        if not t.outside_hours(e.at):
            continue
        key = (e.actor, e.at.astimezone(t.zone).date())
        seen[key].setdefault(e.target, e.at)
        if e.id > position:
            touched.add(key)
    fired = []
    for employee, day in sorted(touched):
        opened = seen[(employee, day)]
        if len(opened) > t.after_hours:
            times = sorted(opened.values())
            facts = {"window": day.isoformat(), "count": len(opened), "threshold": t.after_hours,
                     "first": _stamp(times[0]), "last": _stamp(times[-1])}  # fmt: skip
            fired.append(Fired(kinds.AFTER_HOURS_ACTION, employee, day.isoformat(), facts))
    return fired


def policy_denials(events: Sequence[TrailEvent], position: int, t: Thresholds) -> list[Fired]:
    width = t.denials_window.total_seconds()
    windows: dict[tuple[str, int], list[TrailEvent]] = defaultdict(list)
    touched: set[tuple[str, int]] = set()
    for e in events:
        if e.action != REJECT_ACTION or e.details.get("reason") != "policy" or not e.target:
            continue
        key = (e.target, int(e.at.timestamp() // width))
        windows[key].append(e)
        if e.id > position:
            touched.add(key)
    fired = []
    for sender, index in sorted(touched):
        refused = windows[(sender, index)]
        if len(refused) >= t.denials:
            start = _stamp(dt.datetime.fromtimestamp(index * width, dt.UTC))
            rules = sorted({str(e.details.get("rule")) for e in refused if e.details.get("rule")})
            facts = {"window": start, "count": len(refused), "threshold": t.denials,
                     "window_minutes": int(width // 60),
                     "rules": rules[:MAX_RULES_SHOWN]}  # fmt: skip
            fired.append(Fired(kinds.POLICY_DENIALS_ACTION, sender, start, facts))
    return fired


def new_client(events: Sequence[TrailEvent], position: int, t: Thresholds) -> list[Fired]:
    by_account: dict[str, list[tuple[dt.datetime, str, TrailEvent]]] = defaultdict(list)
    for e in _access(events):
        client = e.details.get("client")
        if isinstance(client, str) and client:
            by_account[e.actor].append((e.at, client, e))
    fired: list[Fired] = []
    for account, reads in sorted(by_account.items()):
        reads.sort(key=lambda read: (read[0], read[2].id))
        window: Counter[str] = Counter()  # clients of the reads in the history before
        oldest = 0
        alerted: set[str] = set()
        for at, client, event in reads:
            while oldest < len(reads) and reads[oldest][0] < at - t.history:
                window[reads[oldest][1]] -= 1
                oldest += 1
            known = +window
            if event.id > position and client not in alerted and known and client not in known:
                alerted.add(client)
                facts = {"window": client, "client": client,
                         "protocol": str(event.details.get("protocol", "")),
                         "known_clients": len(known),
                         "history_days": t.history.days}  # fmt: skip
                fired.append(Fired(kinds.NEW_CLIENT_ACTION, account, client, facts))
            window[client] += 1
    return fired


RULES = (body_volume, after_hours, policy_denials, new_client)


def evaluate(events: Sequence[TrailEvent], position: int, thresholds: Thresholds) -> list[Fired]:
    """Every alert the events call for in windows holding an event newer than
    `position` (history at or below it is only the baseline), rule by rule."""
    return [fired for rule in RULES for fired in rule(events, position, thresholds)]


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
