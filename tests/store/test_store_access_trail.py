"""The access trail on SQLite and PostgreSQL: filters, since, limit, order, chain intact."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import access_trail, audit, migrate
from gateway.store.access_trail import ACCESS_ACTION, AccessEntry, access_entries, parse_since
from gateway.store.db import create_engine, session_factory, transaction, utcnow

KEY = os.urandom(32)
MINISTER = "minister@moh.gov.xx"
CLERK = "clerk@moh.gov.xx"
SENDER = "sender@moh.gov.xx"
REG_A = "MOH/2026/000042"
REG_B = "MOH/2026/000043"
STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@dataclass
class Env:
    sessions: async_sessionmaker[AsyncSession]

    async def append(self, *events: audit.Event) -> None:
        async with transaction(self.sessions) as session:
            await audit.append_many(session, KEY, list(events))

    async def entries(self, **filters: Any) -> list[AccessEntry]:
        async with self.sessions() as session:
            return await access_entries(session, **filters)

    async def verify(self) -> audit.AuditReport:
        async with self.sessions() as session:
            return await audit.verify(session, KEY)


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    try:
        yield Env(session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Events get the `at` values pushed onto the returned list, in order."""
    times: list[str] = []
    monkeypatch.setattr(audit, "utcnow", lambda: times.pop(0))
    yield times
    assert times == [], "unused clock values"


def access(
    actor: str,
    registry: str,
    trace: str | None,
    *,
    copy: str = "recipient",
    protocol: str = "imaps",
    client: str = "127.0.0.1",
    mailbox: str = "INBOX",
    uid: int = 1,
    items: tuple[str, ...] = ("BODY[]",),
    **extra: Any,
) -> audit.Event:
    details = {
        "trace": trace,
        "copy": copy,
        "protocol": protocol,
        "client": client,
        "mailbox": mailbox,
        "uid": uid,
        "items": list(items),
        **extra,
    }
    return audit.Event(actor=actor, action=ACCESS_ACTION, target=registry, details=details)


def others() -> list[audit.Event]:
    """Events that share actors, targets and even a trace with accesses, but are not accesses."""
    return [
        audit.Event(actor="smtp:submission", action="message.accept", target=REG_A,
                    details={"trace": "AAAAA-11111", "recipients": 2}),
        audit.Event(actor=MINISTER, action="employee.set-password", target=MINISTER),
        audit.Event(actor=MINISTER, action="message.access.denied", target=REG_A,
                    details={"trace": "AAAAA-11111"}),
        audit.Event(actor=MINISTER, action="MESSAGE.ACCESS", target=REG_A,
                    details={"trace": "AAAAA-11111"}),
    ]  # fmt: skip


def ids(entries: list[AccessEntry]) -> list[int]:
    return [e.event_id for e in entries]


async def seed(env: Env) -> None:
    """Events 1-4 other actions, then accesses 5..10, then another other action (11)."""
    await env.append(*others())
    await env.append(
        access(MINISTER, REG_A, "AAAAA-11111", uid=3),  # 5
        access(CLERK, REG_A, "BBBBB-22222", protocol="imap", client="10.0.0.7", uid=9,
               items=("BODY[]", "FLAGS")),  # 6
        access(SENDER, REG_A, None, copy="sender", mailbox="Sent", uid=1),  # 7
        access(MINISTER, REG_B, "CCCCC-33333", uid=4),  # 8
        access(MINISTER, REG_A, "AAAAA-11111", uid=3, client="192.0.2.5"),  # 9
        access(CLERK, REG_B, "DDDDD-44444", uid=10),  # 10
    )  # fmt: skip
    await env.append(audit.Event(actor=CLERK, action="message.accept", target=REG_B))  # 11


