"""The facts of an owed receipt, read from the store; which messages get a summary.

Owns: `job_facts` (a `receipt_jobs` row and its message as `ReceiptFacts`, the
one reading shared by the receipt writer and `barid receipts evidence`),
`summary_facts` (the delivery summary of a message: its copies delivered,
failed and pending), `summarised` and `SummarisedMessages` (which messages get
a summary instead of a delivery receipt per copy). Must not: claim jobs or file
mail (gateway.delivery.receipt_writer does) or sign anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery.receipts import ReceiptFacts, ReceiptKind
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
    evidence = dict(
        (
            await session.execute(
                select(ReceiptJob.recipient, ReceiptJob.evidence).where(
                    ReceiptJob.message_id == message.id,
                    ReceiptJob.kind == ReceiptKind.DELIVERY.value,
                )
            )
        ).all()
    )
    rows = (
        await session.execute(
            select(
                MessageCopy.recipient,
                DeliveryQueueEntry.state,
                DeliveryQueueEntry.delivered_at,
                DeliveryQueueEntry.updated_at,
            )
            .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
            .where(MessageCopy.message_id == message.id)
            .order_by(MessageCopy.id)
        )
    ).all()
    by_state: dict[str, list[str]] = {"delivered": [], "failed": [], "pending": []}
    copies = []
    for recipient, state, delivered_at, updated_at in rows:
        outcome = state if state in SETTLED else "pending"
        by_state[outcome].append(recipient)
        at = {"delivered": delivered_at, "failed": updated_at}.get(outcome) or ""
        copies.append((recipient, outcome, at, evidence.get(recipient) or ""))
    facts = dataclasses.replace(
        base,
        kind=ReceiptKind.SUMMARY,
        event_at=now,
        recipients=tuple(by_state["delivered"]),
        failed=tuple(by_state["failed"]),
        pending=tuple(by_state["pending"]),
        copies=tuple(copies),
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


class SummarisedMessages:
    """Which messages get a summary (more copies than `threshold`; 0: none), each
    message's copies counted once (they never change after acceptance)."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._known: dict[int, bool] = {}

    async def among(self, session: AsyncSession, message_ids: set[int]) -> set[int]:
        if self._threshold <= 0:
            return set()
        unknown = message_ids - self._known.keys()
        if unknown:
            if len(self._known) > 10_000:
                self._known.clear()
            found = await summarised(session, unknown, self._threshold)
            self._known.update({message_id: message_id in found for message_id in unknown})
        return {message_id for message_id in message_ids if self._known[message_id]}
