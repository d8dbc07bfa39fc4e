"""The audit chain without a cluster-wide wait (PostgreSQL): an append whose head is
held by another transaction (another node) is staged at once instead of waiting,
then chained in order by the next holder of the head or the elected linker; the
chain stays gap-free, a rolled-back append leaves nothing, a changed staged event
is reported, and the linker runs on one node at a time."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.serve.audit_linker import AuditLinker
from gateway.store import audit, migrate
from gateway.store.db import create_engine, session_factory, transaction
from gateway.store.models import AuditEvent, AuditPending

pytestmark = pytest.mark.postgres

KEY = os.urandom(32)
NO_WAIT = 5.0  # seconds: an append that waited on the held head would exceed this
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[tuple[Sessions, Sessions]]:
    """Two engines on one database, as two gateway nodes."""
    engines = [create_engine(pg_url), create_engine(pg_url)]
    await migrate.upgrade(engines[0])
    try:
        yield session_factory(engines[0]), session_factory(engines[1])
    finally:
        for engine in engines:
            await engine.dispose()


def events(n: int, action: str = "message.access") -> list[audit.Event]:
    return [audit.Event(actor="clerk@moh.gov.xx", action=action, target=f"x{i}") for i in range(n)]


async def report(sessions: Sessions) -> audit.AuditReport:
    async with sessions() as s:
        return await audit.verify(s, KEY)


async def staged(sessions: Sessions) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(AuditPending)) or 0)


async def test_an_append_never_waits_for_a_held_head(nodes: tuple[Sessions, Sessions]) -> None:
    a, b = nodes
    async with transaction(a) as holder:
        await audit.append_many(holder, KEY, events(2, "held.by.a"))  # a holds the head
        async with transaction(b) as other:
            await asyncio.wait_for(audit.append_many(other, KEY, events(3)), NO_WAIT)
        assert await staged(b) == 3  # committed, not chained yet
    seen = await report(a)
    assert seen.ok and seen.staged == 3 and seen.events == 5, seen.problems
    async with transaction(b) as s:  # the next holder of the head chains the backlog first
        await audit.append_many(s, KEY, events(1, "later"))
    seen = await report(a)
    assert seen.ok and seen.staged == 0 and seen.events == 6, seen.problems
    async with a() as s:
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert actions == ["held.by.a"] * 2 + ["message.access"] * 3 + ["later"]


async def test_a_rolled_back_staged_append_leaves_nothing(nodes: tuple[Sessions, Sessions]) -> None:
    a, b = nodes
    async with transaction(a) as holder:
        await audit.append_many(holder, KEY, events(1))
        with pytest.raises(RuntimeError):
            async with transaction(b) as other:
                await audit.append_many(other, KEY, events(2))
                raise RuntimeError("the change it records failed")
        async with transaction(b) as other:
            await audit.append_many(other, KEY, events(2, "kept"))
    async with transaction(a) as s:
        assert await audit.link_pending(s, KEY) == 2
    seen = await report(a)
    assert seen.ok and seen.events == 3 and seen.staged == 0, seen.problems  # gap-free


async def test_a_changed_staged_event_is_reported_and_recorded(
    nodes: tuple[Sessions, Sessions],
) -> None:
    a, b = nodes
    async with transaction(a) as holder:
        await audit.append_many(holder, KEY, events(1))
        async with transaction(b) as other:
            await audit.append_many(other, KEY, events(2))
    async with transaction(a) as s:
        await s.execute(update(AuditPending).values(target="someone else"))
    assert any("staged event" in p and "MAC mismatch" in p for p in (await report(a)).problems)
    async with transaction(a) as s:
        await audit.link_pending(s, KEY)
    async with a() as s:
        last = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()))).first()
    assert last is not None and last.action == audit.PENDING_CHANGED
    assert (await report(a)).ok  # chained now, with the record of what was found


async def test_concurrent_nodes_and_linkers_keep_one_gap_free_chain(
    nodes: tuple[Sessions, Sessions],
) -> None:
    async def appender(sessions: Sessions, n: int) -> None:
        for _ in range(n):
            async with transaction(sessions) as s:
                await audit.append_many(s, KEY, events(2))

    await asyncio.gather(*(appender(nodes[i % 2], 10) for i in range(8)))
    linkers = [AuditLinker(sessions, KEY) for sessions in nodes]
    await asyncio.gather(*(linker.tick() for linker in linkers))
    while await staged(nodes[0]):  # a linker that lost the election skipped its round
        await linkers[0].tick()
    seen = await report(nodes[0])
    assert seen.ok and seen.events == 8 * 10 * 2 and seen.staged == 0, seen.problems