async def test_everything_oldest_first_with_fields_parsed(env: Env) -> None:
    await seed(env)
    entries = await env.entries()
    assert ids(entries) == [5, 6, 7, 8, 9, 10]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert all(STORED.fullmatch(e.at) for e in entries)
    first, clerk, sent = entries[:3]
    assert first == AccessEntry(
        at=first.at, employee=MINISTER, registry=REG_A, trace="AAAAA-11111", copy="recipient",
        protocol="imaps", client="127.0.0.1", mailbox="INBOX", uid=3, items=("BODY[]",),
        event_id=5, node=audit.node(),
    )  # fmt: skip
    assert (clerk.protocol, clerk.client, clerk.uid, clerk.items) == (
        "imap", "10.0.0.7", 9, ("BODY[]", "FLAGS"),
    )  # fmt: skip
    assert (sent.trace, sent.copy, sent.mailbox, sent.employee) == (None, "sender", "Sent", SENDER)
    as_dict = first.as_dict()
    assert list(as_dict) == ["at", "employee", "registry", "trace", "copy", "protocol", "client",
                             "mailbox", "uid", "items", "event_id", "node"]  # fmt: skip
    assert as_dict["items"] == ["BODY[]"] and as_dict["event_id"] == 5
    assert json.loads(json.dumps(as_dict)) == as_dict
    report = await env.verify()
    assert report.ok and report.events == 11, report.problems


async def test_each_filter_and_combinations(env: Env) -> None:
    await seed(env)
    assert ids(await env.entries(registry=REG_A)) == [5, 6, 7, 9]
    assert ids(await env.entries(registry=" moh/2026/000043 ")) == [8, 10]
    assert await env.entries(registry="MOH/2026/000044") == []
    assert await env.entries(registry="MOH/2026/00004") == []  # exact, not a prefix

    assert ids(await env.entries(employee=MINISTER)) == [5, 8, 9]
    assert ids(await env.entries(employee=" Minister@MOH.Gov.XX ")) == [5, 8, 9]
    assert ids(await env.entries(employee=SENDER)) == [7]
    assert await env.entries(employee="minister@moh.gov") == []

    assert ids(await env.entries(trace="AAAAA-11111")) == [5, 9]
    assert ids(await env.entries(trace=" aaaaa-11111 ")) == [5, 9]
    assert ids(await env.entries(trace="DDDDD-44444")) == [10]
    assert await env.entries(trace="AAAAA-1111") == []  # no partial match
    assert await env.entries(trace="AAAAA%") == []  # LIKE wildcards are literal
    assert await env.entries(trace="_AAAA-11111") == []
    assert await env.entries(trace="ZZZZZ-99999") == []

    assert ids(await env.entries(registry=REG_A, employee=MINISTER)) == [5, 9]
    assert ids(await env.entries(registry=REG_B, employee=MINISTER)) == [8]
    assert ids(await env.entries(registry=REG_A, trace="BBBBB-22222")) == [6]
    assert await env.entries(registry=REG_B, trace="AAAAA-11111") == []
    assert await env.entries(employee=CLERK, trace="AAAAA-11111") == []
    assert ids(await env.entries(registry=REG_A, employee=MINISTER, trace="AAAAA-11111")) == [5, 9]
    assert (await env.verify()).ok


async def test_trace_is_matched_on_the_top_level_field_only(env: Env) -> None:
    await env.append(
        access(MINISTER, REG_A, "AAAAA-11111", note={"trace": "EEEEE-55555"}),  # 1
        access(MINISTER, REG_A, "EEEEE-55555", mailbox='odd "trace":"AAAAA-11111"'),  # 2
        access(MINISTER, REG_A, "eeeee-55555"),  # 3: stored in another case: not the code
    )
    assert ids(await env.entries(trace="EEEEE-55555")) == [2]
    assert ids(await env.entries(trace="AAAAA-11111")) == [1]


