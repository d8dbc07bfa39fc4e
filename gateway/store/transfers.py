"""Filing what peers transfer: copies into INBOXes, their receipts into Receipts.

Owns: the transactions of the transfer listener. A received copy is, in one
transaction, filed into the recipient's INBOX, recorded in `inbound_copies`,
audited ("message.receive"), and the signed delivery receipt owed to the
origin gateway is put in `relay_outbox`. A delivery receipt a peer returns for
one of our messages is, in one transaction, filed into the sender's Receipts
folder, recorded as the message's delivery receipt (`receipt_jobs`, done) and
audited ("message.delivered"). Must not: verify, parse or decide (the
listener does, before calling), or send anything.

Contract: the listener replies 250 only after these methods return; they
raise StoreUnavailable (-> 451 4.3.0) on any database trouble, and nothing is
half-written. A repeated transfer (same peer and trace code; same message,
kind and recipient for a receipt) returns "duplicate" and changes nothing, so a
peer that lost our 250 and sends again does not deliver twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.model.target import peer_gateway
from gateway.store import audit
from gateway.store.blobs import BlobCipher, put_blob
from gateway.store.db import utcnow, writing
from gateway.store.errors import DATABASE_ERRORS, database_trouble
from gateway.store.mailbox.folders import INBOX, RECEIPTS
from gateway.store.mailbox.store import (
    MailboxStore,
    append_in,
    ensure_folders_in,
    insert_content,
)
from gateway.store.models import (
    DeliveryQueueEntry,
    Employee,
    InboundCopy,
    Message,
    MessageCopy,
    ReceiptJob,
    RelayOutboxEntry,
)


@dataclass(frozen=True)
class ReceivedCopy:
    peer: str
    registry: str
    trace_code: str
    sender: str
    recipient: str
    classification: str  # ours
    remote_classification: str
    dkim_domain: str
    client: str
    raw: bytes  # as filed: our trace fields on top of the peer's bytes
    meta: bytes  # its description (gateway.imap.describe)
    receipt: bytes  # the signed delivery receipt for the origin gateway
    receipt_from: str
    receipt_to: str


@dataclass(frozen=True)
class ReturnedReceipt:
    peer: str
    registry: str
    recipient: str  # the remote recipient the receipt is about
    rcpt: str  # who it is addressed to: must be the message's sender
    client: str
    raw: bytes
    meta: bytes


class FederationStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: BlobCipher,
        mailboxes: MailboxStore,
        audit_key: bytes,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._mailboxes = mailboxes
        self._audit_key = audit_key

    async def has_copy(self, peer: str, trace_code: str) -> bool:
        try:
            async with self._sessions() as session:
                found = await session.scalar(
                    select(InboundCopy.id).where(
                        InboundCopy.peer == peer, InboundCopy.trace_code == trace_code
                    )
                )
        except DATABASE_ERRORS as exc:
            raise database_trouble("transfer", exc) from None
        return found is not None

    async def recipient_id(self, address: str) -> int | None:
        """The active employee behind `address` (None: unknown or not active)."""
        try:
            async with self._sessions() as session:
                return await session.scalar(
                    select(Employee.id).where(
                        Employee.address == address, Employee.status == "active"
                    )
                )
        except DATABASE_ERRORS as exc:
            raise database_trouble("transfer", exc) from None

    async def file_copy(self, copy: ReceivedCopy, employee_id: int) -> str:
        """ "stored" or "duplicate" (see the module contract)."""
        now = utcnow()
        try:
            async with self._mailboxes.writing("receive") as scope:
                session = scope.session
                if await session.scalar(
                    select(InboundCopy.id).where(
                        InboundCopy.peer == copy.peer, InboundCopy.trace_code == copy.trace_code
                    )
                ):
                    return "duplicate"
                folders = await ensure_folders_in(session, employee_id)
                content_id = await insert_content(
                    session, self._cipher, kind="copy", meta=copy.meta, data=[copy.raw]
                )
                await append_in(scope, folders[INBOX], content_id)
                session.add(
                    InboundCopy(
                        peer=copy.peer,
                        registry_number=copy.registry,
                        trace_code=copy.trace_code,
                        sender=copy.sender,
                        recipient=copy.recipient,
                        classification=copy.classification,
                        remote_classification=copy.remote_classification,
                        dkim_domain=copy.dkim_domain,
                        content_id=content_id,
                        received_at=now,
                        client_address=copy.client,
                    )
                )
                blob_id = put_blob(session, self._cipher, copy.receipt, purpose="relay")
                session.add(
                    RelayOutboxEntry(
                        peer=copy.peer,
                        kind="receipt",
                        registry_number=copy.registry,
                        mail_from=copy.receipt_from,
                        recipient=copy.receipt_to,
                        blob_id=blob_id,
                        state="queued",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await session.flush()
                await audit.append(
                    session,
                    self._audit_key,
                    actor=f"peer:{copy.peer}",
                    action="message.receive",
                    target=copy.registry,
                    details={
                        "recipient": copy.recipient,
                        "sender": copy.sender,
                        "trace": copy.trace_code,
                        "classification": copy.classification,
                        "remote_classification": copy.remote_classification,
                        "dkim": copy.dkim_domain,
                        "client": copy.client,
                    },
                )
        except IntegrityError:
            return "duplicate"  # the same transfer, committed meanwhile by another session
        return "stored"

    async def file_receipt(self, receipt: ReturnedReceipt) -> str:
        """ "stored", "duplicate" or "unknown" (no such copy of ours sent to this peer)."""
        now = utcnow()
        try:
            async with self._mailboxes.writing("receipt") as scope:
                session = scope.session
                row = (
                    await session.execute(
                        select(Message.id, Message.sender_address, Message.sender_employee_id)
                        .join(MessageCopy, MessageCopy.message_id == Message.id)
                        .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
                        .where(
                            Message.registry_number == receipt.registry,
                            MessageCopy.recipient == receipt.recipient,
                            DeliveryQueueEntry.target == peer_gateway(receipt.peer).column,
                        )
                    )
                ).first()
                if row is None or row[1] != receipt.rcpt:
                    return "unknown"
                message_id, _, employee_id = row
                if await session.scalar(
                    select(ReceiptJob.id).where(
                        ReceiptJob.message_id == message_id,
                        ReceiptJob.kind == "delivery",
                        ReceiptJob.recipient == receipt.recipient,
                    )
                ):
                    return "duplicate"
                folders = await ensure_folders_in(session, employee_id)
                content_id = await insert_content(
                    session,
                    self._cipher,
                    kind="receipt",
                    meta=receipt.meta,
                    data=[receipt.raw],
                    message_id=message_id,
                )
                await append_in(scope, folders[RECEIPTS], content_id)
                session.add(
                    ReceiptJob(
                        message_id=message_id,
                        kind="delivery",
                        recipient=receipt.recipient,
                        state="done",
                        event_at=now,
                        done_at=now,
                    )
                )
                await session.flush()
                await audit.append(
                    session,
                    self._audit_key,
                    actor=f"peer:{receipt.peer}",
                    action="message.delivered",
                    target=receipt.registry,
                    details={"recipient": receipt.recipient, "client": receipt.client},
                )
        except IntegrityError:
            return "duplicate"
        return "stored"

    async def record_refusal(self, *, peer: str, reason: str, **details: object) -> None:
        """One "transfer.refused" audit event (the listener calls it best effort)."""
        try:
            async with writing(self._sessions) as session:
                await audit.append(
                    session,
                    self._audit_key,
                    actor=f"peer:{peer}",
                    action="transfer.refused",
                    target=str(details.get("recipient") or ""),
                    outcome="refused",
                    details={"reason": reason, **details},
                )
        except DATABASE_ERRORS as exc:
            raise database_trouble("transfer", exc) from None
