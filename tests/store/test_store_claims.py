"""Work sharing between gateway nodes on one PostgreSQL: queue claims take their rows
FOR UPDATE SKIP LOCKED, so two nodes (two engines) racing over the same queued
copies claim disjoint sets that together cover every copy, and a node never waits
on rows another node holds."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.delivery import relay_work
from gateway.delivery.local import MailWorker
from gateway.delivery.relay_work import claim_due
from gateway.model.target import LOCAL
from gateway.serve.workers import DESCRIBE
from gateway.store import audit
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.db import create_engine, session_factory
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore
from gateway.store.models import AuditEvent, DeliveryQueueEntry
from keys.gateway_keys import derive_key
from testkit.store import AUDIT_KEY, MASTER, StoreEnv, stamper, store_env, submission

pytestmark = pytest.mark.postgres

MESSAGES = 12  # each: two local copies (unknown recipients) and one remote copy
LEASE = dt.timedelta(minutes=5)
NO_WAIT = 10.0  # seconds: a claim that waited on a held row lock would exceed this


@asynccontextmanager
async def two_nodes(
    pg_url: str,
) -> AsyncIterator[tuple[StoreEnv, async_sessionmaker[AsyncSession]]]:
    """Node A's store env with MESSAGES accepted, and node B's sessions (its own engine)."""
    async with store_env(pg_url) as env:
        subs = [submission(n_recipients=3) for _ in range(MESSAGES)]
        for sub in subs:
            await env.store.accept(sub, stamper(sub)[1], actor="t")
        other = create_engine(pg_url)
        try:
            yield env, session_factory(other)
        finally:
            await other.dispose()


async def entry_ids(sessions: async_sessionmaker[AsyncSession], *, local: bool) -> set[int]:
    target = DeliveryQueueEntry.target == LOCAL.column
    async with sessions() as s:
        found = await s.scalars(select(DeliveryQueueEntry.id).where(target if local else ~target))
        return set(found.all())


async def claim_all(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    taken: list[int] = []
    while work := await claim_due(sessions, LEASE):
        taken.extend(unit.id for unit in work)
        await asyncio.sleep(0)
    return taken


async def test_two_nodes_claim_disjoint_remote_copies_covering_all(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_work, "ROUND", 2)  # many small rounds: the nodes interleave
    async with two_nodes(pg_url) as (env, node_b):
        a, b = await asyncio.gather(claim_all(env.sessions), claim_all(node_b))
        assert len(a) == len(set(a)) and len(b) == len(set(b))
        assert not set(a) & set(b)
        assert set(a) | set(b) == await entry_ids(env.sessions, local=False)
        assert len(a) + len(b) == MESSAGES


async def test_a_claim_skips_rows_another_node_holds_without_waiting(pg_url: str) -> None:
    async with two_nodes(pg_url) as (env, node_b):
        remote = sorted(await entry_ids(env.sessions, local=False))
        held = remote[: MESSAGES // 2]
        async with env.sessions() as s, s.begin():
            await s.execute(
                text("SELECT id FROM delivery_queue WHERE id = ANY(:ids) FOR UPDATE"),
                {"ids": held},
            )
            work = await asyncio.wait_for(claim_due(node_b, LEASE), NO_WAIT)
            taken = await asyncio.wait_for(local_worker(node_b).deliver_local(), NO_WAIT)
        assert {unit.id for unit in work} == set(remote) - set(held)
        assert taken > 0


def local_worker(sessions: async_sessionmaker[AsyncSession]) -> MailWorker:
    cipher = BlobCipher(derive_key(MASTER, BLOB_KEK_PURPOSE))
    return MailWorker(
        sessions,
        cipher,
        MailboxStore(sessions, cipher, MailboxNotifier()),
        describe=DESCRIBE,
        signer_for=lambda domain: None,
        verify_url=lambda registry: "https://verify.example/v/x",
        hostname="gw.example",
        audit_key=AUDIT_KEY,
    )


async def deliver_all(worker: MailWorker) -> int:
    done = 0
    while taken := await worker.deliver_local():
        done += taken
        await asyncio.sleep(0)
    return done


async def test_two_nodes_deliver_each_local_copy_once(pg_url: str) -> None:
    async with two_nodes(pg_url) as (env, node_b):
        workers = [local_worker(env.sessions), local_worker(node_b)]
        try:
            done = await asyncio.gather(*(deliver_all(w) for w in workers))
        finally:
            for worker in workers:
                await worker.close()
        local = await entry_ids(env.sessions, local=True)
        assert sum(done) == len(local) == 2 * MESSAGES
        async with env.sessions.begin() as s:  # events staged while the head was busy
            await audit.link_pending(s, AUDIT_KEY)
        async with env.sessions() as s:
            states = set(
                (await s.scalars(select(DeliveryQueueEntry.state).where(
                    DeliveryQueueEntry.id.in_(local)))).all()
            )  # fmt: skip
            events = await s.scalar(
                select(func.count()).where(AuditEvent.action == "message.undeliverable")
            )
            report = await audit.verify(s, AUDIT_KEY)
        assert states == {"failed"}  # unknown recipients: each claimed once, as failed
        assert events == len(local)
        assert report.ok, report.problems
