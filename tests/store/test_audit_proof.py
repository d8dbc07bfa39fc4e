"""The audit trail proves itself: an authenticated head row and signed checkpoints,
on SQLite and a real PostgreSQL, with real gateway keys (Ed25519 signing key,
master key) made the way `barid init` makes them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Settings
from gateway.serve.audit_checkpointer import AuditCheckpointer
from gateway.store import audit, audit_checkpoints, migrate
from gateway.store.db import create_engine, session_factory, transaction
from gateway.store.models import AuditCheckpoint, AuditEvent, AuditHead, Meta
from keys.gateway_keys import GatewayKeys, ensure_gateway_keys, key_id, load_gateway_keys


@dataclass
class Chain:
    sessions: async_sessionmaker[AsyncSession]
    keys: GatewayKeys
    key: bytes
    url: str

    async def add(self, n: int, action: str = "test.event") -> None:
        async with transaction(self.sessions) as s:
            await audit.append_many(
                s,
                self.key,
                [audit.Event(actor="t", action=action, target=f"x{i}") for i in range(n)],
            )

    async def checkpoint(self) -> audit_checkpoints.CheckpointFacts:
        async with transaction(self.sessions) as s:
            return await audit_checkpoints.write_checkpoint(
                s, self.key, self.keys.signing_key, self.keys.signing_key_id, node="n1", actor="t"
            )

    async def run(self, *statements: object) -> None:
        async with transaction(self.sessions) as s:
            for stmt in statements:
                await s.execute(stmt)  # type: ignore[call-overload]

    async def problems(self) -> list[str]:
        async with self.sessions() as s:
            report = await audit.verify(s, self.key)
            _, more = await audit_checkpoints.verify_checkpoints(s, self.keys.verification_keys)
        return report.problems + more

    async def event(self, event_id: int) -> AuditEvent:
        async with self.sessions() as s:
            ev = await s.get(AuditEvent, event_id)
            assert ev is not None
            return ev


@pytest.fixture
async def chain(db_url: str, tmp_path: Path) -> AsyncIterator[Chain]:
    ensure_gateway_keys(tmp_path / "keys")
    keys = load_gateway_keys(tmp_path / "keys")
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        assert await audit.seal_head(s, keys.derive(audit.AUDIT_KEY_PURPOSE))
    try:
        yield Chain(sessions, keys, keys.derive(audit.AUDIT_KEY_PURPOSE), db_url)
    finally:
        await engine.dispose()


def head_from_table(ev: AuditEvent) -> object:
    """Rewrite the head from values already in the table: no key needed."""
    return update(AuditHead).values(last_id=ev.id, last_mac=ev.mac, count=ev.id)


async def test_defect_deleting_the_newest_31_and_rewriting_the_head_is_detected(
    chain: Chain,
) -> None:
    await chain.add(100)
    assert await chain.problems() == []
    newest_kept = await chain.event(69)
    await chain.run(delete(AuditEvent).where(AuditEvent.id > 69), head_from_table(newest_kept))
    problems = await chain.problems()
    # The chain itself is consistent now; only the head's MAC gives it away.
    assert problems == ["audit head MAC mismatch: the head row was rewritten without the audit key"]
    # ... and so does removing the head's MAC, since a seal exists.
    await chain.run(update(AuditHead).values(mac=None))
    assert await chain.problems() == [
        "audit head is not sealed, but was sealed before (MAC removed)"
    ]


async def test_an_append_never_launders_a_rewritten_head(chain: Chain) -> None:
    await chain.add(40)
    await chain.run(
        delete(AuditEvent).where(AuditEvent.id > 30), head_from_table(await chain.event(30))
    )
    await chain.add(5)  # the gateway goes on appending
    async with chain.sessions() as s:
        head = await s.get(AuditHead, 1)
        assert head is not None and head.mac == audit.BROKEN_HEAD_MAC and head.last_id == 35
    assert any("head MAC mismatch" in p for p in await chain.problems())


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("edit", "event 12: content changed (MAC mismatch)"),
        ("delete-middle", "event 12: missing (next event is 13)"),
        ("truncate", "chain ends at event 17 but the head records event 20"),
        ("head-count", "audit head MAC mismatch"),
    ],
)
async def test_tampering_is_detected(chain: Chain, tamper: str, expected: str) -> None:
    await chain.add(20)
    stmt = {
        "edit": update(AuditEvent).where(AuditEvent.id == 12).values(target="someone else"),
        "delete-middle": delete(AuditEvent).where(AuditEvent.id == 12),
        "truncate": delete(AuditEvent).where(AuditEvent.id > 17),
        "head-count": update(AuditHead).values(count=AuditHead.count + 1),
    }[tamper]
    await chain.run(stmt)
    problems = await chain.problems()
    assert any(p.startswith(expected) for p in problems), problems


async def test_checkpoints_verify_and_are_in_the_chain(chain: Chain) -> None:
    await chain.add(10)
    facts = await chain.checkpoint()
    assert (facts.event_id, facts.count, facts.key_id) == (11, 11, chain.keys.signing_key_id)
    ev = await chain.event(11)
    assert ev.action == audit.CHECKPOINT_ACTION and ev.mac == facts.event_mac
    await chain.add(3)
    assert await chain.problems() == []
    async with chain.sessions() as s:
        count, _ = await audit_checkpoints.verify_checkpoints(s, chain.keys.verification_keys)
    assert count == 1


async def test_a_forged_checkpoint_is_detected(chain: Chain) -> None:
    await chain.add(10)
    await chain.checkpoint()
    other = Ed25519PrivateKey.generate()
    ev = await chain.event(5)
    payload = audit_checkpoints.signed_payload(
        event_id=5, event_mac=ev.mac, count=5, at=ev.at, node="n1", key_id=chain.keys.signing_key_id
    )
    forged = audit_checkpoints.b64url(other.sign(payload))
    await chain.run(
        AuditCheckpoint.__table__.insert().values(
            event_id=5, event_mac=ev.mac, count=5, at=ev.at, node="n1",
            key_id=chain.keys.signing_key_id, signature=forged,
        )
    )  # fmt: skip
    problems = await chain.problems()
    assert problems == ["checkpoint at event 5: bad signature (forged checkpoint?)"]
    own_kid = key_id(other.public_key())
    await chain.run(
        update(AuditCheckpoint).where(AuditCheckpoint.event_id == 5).values(key_id=own_kid)
    )
    assert await chain.problems() == [
        f"checkpoint at event 5: signed with unknown key {own_kid} (forged checkpoint?)"
    ]


async def test_a_changed_checkpoint_or_a_deleted_one_is_detected(chain: Chain) -> None:
    await chain.add(10)
    await chain.checkpoint()
    await chain.run(update(AuditCheckpoint).values(count=3))
    assert "bad signature" in (await chain.problems())[0]
    await chain.run(delete(AuditCheckpoint))
    assert await chain.problems() == ["event 11: its signed checkpoint row is missing"]


async def test_a_tail_cut_below_a_checkpoint_is_detected_even_with_the_audit_key(
    chain: Chain,
) -> None:
    """Someone holding the audit key (not the signing key) deletes the tail and
    re-MACs the head: the chain and head verify, the checkpoint does not."""
    await chain.add(50)
    await chain.checkpoint()  # event 51
    await chain.add(20)
    kept = await chain.event(40)
    async with transaction(chain.sessions) as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.id > 40))
        head = await s.get(AuditHead, 1)
        assert head is not None
        head.last_id, head.last_mac, head.count, head.seq = 40, kept.mac, 40, head.seq + 1
        head.mac = audit.head_mac(
            chain.key, last_id=40, last_mac=kept.mac, count=40, seq=head.seq,
            sealed_at=head.sealed_at,
        )  # fmt: skip
    async with chain.sessions() as s:
        assert (await audit.verify(s, chain.key)).ok  # the keyed chain alone is fooled
    assert await chain.problems() == [
        "checkpoint at event 51: the event is missing from the chain (tail deleted?)"
    ]


async def test_an_upgraded_unsealed_head_stays_green_until_sealed(chain: Chain) -> None:
    await chain.add(7)
    engine = create_engine(chain.url)
    try:
        await migrate.downgrade(engine, "0007")  # a database from before the head MAC
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    await chain.run(delete(Meta).where(Meta.key == audit.SEALED_MARKER))
    async with chain.sessions() as s:
        head = await s.get(AuditHead, 1)
        assert head is not None and head.mac is None and head.last_id == 7
    assert await chain.problems() == []  # upgrades stay green
    async with transaction(chain.sessions) as s:
        assert await audit.seal_head(s, chain.key)
        assert not await audit.seal_head(s, chain.key)  # idempotent
    assert await chain.problems() == []
    await chain.add(2)
    assert await chain.problems() == []


async def test_the_first_append_after_an_upgrade_seals_the_head(chain: Chain) -> None:
    await chain.run(
        update(AuditHead).values(mac=None, seq=0, sealed_at=None),
        delete(Meta).where(Meta.key == audit.SEALED_MARKER),
    )
    await chain.add(1)
    async with chain.sessions() as s:
        assert await audit.head_sealed(s)
        assert await s.scalar(select(Meta.value).where(Meta.key == audit.SEALED_MARKER)) == 1
    assert await chain.problems() == []


async def test_periodic_checkpoints(chain: Chain) -> None:
    settings = Settings.model_validate(
        {"audit": {"checkpoint_every_events": 10, "checkpoint_every_minutes": 5.0}}
    )
    worker = AuditCheckpointer(settings, chain.sessions, chain.keys, chain.key)
    now = dt.datetime.now(dt.UTC)
    assert await worker.tick(now) is None  # no event yet
    await chain.add(3)
    first = await worker.tick(now)  # the first checkpoint is due at once
    assert first is not None and first.event_id == 4
    assert await worker.tick(now) is None  # nothing new
    await chain.add(9)
    assert await worker.tick(now) is None  # 9 new events, 0 minutes
    assert await worker.tick(now + dt.timedelta(minutes=6)) is not None  # time trigger
    await chain.add(10)
    count_trigger = await worker.tick(now + dt.timedelta(minutes=6))
    assert count_trigger is not None and count_trigger.event_id == 25
    assert await chain.problems() == []
    worker.start()
    await worker.stop()
