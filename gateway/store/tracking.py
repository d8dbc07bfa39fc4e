"""Message tracking for administrators: an official message by registry number with
every copy's delivery state and the receipts owed or sent for it.

Owns: one read of the message's facts, its copies with their queue entries, and
its receipt jobs; and a sender's newest messages (facts only, within a set of
issuing agencies when asked). Must not: read or return any message content (body, subject,
blobs, documents), nor change anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Agency, DeliveryQueueEntry, Message, MessageCopy, ReceiptJob
from policies.directory import Clearance


@dataclass(frozen=True)
class ReceiptFacts:
    kind: str  # acceptance | delivery | non-delivery
    recipient: str  # "" for the acceptance receipt
    reason: str | None
    state: str  # pending | done
    event_at: str
    done_at: str | None


@dataclass(frozen=True)
class CopyFacts:
    recipient: str
    target: str  # "local", "peer:<name>" or "imap:<name>"
    trace_code: str
    state: str  # queued | delivering | delivered | failed | held
    attempts: int
    delivered_at: str | None
    last_error: str | None
    queue_entry: int
    receipts: tuple[ReceiptFacts, ...]


@dataclass(frozen=True)
class MessageFacts:
    registry: str
    agency: str
    sender: str
    classification: str
    size: int
    accepted_at: str
    status: str  # valid | revoked
    revoked_at: str | None
    revoked_reason: str | None
    receipts: tuple[ReceiptFacts, ...]  # the sender's acceptance receipt
    copies: tuple[CopyFacts, ...]


async def track_message(session: AsyncSession, registry: str) -> MessageFacts | None:
    """The message with that registry number (exact match) and its copies, or None."""
    row = (
        await session.execute(
            select(Message, Agency.code)
            .join(Agency, Agency.id == Message.agency_id)
            .where(Message.registry_number == registry.strip())
        )
    ).first()
    if row is None:
        return None
    message, agency = row
    receipts: dict[str, list[ReceiptFacts]] = {}
    for job in (
        await session.scalars(
            select(ReceiptJob).where(ReceiptJob.message_id == message.id).order_by(ReceiptJob.id)
        )
    ).all():
        receipts.setdefault(job.recipient, []).append(
            ReceiptFacts(job.kind, job.recipient, job.reason, job.state, job.event_at, job.done_at)
        )
    copies = (
        await session.execute(
            select(MessageCopy, DeliveryQueueEntry)
            .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
            .where(MessageCopy.message_id == message.id)
            .order_by(MessageCopy.id)
        )
    ).all()
    return MessageFacts(
        registry=message.registry_number,
        agency=agency,
        sender=message.sender_address,
        classification=Clearance(message.classification).label,
        size=message.size,
        accepted_at=message.accepted_at,
        status=message.status,
        revoked_at=message.revoked_at,
        revoked_reason=message.revoked_reason,
        receipts=tuple(receipts.get("", ())),
        copies=tuple(
            CopyFacts(
                recipient=copy.recipient,
                target=entry.target,
                trace_code=copy.trace_code,
                state=entry.state,
                attempts=entry.attempts,
                delivered_at=entry.delivered_at,
                last_error=entry.last_error,
                queue_entry=entry.id,
                receipts=tuple(receipts.get(copy.recipient, ())),
            )
            for copy, entry in copies
        ),
    )


@dataclass(frozen=True)
class SentFacts:
    """One message of a sender, as listed: no content, no copies."""

    registry: str
    agency: str
    classification: str
    accepted_at: str
    status: str  # valid | revoked
    copies: int


async def sender_messages(
    session: AsyncSession, sender: str, *, agencies: frozenset[str] | None, limit: int
) -> list[SentFacts]:
    """The newest `limit` messages sent by `sender` (exact address), issued by one of
    `agencies` (None: any agency)."""
    copies = (
        select(func.count(MessageCopy.id))
        .where(MessageCopy.message_id == Message.id)
        .scalar_subquery()
    )
    query = (
        select(Message, Agency.code, copies)
        .join(Agency, Agency.id == Message.agency_id)
        .where(Message.sender_address == sender)
        .order_by(Message.accepted_at.desc(), Message.id.desc())
        .limit(limit)
    )
    if agencies is not None:
        query = query.where(Agency.code.in_(sorted(agencies)))
    rows = (await session.execute(query)).all()
    return [
        SentFacts(
            registry=message.registry_number,
            agency=agency,
            classification=Clearance(message.classification).label,
            accepted_at=message.accepted_at,
            status=message.status,
            copies=count,
        )
        for message, agency, count in rows
    ]
