"""Reading stored official messages back: the message, its documents, its copies and bytes.

Owns: the read-only views (`StoredMessage`, `StoredDocument`, `StoredCopy`) and
`MessageReader`, each read its own session. Must not: write, or decrypt more
than the blobs asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.blobs import BlobCipher, read_blob
from gateway.store.errors import DATABASE_ERRORS, UnknownMessage, database_trouble
from gateway.store.models import Agency, DeliveryQueueEntry, Message, MessageCopy, MessageDocument
from policies.directory import Clearance


@dataclass(frozen=True, slots=True)
class StoredDocument:
    name: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    registry: str
    agency: str
    sender_address: str
    classification: Clearance
    subject: str
    size: int
    sha256: str
    token: str
    key_id: str | None
    accepted_at: str
    status: str  # valid | revoked
    revoked_at: str | None
    revoked_reason: str | None
    client_address: str
    documents: tuple[StoredDocument, ...]


@dataclass(frozen=True, slots=True)
class StoredCopy:
    id: int
    message_id: int
    recipient: str
    local: bool
    peer: str | None
    trace_code: str
    target: str  # the delivery target's text form (gateway.model.target)


class MessageReader:
    """Reads stored messages and copies; every method is one read."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: BlobCipher) -> None:
        self._sessions = sessions
        self._cipher = cipher

    async def load_original(self, message_id: int) -> bytes:
        """The original message exactly as received. UnknownMessage, BlobIntegrityError."""
        try:
            async with self._sessions() as session:
                blob_id = await session.scalar(
                    select(Message.original_blob_id).where(Message.id == message_id)
                )
                if blob_id is None:
                    raise UnknownMessage(f"message {message_id} not found")
                return await read_blob(session, self._cipher, blob_id)
        except DATABASE_ERRORS as exc:
            raise database_trouble("load_original", exc) from None

    async def load_copy(self, copy_id: int) -> bytes:
        """One recipient's copy: prefix + original + suffix. UnknownMessage, BlobIntegrityError."""
        try:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(
                            MessageCopy.prefix_blob_id,
                            MessageCopy.suffix_blob_id,
                            Message.original_blob_id,
                        )
                        .join(Message, Message.id == MessageCopy.message_id)
                        .where(MessageCopy.id == copy_id)
                    )
                ).first()
                if row is None:
                    raise UnknownMessage(f"copy {copy_id} not found")
                prefix = await read_blob(session, self._cipher, row[0])
                suffix = await read_blob(session, self._cipher, row[1])
                original = await read_blob(session, self._cipher, row[2])
                return prefix + original + suffix
        except DATABASE_ERRORS as exc:
            raise database_trouble("load_copy", exc) from None

    async def copies_for(self, message_id: int) -> list[StoredCopy]:
        """The message's copies in insertion (recipient) order; empty if none."""
        try:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        select(MessageCopy, DeliveryQueueEntry.target)
                        .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
                        .where(MessageCopy.message_id == message_id)
                        .order_by(MessageCopy.id)
                    )
                ).all()
        except DATABASE_ERRORS as exc:
            raise database_trouble("copies_for", exc) from None
        return [
            StoredCopy(
                id=copy.id,
                message_id=copy.message_id,
                recipient=copy.recipient,
                local=copy.recipient_local,
                peer=copy.peer,
                trace_code=copy.trace_code,
                target=target,
            )
            for copy, target in rows
        ]

    async def message_by_registry(self, registry: str) -> StoredMessage | None:
        """The message with that registry number (exact match), or None."""
        try:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(Message, Agency.code)
                        .join(Agency, Agency.id == Message.agency_id)
                        .where(Message.registry_number == registry.strip())
                    )
                ).first()
                if row is None:
                    return None
                message, agency_code = row
                documents = (
                    await session.scalars(
                        select(MessageDocument)
                        .where(MessageDocument.message_id == message.id)
                        .order_by(MessageDocument.position)
                    )
                ).all()
        except DATABASE_ERRORS as exc:
            raise database_trouble("message_by_registry", exc) from None
        return _stored(message, agency_code, documents)


def _stored(
    message: Message, agency_code: str, documents: Sequence[MessageDocument]
) -> StoredMessage:
    return StoredMessage(
        id=message.id,
        registry=message.registry_number,
        agency=agency_code,
        sender_address=message.sender_address,
        classification=Clearance(message.classification),
        subject=message.subject,
        size=message.size,
        sha256=message.sha256,
        token=message.token,
        key_id=message.key_id,
        accepted_at=message.accepted_at,
        status=message.status,
        revoked_at=message.revoked_at,
        revoked_reason=message.revoked_reason,
        client_address=message.client_address,
        documents=tuple(
            StoredDocument(d.name, d.content_type, d.size, d.sha256) for d in documents
        ),
    )