async def test_since_absolute(env: Env, clock: list[str]) -> None:
    clock += [
        "2026-11-21T23:59:59.999999Z",
        "2026-11-22T00:00:00.000000Z",
        "2026-11-22T10:00:01.000000Z",
        "2026-11-22T10:00:01.500000Z",
        "2026-11-23T08:00:00.000000Z",
        "2026-11-23T09:00:00.000000Z",
    ]
    await env.append(
        access(MINISTER, REG_A, "AAAAA-11111"),  # 1
        access(CLERK, REG_A, "BBBBB-22222"),  # 2
        access(MINISTER, REG_B, "CCCCC-33333"),  # 3
        access(MINISTER, REG_A, "AAAAA-11111"),  # 4
        audit.Event(actor=MINISTER, action="message.accept", target=REG_A),  # 5
        access(CLERK, REG_B, "DDDDD-44444"),  # 6
    )
    now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
    assert ids(await env.entries(since=parse_since("2026-11-22", now))) == [2, 3, 4, 6]
    assert ids(await env.entries(since=parse_since("2026-11-22T10:00:01Z", now))) == [3, 4, 6]
    assert ids(await env.entries(since=parse_since("2026-11-22T10:00:01.1", now))) == [4, 6]
    assert ids(await env.entries(since=parse_since("2026-11-22T13:00:01+03:00", now))) == [3, 4, 6]
    assert ids(await env.entries(since=parse_since("2026-11-23", now))) == [6]
    assert await env.entries(since=parse_since("2026-11-24", now)) == []
    # relative, against a fixed `now`
    assert ids(await env.entries(since=parse_since("1h", now))) == [6]
    assert ids(await env.entries(since=parse_since("2h", now))) == [6]
    assert ids(await env.entries(since=parse_since("24h", now))) == [3, 4, 6]
    assert ids(await env.entries(since=parse_since("1d", now))) == [3, 4, 6]
    assert ids(await env.entries(since=parse_since("86399s", now))) == [3, 4, 6]  # inclusive
    assert ids(await env.entries(since=parse_since("86398s", now))) == [6]
    assert ids(await env.entries(since=parse_since("30m", now))) == []
    assert ids(await env.entries(since=parse_since("7d", now))) == [1, 2, 3, 4, 6]
    # combined with the other filters
    since = parse_since("2026-11-22", now)
    assert ids(await env.entries(since=since, employee=MINISTER)) == [3, 4]
    assert ids(await env.entries(since=since, registry=REG_A, trace="AAAAA-11111")) == [4]
    assert ids(await env.entries(since=since, limit=2)) == [4, 6]
    report = await env.verify()
    assert report.ok and report.events == 6, report.problems


async def test_since_relative_against_the_real_clock(env: Env) -> None:
    await env.append(access(MINISTER, REG_A, "AAAAA-11111"))
    now = dt.datetime.now(dt.UTC)
    assert ids(await env.entries(since=parse_since("5m", now))) == [1]
    assert ids(await env.entries(since=parse_since("1d", now))) == [1]
    assert (
        await env.entries(since=parse_since((now + dt.timedelta(seconds=1)).isoformat(), now)) == []
    )
    later = now + dt.timedelta(minutes=10)
    assert await env.entries(since=parse_since("5m", later)) == []


async def test_limit_keeps_the_newest_oldest_first(env: Env) -> None:
    await env.append(*[access(MINISTER if i % 2 else CLERK, REG_A, f"AAAAA-{i:05d}", uid=i)
                       for i in range(1, 11)])  # fmt: skip
    assert ids(await env.entries(limit=3)) == [8, 9, 10]
    assert ids(await env.entries(limit=1)) == [10]
    assert ids(await env.entries(limit=10)) == list(range(1, 11))
    assert ids(await env.entries(limit=1000)) == list(range(1, 11))
    assert ids(await env.entries(employee=MINISTER, limit=2)) == [7, 9]
    assert ids(await env.entries(trace="AAAAA-00004", limit=1)) == [4]
    with pytest.raises(ValueError, match="limit"):
        await env.entries(limit=0)


