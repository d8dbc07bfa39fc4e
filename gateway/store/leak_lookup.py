"""Finding stored copies from what leaked: by trace code, by a document's SHA-256.

Owns: the read-only queries a leak trace needs: copies whose trace code is one
of a set of candidates, and messages holding a document with a given SHA-256,
each with the issuing agency (for the caller's scope check). Must not: decide
which candidates to try (admin.services.leak_input does), check scope, or write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Agency, Message, MessageCopy, MessageDocument

IN_BATCH = 500  # candidates per IN (...) query


@dataclass(frozen=True)
class CopyRef:
    """One recipient's stored copy, with what places it in the agency tree."""

    copy_id: int
    message_id: int
    registry: str
    agency: str
    recipient: str
    trace_code: str


@dataclass(frozen=True)
class DocumentRef:
    """A document of a stored message, matched by its SHA-256."""

    message_id: int
    registry: str
    agency: str
    name: str
    position: int


async def copies_by_trace(session: AsyncSession, codes: Sequence[str]) -> list[CopyRef]:
    """The copies whose trace code is one of `codes` (exact, canonical form)."""
    wanted = sorted(set(codes))
    found: list[CopyRef] = []
    for start in range(0, len(wanted), IN_BATCH):
        rows = (
            await session.execute(
                select(MessageCopy, Message.registry_number, Agency.code)
                .join(Message, Message.id == MessageCopy.message_id)
                .join(Agency, Agency.id == Message.agency_id)
                .where(MessageCopy.trace_code.in_(wanted[start : start + IN_BATCH]))
            )
        ).all()
        found.extend(
            CopyRef(copy.id, copy.message_id, registry, agency, copy.recipient, copy.trace_code)
            for copy, registry, agency in rows
        )
    return sorted(found, key=lambda ref: ref.copy_id)


async def copies_of(session: AsyncSession, message_id: int) -> list[CopyRef]:
    """Every copy of one message, in recipient order."""
    rows = (
        await session.execute(
            select(MessageCopy, Message.registry_number, Agency.code)
            .join(Message, Message.id == MessageCopy.message_id)
            .join(Agency, Agency.id == Message.agency_id)
            .where(MessageCopy.message_id == message_id)
            .order_by(MessageCopy.id)
        )
    ).all()
    return [
        CopyRef(copy.id, copy.message_id, registry, agency, copy.recipient, copy.trace_code)
        for copy, registry, agency in rows
    ]


async def documents_by_sha256(session: AsyncSession, sha256: str) -> list[DocumentRef]:
    """Every stored message document with this SHA-256 (lower-case hex), oldest first."""
    rows = (
        await session.execute(
            select(MessageDocument, Message.registry_number, Agency.code)
            .join(Message, Message.id == MessageDocument.message_id)
            .join(Agency, Agency.id == Message.agency_id)
            .where(MessageDocument.sha256 == sha256.lower())
            .order_by(Message.id, MessageDocument.position)
        )
    ).all()
    return [
        DocumentRef(doc.message_id, registry, agency, doc.name, doc.position)
        for doc, registry, agency in rows
    ]


@dataclass(frozen=True)
class Origin:
    """Who handed a message to Barid, when and from where."""

    registry: str
    agency: str
    sender: str
    client_address: str
    accepted_at: str
    classification: int


async def origin_of(session: AsyncSession, message_id: int) -> Origin | None:
    row = (
        await session.execute(
            select(Message, Agency.code)
            .join(Agency, Agency.id == Message.agency_id)
            .where(Message.id == message_id)
        )
    ).first()
    if row is None:
        return None
    message, agency = row
    return Origin(
        message.registry_number,
        agency,
        message.sender_address,
        message.client_address,
        message.accepted_at,
        message.classification,
    )
