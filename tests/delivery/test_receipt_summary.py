"""Receipt summaries: a message with more copies than `[receipts] summary_threshold`
gets one delivery summary in the sender's Receipts, its delivery receipts are
kept as signed evidence (rebuilt and verified by `barid receipts evidence`), a
failure is still reported at once, a message below the threshold is unchanged
(a receipt per copy), and at the deadline the summary lists what is pending."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import select, update

from gateway.delivery.evidence import statement, verify
from gateway.delivery.receipt_evidence import load_evidence
from gateway.delivery.receipt_writer import due_summaries
from gateway.store import migrate
from gateway.store.db import create_engine, session_factory
from gateway.store.mailbox.folders import RECEIPTS
from gateway.store.models import (
    DeliveryQueueEntry,
    Employee,
    Mailbox,
    MailboxMessage,
    Message,
    MessageCopy,
    ReceiptJob,
)
from gateway.store.queue import skip_locked
from keys.dkim_dns import dkim_records
from testkit.cli import run_cli
from testkit.gateway import Live, running
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
FIVE = [
    "minister@mof.gov.example",
    "director@cab.gov.example",
    "registrar@moh.gov.example",
    "clerk@moh.gov.example",
    "planning.director@moh.gov.example",
]
THRESHOLD = 3


@pytest.fixture(params=[60.0])
async def gw(
    demo_template: Path,
    tmp_path: Path,
    credentials: dict[str, dict[str, Any]],
    request: pytest.FixtureRequest,
) -> AsyncIterator[Live]:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    env = {
        "BARID_RECEIPTS__SUMMARY_THRESHOLD": str(THRESHOLD),
        "BARID_RECEIPTS__SUMMARY_DEADLINE_MINUTES": str(request.param),
    }
    async with running(data, credentials, env) as live:
        assert live.gateway.worker is not None
        await live.gateway.worker.stop()  # the test drives the rounds
        yield live


async def _drain(live: Live) -> None:
    worker = live.gateway.worker
    assert worker is not None
    for _ in range(50):
        if not await worker.run_once():
            return
    raise AssertionError("the worker did not run dry")


async def _receipts(live: Live) -> list[bytes]:
    """The sender's Receipts folder, in UID order."""
    async with live.gateway.sessions() as s:
        ids = (
            await s.scalars(
                select(MailboxMessage.content_id)
                .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
                .join(Employee, Employee.id == Mailbox.employee_id)
                .where(Employee.address == MOH, Mailbox.name == RECEIPTS)
                .order_by(MailboxMessage.uid)
            )
        ).all()
    assert live.gateway.mailboxes is not None
    return [await live.gateway.mailboxes.load_bytes(i) for i in ids]


def _kinds(receipts: list[bytes]) -> list[str]:
    out = []
    for raw in receipts:
        head = raw.split(b"\r\n\r\n", 1)[0]
        line = next(ln for ln in head.split(b"\r\n") if ln.startswith(b"Barid-Receipt:"))
        out.append(line.split(b":", 1)[1].strip().decode())
    return out


async def _send(live: Live, gnupghome: Path, recipients: list[str]) -> str:
    raw = pgp_mime(gnupghome, MOH, MOH, recipients)
    code, text = await live.send(MOH, recipients, raw)
    assert code == 250, text
    async with live.gateway.sessions() as s:
        registry = await s.scalar(select(Message.registry_number).order_by(Message.id.desc()))
    assert registry is not None
    return registry


