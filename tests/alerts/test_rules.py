"""The alert rules over scripted trails: each fires on its scenario, once, and a
normal day of reading by the demo directory raises nothing."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from admin.demo_data import EMPLOYEES
from gateway.alerts import kinds
from gateway.alerts.rules import (
    ACCESS_ACTION,
    REJECT_ACTION,
    Thresholds,
    TrailEvent,
    evaluate,
)
from gateway.config import AlertsSettings

T = Thresholds.of(AlertsSettings())
RIYADH = dt.timezone(dt.timedelta(hours=3))
TODAY = dt.date(2026, 11, 17)  # a Tuesday
ACTIVE = [row[0] for row in EMPLOYEES if row[6] == "active"]


class Trail:
    """A scripted audit trail: ids in order of addition."""

    def __init__(self) -> None:
        self.events: list[TrailEvent] = []
        self._ids = itertools.count(1)
        self._registry = itertools.count(1)

    def add(self, at: dt.datetime, action: str, actor: str, target: str, **details: Any) -> None:
        self.events.append(TrailEvent(next(self._ids), at, action, actor, target, details))

    def read(self, who: str, at: dt.datetime, n: int = 1, client: str = "") -> None:
        for i in range(n):
            registry = f"MOH/2026/{next(self._registry):06d}"
            self.add(at + dt.timedelta(seconds=30 * i), ACCESS_ACTION, who, registry,
                     client=client or _usual(who), protocol="imaps")  # fmt: skip

    def deny(self, sender: str, at: dt.datetime, n: int, reason: str = "policy") -> None:
        for i in range(n):
            self.add(at + dt.timedelta(minutes=2 * i), REJECT_ACTION, "submission", sender,
                     reason=reason, rule="no-cross-agency-secret")  # fmt: skip

    @property
    def newest(self) -> int:
        return self.events[-1].id if self.events else 0


def _usual(who: str) -> str:
    return f"10.1.{ACTIVE.index(who) if who in ACTIVE else 99}.20"


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=RIYADH)


def working_days(days: int) -> Iterator[dt.date]:
    for n in range(days, 0, -1):
        day = TODAY - dt.timedelta(days=n)
        if day.weekday() not in T.weekend:
            yield day


def ordinary(trail: Trail, day: dt.date) -> None:
    """A day of ordinary reading: everyone reads 3 to 14 bodies in office hours, a
    registrar finishes two letters after hours, and one refused submission."""
    for i, who in enumerate(ACTIVE):
        trail.read(who, local(day, 8 + i % 7, 5), 3 + (i * 5 + day.day) % 12)
    trail.read("registrar@moh.gov.example", local(day, 17, 30), 2)
    trail.deny("clerk@mof.gov.example", local(day, 11), 1)


@pytest.fixture
def history() -> Trail:
    trail = Trail()
    for day in working_days(T.baseline_days + 6):
        ordinary(trail, day)
    return trail


def fired(trail: Trail, position: int) -> list[tuple[kinds.AlertKind, str, str]]:
    return [(f.kind, f.subject, f.window) for f in evaluate(trail.events, position, T)]


def test_a_normal_day_raises_nothing(history: Trail) -> None:
    position = history.newest
    ordinary(history, TODAY)
    assert fired(history, position) == []
    assert fired(history, 0) == []  # nor did any day of the history


def test_many_more_bodies_than_the_employees_own_baseline(history: Trail) -> None:
    position = history.newest
    ordinary(history, TODAY)
    history.read("clerk@moh.gov.example", local(TODAY, 9), 80)
    found = evaluate(history.events, position, T)
    assert [(f.kind, f.subject, f.window) for f in found] == [
        (kinds.AlertKind.BODY_VOLUME, "clerk@moh.gov.example", TODAY.isoformat())
    ]
    facts = found[0].facts
    assert facts["count"] > 80 and facts["threshold"] == T.volume_min
    assert facts["baseline_days"] == T.baseline_days


def test_a_heavy_reader_at_their_usual_volume_is_quiet() -> None:
    trail = Trail()
    for day in working_days(T.baseline_days):
        trail.read("registrar@cab.gov.example", local(day, 9), 120)
    position = trail.newest
    trail.read("registrar@cab.gov.example", local(TODAY, 9), 140)  # < 5 x 120
    assert fired(trail, position) == []
    trail.read("registrar@cab.gov.example", local(TODAY, 11), 500)  # > 5 x 120
    assert fired(trail, position) == [
        (kinds.AlertKind.BODY_VOLUME, "registrar@cab.gov.example", TODAY.isoformat())
    ]


@pytest.mark.parametrize(
    "when",
    [local(TODAY, 22), local(TODAY, 5), local(TODAY + dt.timedelta(days=3), 10)],
    ids=["evening", "early-morning", "friday-in-office-hours"],
)
def test_bulk_reading_outside_working_hours(history: Trail, when: dt.datetime) -> None:
    position = history.newest
    history.read("registrar@mof.gov.example", when, 25)
    assert fired(history, position) == [
        (kinds.AlertKind.AFTER_HOURS, "registrar@mof.gov.example", when.date().isoformat())
    ]


def test_twenty_after_hours_is_the_threshold_not_an_alert(history: Trail) -> None:
    position = history.newest
    history.read("registrar@mof.gov.example", local(TODAY, 22), T.after_hours)
    assert fired(history, position) == []


def test_repeated_policy_denials_of_one_sender(history: Trail) -> None:
    position = history.newest
    history.deny("planning.clerk@moh.gov.example", local(TODAY, 10, 0), T.denials)
    found = evaluate(history.events, position, T)
    assert [(f.kind, f.subject) for f in found] == [
        (kinds.AlertKind.POLICY_DENIALS, "planning.clerk@moh.gov.example")
    ]
    assert found[0].window == "2026-11-17T07:00:00Z"
    assert found[0].facts["rules"] == ["no-cross-agency-secret"]


def test_denials_below_the_threshold_or_for_other_reasons_are_quiet(history: Trail) -> None:
    position = history.newest
    history.deny("planning.clerk@moh.gov.example", local(TODAY, 10), T.denials - 1)
    history.deny("clerk@cab.gov.example", local(TODAY, 10), T.denials * 2, reason="unsigned")
    assert fired(history, position) == []


def test_a_read_from_a_client_address_never_seen_for_the_account(history: Trail) -> None:
    position = history.newest
    history.read("minister@moh.gov.example", local(TODAY, 9), 3, client="198.51.100.7")
    history.read("minister@moh.gov.example", local(TODAY, 10), 2, client="198.51.100.7")
    found = evaluate(history.events, position, T)
    assert [(f.kind, f.subject, f.window) for f in found] == [
        (kinds.AlertKind.NEW_CLIENT, "minister@moh.gov.example", "198.51.100.7")
    ]
    assert found[0].facts["known_clients"] == 1
    assert found[0].facts["protocol"] == "imaps"


def test_an_accounts_first_reads_and_an_address_seen_before_are_quiet(history: Trail) -> None:
    position = history.newest
    history.read("newcomer@moh.gov.example", local(TODAY, 9), 3, client="10.9.9.9")
    history.read(
        "clerk@moh.gov.example", local(TODAY, 9), 1, client=_usual("clerk@moh.gov.example")
    )
    assert fired(history, position) == []


def test_an_address_older_than_the_history_is_new_again() -> None:
    trail = Trail()
    who = "clerk@mof.gov.example"
    trail.read(who, local(TODAY - dt.timedelta(days=60), 9), client="10.7.7.7")
    trail.read(who, local(TODAY - dt.timedelta(days=2), 9), client="10.1.1.1")
    position = trail.newest
    trail.read(who, local(TODAY, 9), client="10.7.7.7")
    assert fired(trail, position) == [(kinds.AlertKind.NEW_CLIENT, who, "10.7.7.7")]


def test_only_windows_with_new_events_are_reported(history: Trail) -> None:
    history.read("clerk@moh.gov.example", local(TODAY, 9), 80)
    position = history.newest
    history.read("director@cab.gov.example", local(TODAY, 9), 1)
    assert fired(history, position) == []


def test_every_rule_action_is_an_alert_kind() -> None:
    assert {info.kind for info in kinds.KINDS.values()} == set(kinds.AlertKind)
    assert len(kinds.ACTION_OF) == len(kinds.KINDS)
