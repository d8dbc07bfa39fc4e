"""Durable acceptance on SQLite and PostgreSQL: registry numbers, rows, copies, failures."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.model.message import Stamp, StampedCopy
from gateway.store import audit
from gateway.store.db import create_engine, session_factory
from gateway.store.disk import free_space_ok
from gateway.store.errors import StoreUnavailable, UnknownMessage, UnknownSender
from gateway.store.messages import MessageStore
from gateway.store.models import Agency, AuditEvent, DeliveryQueueEntry, Message
from gateway.store.registry import allocate_serial, format_registry
from testkit.store import (
    AUDIT_KEY,
    MASTER,
    SENDER,
    counts,
    stamper,
    store_env,
    submission,
)


def year() -> int:
    return dt.datetime.now(dt.UTC).year


def serial_of(registry: str) -> int:
    agency, yr, serial = registry.split("/")
    assert agency == "MOH" and int(yr) == year() and len(serial) == 6
    return int(serial)


async def test_accept_stores_everything_and_reads_back(db_url: str) -> None:
    async with store_env(db_url) as env:
        sub = submission()
        calls, stamp = stamper(sub)
        accepted = await env.store.accept(sub, stamp, actor="smtp:test")
        assert accepted.registry == f"MOH/{year()}/000001" == calls[0]
        assert accepted.token == "tok-" + accepted.registry

        stored = await env.store.message_by_registry(accepted.registry)
        assert stored is not None and stored.id == accepted.message_id
        assert (stored.agency, stored.sender_address, stored.status) == ("MOH", SENDER, "valid")
        assert stored.classification == sub.classification and stored.subject == sub.subject
        assert stored.size == len(sub.raw) and stored.key_id == "abcd1234abcd1234"
        assert stored.client_address == "192.0.2.10" and stored.accepted_at.endswith("Z")
        assert [d.sha256 for d in stored.documents] == [d.sha256 for d in sub.documents]
        assert await env.store.message_by_registry("MOH/1999/000001") is None

        assert await env.store.load_original(accepted.message_id) == sub.raw
        copies = await env.store.copies_for(accepted.message_id)
        assert [c.recipient for c in copies] == [r.address for r in sub.recipients]
        assert [c.target for c in copies] == ["local", "local", "peer:krg"]
        assert [c.local for c in copies] == [True, True, False]
        assert len({c.trace_code for c in copies}) == 3
        for copy in copies:
            prefix = f"PREFIX {accepted.registry} {copy.recipient}\r\n".encode()
            suffix = f"\r\nSUFFIX {copy.recipient}\r\n".encode()
            assert await env.store.load_copy(copy.id) == prefix + sub.raw + suffix

        async with env.sessions() as s:
            queue = (await s.scalars(select(DeliveryQueueEntry))).all()
            assert {(q.state, q.attempts) for q in queue} == {("queued", 0)}
            event = await s.scalar(select(AuditEvent).where(AuditEvent.action == "message.accept"))
            assert event is not None and event.target == accepted.registry
            details = json.loads(event.details)
            assert details == {
                "sender": SENDER,
                "recipients": 3,
                "classification": "confidential",
                "documents": [sub.documents[0].sha256],
            }
            assert sub.subject not in event.details
            assert (await audit.verify(s, AUDIT_KEY)).ok
        with pytest.raises(UnknownMessage):
            await env.store.load_original(accepted.message_id + 100)
        with pytest.raises(UnknownMessage):
            await env.store.load_copy(10_000)


async def test_twenty_concurrent_accepts_get_gap_free_unique_numbers(db_url: str) -> None:
    async with store_env(db_url) as env:
        subs = [submission() for _ in range(20)]
        results = await asyncio.gather(
            *(env.store.accept(sub, stamper(sub)[1], actor="t") for sub in subs)
        )
        assert sorted(serial_of(r.registry) for r in results) == list(range(1, 21))
        assert len({r.message_id for r in results}) == 20
        assert (await counts(env.sessions))["serials"] == 20
        async with env.sessions() as s:
            report = await audit.verify(s, AUDIT_KEY)
        assert report.ok, report.problems
        assert report.events == 2 + 20  # seeding (agency, employee) + accepts


@pytest.mark.postgres
async def test_two_gateway_nodes_share_one_counter(pg_url: str) -> None:
    async with store_env(pg_url) as env:
        other = create_engine(pg_url)
        try:
            node_b = MessageStore(session_factory(other), MASTER, AUDIT_KEY)
            subs = [submission() for _ in range(20)]
            results = await asyncio.gather(
                *(
                    (env.store if i % 2 else node_b).accept(sub, stamper(sub)[1], actor="t")
                    for i, sub in enumerate(subs)
                )
            )
        finally:
            await other.dispose()
        assert sorted(serial_of(r.registry) for r in results) == list(range(1, 21))
        async with env.sessions() as s:
            assert (await audit.verify(s, AUDIT_KEY)).ok


async def test_a_failing_stamp_stores_nothing_and_consumes_no_serial(db_url: str) -> None:
    async with store_env(db_url) as env:
        first = submission()
        await env.store.accept(first, stamper(first)[1], actor="t")
        before = await counts(env.sessions)

        class Boom(Exception):
            pass

        def broken(registry: str, issued_at: dt.datetime) -> Stamp:
            raise Boom("stamping failed")

        with pytest.raises(Boom):
            await env.store.accept(submission(), broken, actor="t")
        assert await counts(env.sessions) == before

        sub = submission()
        _, good = stamper(sub)

        def wrong_copies(registry: str, issued_at: dt.datetime) -> Stamp:
            stamp = good(registry, issued_at)
            return Stamp(stamp.registry, issued_at, stamp.token, stamp.verify_url, stamp.copies[:2])

        with pytest.raises(ValueError, match="recipients"):
            await env.store.accept(sub, wrong_copies, actor="t")
        assert await counts(env.sessions) == before

        def other_time(registry: str, issued_at: dt.datetime) -> Stamp:
            return good(registry, issued_at + dt.timedelta(seconds=1))

        with pytest.raises(ValueError, match="issue time"):
            await env.store.accept(sub, other_time, actor="t")
        assert await counts(env.sessions) == before

        again = await env.store.accept(sub, good, actor="t")
        assert serial_of(again.registry) == 2

        # The schema refuses statuses and queue states outside the documented sets.
        for stmt in (
            update(Message).values(status="bogus"),
            update(DeliveryQueueEntry).values(state="lost"),
        ):
            with pytest.raises(IntegrityError):
                async with env.sessions() as s, s.begin():
                    await s.execute(stmt)


async def test_a_database_error_mid_transaction_is_store_unavailable(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A duplicate trace code fails at the database: StoreUnavailable, nothing kept."""
    async with store_env(db_url) as env:
        first = submission()
        await env.store.accept(first, stamper(first)[1], actor="t")
        before = await counts(env.sessions)
        sub = submission(subject="Secret subject line")
        _, good = stamper(sub)

        def clashing(registry: str, issued_at: dt.datetime) -> Stamp:
            stamp = good(registry, issued_at)
            copies = tuple(
                StampedCopy(c.recipient, "same-trace", c.prefix, c.suffix) for c in stamp.copies
            )
            return Stamp(registry, issued_at, stamp.token, stamp.verify_url, copies)

        with (
            caplog.at_level(logging.ERROR, logger="barid.store"),
            pytest.raises(StoreUnavailable) as err,
        ):
            await env.store.accept(sub, clashing, actor="t")
        assert str(err.value) == "message store temporarily unavailable"
        assert err.value.__cause__ is None and err.value.__suppress_context__
        assert "Secret subject" not in caplog.text and "same-trace" not in caplog.text
        assert await counts(env.sessions) == before
        nxt = await env.store.accept(sub, good, actor="t")
        assert serial_of(nxt.registry) == 2


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_database_down_is_store_unavailable(
    backend: str, port_factory: Callable[[], int], tmp_path: object
) -> None:
    if backend == "postgres":
        url = f"postgresql+asyncpg://barid@127.0.0.1:{port_factory()}/nothing"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/barid.db"
    engine = create_engine(url, connect_timeout=2)
    store = MessageStore(session_factory(engine), MASTER, AUDIT_KEY)
    sub = submission()
    try:
        with pytest.raises(StoreUnavailable):
            await store.accept(sub, stamper(sub)[1], actor="t")
        with pytest.raises(StoreUnavailable):
            await store.record_rejection(actor="t", sender=SENDER, reason="policy", rule="r1")
        with pytest.raises(StoreUnavailable):
            await store.load_original(1)
        with pytest.raises(StoreUnavailable):
            await store.load_copy(1)
        with pytest.raises(StoreUnavailable):
            await store.copies_for(1)
        with pytest.raises(StoreUnavailable):
            await store.message_by_registry("MOH/2026/000001")
    finally:
        await engine.dispose()