async def test_trace_filter_pages_through_many_candidates(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Candidates the LIKE lets through but the exact check drops ("aaaaa-11111" in
    # another case, only on SQLite; a nested "trace" key, everywhere) must not eat the limit.
    monkeypatch.setattr(access_trail, "SCAN_BATCH", 2)
    events = []
    for i in range(1, 13):
        if i % 3 == 0:
            events.append(access(MINISTER, REG_A, "AAAAA-11111", uid=i))
        else:
            events.append(access(CLERK, REG_A, "ZZZZZ-00000", uid=i, note={"trace": "AAAAA-11111"}))
    await env.append(*events)
    await env.append(access(CLERK, REG_A, "aaaaa-11111", uid=13))
    assert ids(await env.entries(trace="AAAAA-11111")) == [3, 6, 9, 12]
    assert ids(await env.entries(trace="AAAAA-11111", limit=3)) == [6, 9, 12]
    assert ids(await env.entries(trace="AAAAA-11111", limit=1)) == [12]
    assert ids(await env.entries(trace="AAAAA-11111", employee=CLERK)) == []
    assert (await env.verify()).ok


async def test_odd_details_are_shown_not_hidden(env: Env) -> None:
    # An access event whose details miss fields still appears (an audit view never hides).
    await env.append(
        audit.Event(actor=MINISTER, action=ACCESS_ACTION, target=REG_A,
                    details={"uid": "7", "items": "BODY[]", "trace": 5}),
        audit.Event(actor=MINISTER, action=ACCESS_ACTION, target=REG_A),
    )  # fmt: skip
    odd, empty = await env.entries()
    assert (odd.trace, odd.uid, odd.items, odd.copy) == (None, None, (), "")
    assert (empty.trace, empty.protocol, empty.client, empty.mailbox) == (None, "", "", "")
    assert (await env.verify()).ok


# ------------------------------------------------------------------ parse_since

NOW = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22", "2026-11-22T00:00:00.000000Z"),
        ("2026-11-22T10:00:01Z", "2026-11-22T10:00:01.000000Z"),
        ("2026-11-22T10:00:01", "2026-11-22T10:00:01.000000Z"),  # naive = UTC
        ("2026-11-22 10:00", "2026-11-22T10:00:00.000000Z"),
        ("2026-11-22T10:00:01.25Z", "2026-11-22T10:00:01.250000Z"),
        ("2026-11-22T13:00:00+03:00", "2026-11-22T10:00:00.000000Z"),
        ("2026-11-22T01:00:00-10:00", "2026-11-22T11:00:00.000000Z"),
        ("  2026-11-22  ", "2026-11-22T00:00:00.000000Z"),
        ("0999-01-02", "0999-01-02T00:00:00.000000Z"),  # still fixed width
        ("45s", "2026-11-22T09:59:15.000000Z"),
        ("30m", "2026-11-22T09:30:00.000000Z"),
        ("24h", "2026-11-21T10:00:00.000000Z"),
        ("7d", "2026-11-15T10:00:00.000000Z"),
        ("2w", "2026-11-08T10:00:00.000000Z"),
        ("0m", "2026-11-22T10:00:00.000000Z"),
        (" 90 m ", "2026-11-22T08:30:00.000000Z"),
    ],
)
def test_parse_since_forms(text: str, expected: str) -> None:
    assert parse_since(text, NOW) == expected
    assert STORED.fullmatch(expected)


def test_parse_since_matches_the_stored_format_and_orders_as_text() -> None:
    stored = utcnow()
    assert STORED.fullmatch(stored) and len(parse_since("1h", NOW)) == len(stored)
    naive_now = NOW.replace(tzinfo=None)
    assert parse_since("1h", naive_now) == parse_since("1h", NOW)
    assert (
        parse_since("1s", NOW)
        < parse_since("2026-11-22T09:59:59.999999Z", NOW)
        < parse_since("0s", NOW)
    )
    assert parse_since("1d", NOW) < parse_since("2026-11-22", NOW) < parse_since("1h", NOW)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "yesterday", "-5m", "5y", "30M", "1h ago", "h", "2026-13-01",
     "2026-11-31", "22/11/2026", "999999999w", "0001-01-01T00:00:00+03:00"],
)  # fmt: skip
def test_parse_since_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a time: .*ISO 8601.*30m, 24h or 7d") as info:
        parse_since(text, NOW)
    assert "\n" not in str(info.value)