async def test_summary_instead_of_receipts_failure_at_once_evidence_verifies(
    gw: Live, gnupghome: Path
) -> None:
    registry = await _send(gw, gnupghome, FIVE)
    async with gw.gateway.sessions() as s, s.begin():
        # One recipient is suspended before delivery (a failure); one copy is held.
        await s.execute(
            update(Employee).where(Employee.address == FIVE[3]).values(status="suspended")
        )
        held = select(MessageCopy.id).where(MessageCopy.recipient == FIVE[4])
        await s.execute(
            update(DeliveryQueueEntry)
            .where(DeliveryQueueEntry.copy_id.in_(held))
            .values(state="held")
        )
    await _drain(gw)
    # The failure is reported at once; the summary waits for the held copy.
    assert sorted(_kinds(await _receipts(gw))) == ["acceptance", "non-delivery"]
    async with gw.gateway.sessions() as s, s.begin():
        await s.execute(
            update(DeliveryQueueEntry)
            .where(DeliveryQueueEntry.state == "held")
            .values(state="queued")
        )
    await _drain(gw)
    receipts = await _receipts(gw)
    assert sorted(_kinds(receipts)) == ["acceptance", "non-delivery", "summary"]
    summary = next(r for r in receipts if b"Barid-Receipt: summary" in r)
    assert summary.startswith(b"DKIM-Signature:")
    assert f"Barid-Registry: {registry}".encode() in summary
    facts = _receipt_json(summary)
    outcomes = {c["recipient"]: c for c in facts["copies"]}
    assert sorted(outcomes) == sorted(FIVE) and outcomes[FIVE[3]]["outcome"] == "failed"
    delivered = [c for c in facts["copies"] if c["outcome"] == "delivered"]
    assert len(delivered) == 4 and all(c["at"] and c["evidence"] for c in delivered)
    async with gw.gateway.sessions() as s:
        jobs = (await s.scalars(select(ReceiptJob).where(ReceiptJob.kind == "delivery"))).all()
    assert len(jobs) == 4 and all(j.state == "done" and j.evidence for j in jobs)
    # The evidence: a signed statement per delivered copy, verified by the gateway's key.
    settings = gw.gateway.settings
    public = settings.http.public_url.rstrip("/")
    rebuild = (settings.server.hostname, settings.keys.dkim_selector, lambda t: f"{public}/v/{t}")
    found = await load_evidence(gw.gateway.sessions, gw.gateway_keys, registry, receipts=rebuild)
    assert sorted(e.recipient for e in found) == sorted(a for a in FIVE if a != FIVE[3])
    for item in found:
        assert item.verified
        assert json.loads(item.statement)["recipient"] == item.recipient
        assert f"Barid-Recipient: {item.recipient}".encode() in item.receipt
        assert dkim.verify(item.receipt, dnsfunc=_dns(gw, settings.keys.dkim_selector))
    forged = statement(registry, "0" * 64, found[0].recipient, found[0].delivered_at)
    assert not verify(found[0].signature, forged, gw.gateway_keys.verification_keys)
    # And by the command line, as the registry would ask for it.
    out = run_cli(gw.data, "receipts", "evidence", registry, "--json", "--out", str(gw.data / "ev"))
    rows = json.loads(out)
    assert len(rows) == 4 and all(row["verified"] for row in rows)
    assert len(list((gw.data / "ev").glob("*.eml"))) == 4
    with pytest.raises(RuntimeError, match="no message with registry number MOH/2026/999999"):
        run_cli(gw.data, "receipts", "evidence", "MOH/2026/999999")
    # Below the threshold nothing changes: a receipt per copy, no summary, no evidence.
    before = len(receipts)
    small = await _send(gw, gnupghome, FIVE[:THRESHOLD])
    await _drain(gw)
    added = (await _receipts(gw))[before:]
    assert sorted(_kinds(added)) == ["acceptance"] + ["delivery"] * THRESHOLD
    assert all(f"Barid-Registry: {small}".encode() in r for r in added)
    async with gw.gateway.sessions() as s:
        jobs = (
            await s.scalars(
                select(ReceiptJob)
                .join(Message, Message.id == ReceiptJob.message_id)
                .where(Message.registry_number == small)
            )
        ).all()
    assert sorted(j.kind for j in jobs) == ["acceptance"] + ["delivery"] * THRESHOLD
    assert not any(j.evidence for j in jobs)


def _receipt_json(raw: bytes) -> dict[str, Any]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.get_filename() == "receipt.json":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return dict(json.loads(payload))
    raise AssertionError("no receipt.json")


def _dns(live: Live, selector: str) -> Callable[..., bytes | None]:
    records = {
        f"{r.name}.".encode(): r.value.encode()
        for r in dkim_records(live.gateway_keys, selector, "moh.gov.example")
    }
    return lambda name, timeout=5: records.get(name)


@pytest.mark.parametrize("gw", [0.001], indirect=True)  # a deadline of 60 ms
async def test_at_the_deadline_the_summary_lists_what_is_pending(gw: Live, gnupghome: Path) -> None:
    await _send(gw, gnupghome, FIVE[:4])
    async with gw.gateway.sessions() as s, s.begin():
        held = select(MessageCopy.id).where(MessageCopy.recipient == FIVE[0])
        await s.execute(
            update(DeliveryQueueEntry)
            .where(DeliveryQueueEntry.copy_id.in_(held))
            .values(state="held")
        )
    await _drain(gw)
    summary = next(r for r in await _receipts(gw) if b"Barid-Receipt: summary" in r)
    facts = _receipt_json(summary)
    assert facts["pending"] == [FIVE[0]] and sorted(facts["recipients"]) == sorted(FIVE[1:4])


async def test_due_summaries_claim_runs_on_postgres_and_the_migration_goes_both_ways(
    pg_url: str,
) -> None:
    engine = create_engine(pg_url)
    try:
        await migrate.upgrade(engine)
        async with session_factory(engine)() as s, s.begin():
            query = skip_locked(due_summaries("2026-01-01T00:00:00.000000Z", 8), s, ReceiptJob)
            assert "FOR UPDATE" in str(query.compile(dialect=s.get_bind().dialect))
            assert (await s.scalars(query)).all() == []
        await migrate.downgrade(engine, "0015")
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()