async def test_unknown_sender_stores_nothing(db_url: str) -> None:
    async with store_env(db_url) as env:
        sub = submission()
        stranger = type(sub)(**{**{f: getattr(sub, f) for f in sub.__dataclass_fields__},
                                "sender_address": "ghost@moh.gov.example"})  # fmt: skip
        with pytest.raises(UnknownSender):
            await env.store.accept(stranger, stamper(stranger)[1], actor="t")
        assert (await counts(env.sessions))["messages"] == 0
        assert (await counts(env.sessions))["serials"] == 0


async def test_counters_are_per_agency_and_year(db_url: str) -> None:
    async with store_env(db_url) as env:
        async with env.sessions() as s, s.begin():
            agency_id = await s.scalar(select(Agency.id).where(Agency.code == "MOH"))
            assert agency_id is not None
            taken = [await allocate_serial(s, agency_id, 2026) for _ in range(3)]
            taken.append(await allocate_serial(s, agency_id, 2027))
        assert taken == [1, 2, 3, 1]
        async with env.sessions() as s:
            await s.begin()
            assert await allocate_serial(s, agency_id, 2026) == 4
            await s.rollback()  # a rolled-back allocation gives the number back
        async with env.sessions() as s, s.begin():
            assert await allocate_serial(s, agency_id, 2026) == 4
    assert format_registry("MOH", 2026, 42) == "MOH/2026/000042"
    assert format_registry("MOH-BGD", 2026, 1234567) == "MOH-BGD/2026/1234567"


async def test_rejections_are_audited(db_url: str) -> None:
    async with store_env(db_url) as env:
        await env.store.record_rejection(
            actor="smtp:192.0.2.1", sender=SENDER, reason="policy", rule="deny-external",
            recipients=["X@other.example"], client_address="192.0.2.1",
        )  # fmt: skip
        async with env.sessions() as s:
            event = await s.scalar(select(AuditEvent).where(AuditEvent.action == "message.reject"))
            assert event is not None
            assert (event.target, event.outcome) == (SENDER, "refused")
            assert json.loads(event.details) == {
                "reason": "policy", "rule": "deny-external",
                "recipients": ["x@other.example"], "client": "192.0.2.1",
            }  # fmt: skip
            assert (await audit.verify(s, AUDIT_KEY)).ok


def test_free_space_check(tmp_path: object) -> None:
    assert free_space_ok(str(tmp_path), 0)
    assert not free_space_ok(str(tmp_path), 1 << 62)
    assert not free_space_ok(f"{tmp_path}/missing", 0)
