"""The facts of an owed receipt, read from the store; delivery evidence of summarised messages.

Owns: `job_facts` (a `receipt_jobs` row and its message as `ReceiptFacts`, the
one reading shared by the receipt writer and `barid receipts evidence`),
`summary_facts` (the delivery summary of a message: its copies delivered,
failed and pending), `summarised` (which messages get a summary instead of a
delivery receipt per copy) and the evidence of a delivery that is not filed as
mail: `evidence_fields` (the DKIM-Signature fields of its receipt, stored in
`receipt_jobs.evidence`) and `evidence_receipt` (that signed receipt again,
rebuilt from the same facts: a receipt is deterministic, so the stored
signature fits it byte for byte). Must not: claim jobs or file mail
(gateway.delivery.receipt_writer does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery.receipts import ReceiptFacts, ReceiptKind, build_receipt
from gateway.delivery.receipts.facts import checked
from gateway.stamping.dkim import DkimSigner
from gateway.store.models import (
    Agency,
    DeliveryQueueEntry,
    Message,
    MessageCopy,
    MessageDocument,
    ReceiptJob,
)
from policies.directory import Clearance

SETTLED = ("delivered", "failed")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


async def _base_facts(
    session: AsyncSession, message: Message, verify_url: Callable[[str], str]
) -> tuple[ReceiptFacts, str]:
    """Facts of any receipt about `message` (kind ACCEPTANCE, no recipients yet), and
    the sender agency's domain."""
    domain = str(await session.scalar(select(Agency.domain).where(Agency.id == message.agency_id)))
    documents = tuple(
        (d.name, d.sha256)
        for d in (
            await session.scalars(
                select(MessageDocument)
                .where(MessageDocument.message_id == message.id)
                .order_by(MessageDocument.position)
            )
        ).all()
    )
    facts = ReceiptFacts(
        kind=ReceiptKind.ACCEPTANCE,
        registry=message.registry_number,
        token=message.token,
        verify_url=verify_url(message.token),
        sender_address=message.sender_address,
        sender_domain=domain,
        subject=" ".join(message.subject.split()),
        classification=Clearance(message.classification).label,
        accepted_at=parse_time(message.accepted_at),
        event_at=parse_time(message.accepted_at),
        recipients=(),
        documents=documents,
    )
    return facts, domain


async def job_facts(
    session: AsyncSession, message: Message, job: ReceiptJob, verify_url: Callable[[str], str]
) -> tuple[ReceiptFacts, str]:
    """The facts of the receipt `job` owes (not a summary), and the sender's domain."""
    base, domain = await _base_facts(session, message, verify_url)
    kind = ReceiptKind(job.kind)
    if kind is ReceiptKind.ACCEPTANCE:
        recipients = tuple(
            (
                await session.scalars(
                    select(MessageCopy.recipient)
                    .where(MessageCopy.message_id == message.id)
                    .order_by(MessageCopy.id)
                )
            ).all()
        )
    else:
        recipients = (job.recipient,)
    facts = dataclasses.replace(
        base,
        kind=kind,
        event_at=parse_time(job.event_at),
        recipients=recipients,
        reason=job.reason,
        detail=job.detail,
        remote_mta=job.remote_mta,
        status=job.status,
    )
    return facts, domain


async def summary_facts(
    session: AsyncSession, message: Message, now: dt.datetime, verify_url: Callable[[str], str]
) -> tuple[ReceiptFacts, str]:
    """The delivery summary of `message` at `now`: its copies by outcome."""
    base, domain = await _base_facts(session, message, verify_url)
    rows = (
        await session.execute(
            select(MessageCopy.recipient, DeliveryQueueEntry.state)
            .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
            .where(MessageCopy.message_id == message.id)
            .order_by(MessageCopy.id)
        )
    ).all()
    by_state: dict[str, list[str]] = {"delivered": [], "failed": [], "pending": []}
    for recipient, state in rows:
        by_state[state if state in SETTLED else "pending"].append(recipient)
    facts = dataclasses.replace(
        base,
        kind=ReceiptKind.SUMMARY,
        event_at=now,
        recipients=tuple(by_state["delivered"]),
        failed=tuple(by_state["failed"]),
        pending=tuple(by_state["pending"]),
    )
    return facts, domain


async def summarised(session: AsyncSession, message_ids: Iterable[int], threshold: int) -> set[int]:
    """Those of `message_ids` with more copies than `threshold` (0: none of them)."""
    wanted = sorted(set(message_ids))
    if threshold <= 0 or not wanted:
        return set()
    rows = await session.execute(
        select(MessageCopy.message_id)
        .where(MessageCopy.message_id.in_(wanted))
        .group_by(MessageCopy.message_id)
        .having(func.count() > threshold)
    )
    return {int(row[0]) for row in rows.all()}


def evidence_fields(facts: ReceiptFacts, *, hostname: str, signer: DkimSigner | None) -> str:
    """The DKIM-Signature fields of the receipt about `facts` ("" when it cannot be
    signed: the agency domain has no signer), as `build_receipt` would sign it."""
    if signer is None:
        return ""
    unsigned = build_receipt(facts, hostname=hostname, signer=None)
    moment = checked(facts).event_at
    return signer.sign(unsigned, timestamp=int(moment.timestamp())).decode("ascii")


def evidence_receipt(facts: ReceiptFacts, *, hostname: str, evidence: str) -> bytes:
    """The signed receipt again: the stored signature fields on the rebuilt receipt."""
    return evidence.encode("ascii") + build_receipt(facts, hostname=hostname, signer=None)
