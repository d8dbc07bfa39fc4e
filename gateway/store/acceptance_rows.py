"""The rows of one group of acceptances, written in the writer's transaction.

Owns: `Facts` (what acceptance knows of a message before its stamp), the row
builders of every table an acceptance touches, and `insert_group`, which inserts
them in order (blobs, messages, documents, copies, queue entries, receipt jobs,
audit events). Must not: commit, allocate registry numbers, call the stamp, or
choose a delivery target (the writer, gateway.store.acceptance, does).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.model.message import Accepted, Recipient, Stamp, Submission
from gateway.model.target import DeliveryTarget
from gateway.store import audit
from gateway.store.blobs import BlobCipher, seal_blob
from gateway.store.db import iso
from gateway.store.models import (
    Blob,
    DeliveryQueueEntry,
    Message,
    MessageCopy,
    MessageDocument,
    ReceiptJob,
)

PURPOSE_ORIGINAL = "original"
PURPOSE_PREFIX = "copy-prefix"
PURPOSE_SUFFIX = "copy-suffix"

Row = dict[str, object]


@dataclass(frozen=True, slots=True)
class Sealed:
    """The original, encrypted, and the SHA-256 of its plain bytes."""

    original: Blob
    sha256: str


@dataclass(frozen=True, slots=True)
class Facts:
    """One message as acceptance knows it before its stamp."""

    submission: Submission
    actor: str
    sealed: Sealed
    agency_id: int
    employee_id: int
    by_address: dict[str, Recipient]  # lower-case address -> recipient
    targets: dict[str, DeliveryTarget]  # lower-case address -> where its copy goes


Group = Sequence[tuple[Facts, Stamp]]


async def insert_group(
    session: AsyncSession,
    cipher: BlobCipher,
    audit_key: bytes,
    group: Group,
    issued_at: dt.datetime,
) -> list[Accepted]:
    """Insert every row of `group` (stamped messages) in `session`; the acceptances."""
    accepted_at = iso(issued_at)
    blobs, copy_blobs = _blob_rows(cipher, group)
    await session.execute(insert(Blob), blobs)
    message_ids = await _insert_returning(session, Message, _message_rows(group, accepted_at))
    documents = _document_rows(group, message_ids)
    if documents:
        await session.execute(insert(MessageDocument), documents)
    copies, targets = _copy_rows(group, message_ids, copy_blobs)
    copy_ids = await _insert_returning(session, MessageCopy, copies)
    await session.execute(insert(DeliveryQueueEntry), _queue_rows(copy_ids, targets, accepted_at))
    # The acceptance receipt (and the sender's Sent copy) is owed from this commit on.
    await session.execute(insert(ReceiptJob), _receipt_rows(message_ids, accepted_at))
    events = [e for f, s in group for e in (_accept_event(f, s), *_audit_hit_events(f, s))]
    await audit.append_many(session, audit_key, events)
    return [
        Accepted(registry=stamped.registry, message_id=message_id, token=stamped.token)
        for (_, stamped), message_id in zip(group, message_ids, strict=True)
    ]


async def _insert_returning(session: AsyncSession, model: Any, values: list[Row]) -> list[int]:
    """Insert `values` into `model`'s table; the new ids in the order of `values`."""
    result = await session.execute(
        insert(model).returning(model.id, sort_by_parameter_order=True), values
    )
    return list(result.scalars())


def _row(blob: Blob) -> Row:
    return {column.key: getattr(blob, column.key) for column in Blob.__table__.columns}


def _blob_rows(cipher: BlobCipher, group: Group) -> tuple[list[Row], list[list[tuple[str, str]]]]:
    """The blob rows (each original, then its copies' encrypted prefix and suffix) and,
    per message, the (prefix id, suffix id) of each copy."""
    blobs: list[Row] = []
    copy_blobs: list[list[tuple[str, str]]] = []
    for facts, stamped in group:
        blobs.append(_row(facts.sealed.original))
        pairs = []
        for copy in stamped.copies:
            # A copy's own parts are text (headers, the cover, certificate.json):
            # stored deflated, about 60 % smaller.
            prefix = seal_blob(cipher, copy.prefix, purpose=PURPOSE_PREFIX, deflate=True)
            suffix = seal_blob(cipher, copy.suffix, purpose=PURPOSE_SUFFIX, deflate=True)
            blobs += [_row(prefix), _row(suffix)]
            pairs.append((prefix.id, suffix.id))
        copy_blobs.append(pairs)
    return blobs, copy_blobs


def _message_rows(group: Group, accepted_at: str) -> list[Row]:
    return [
        {
            "registry_number": stamped.registry,
            "agency_id": facts.agency_id,
            "sender_employee_id": facts.employee_id,
            "sender_address": facts.submission.sender_address.lower(),
            "classification": int(facts.submission.classification),
            "subject": facts.submission.subject,
            "size": len(facts.submission.raw),
            "sha256": facts.sealed.sha256,
            "original_blob_id": facts.sealed.original.id,
            "token": stamped.token,
            "key_id": _key_id(stamped),
            "accepted_at": accepted_at,
            "status": "valid",
            "client_address": facts.submission.client_address,
        }
        for facts, stamped in group
    ]


def _document_rows(group: Group, message_ids: list[int]) -> list[Row]:
    return [
        {
            "message_id": message_id,
            "position": position,
            "name": document.name,
            "content_type": document.content_type,
            "size": len(document.data),
            "sha256": document.sha256.lower(),
        }
        for (facts, _), message_id in zip(group, message_ids, strict=True)
        for position, document in enumerate(facts.submission.documents)
    ]


def _copy_rows(
    group: Group, message_ids: list[int], copy_blobs: list[list[tuple[str, str]]]
) -> tuple[list[Row], list[DeliveryTarget]]:
    """The copy rows in stamp order, and the delivery target of each."""
    copies: list[Row] = []
    targets: list[DeliveryTarget] = []
    for (facts, stamped), message_id, pairs in zip(group, message_ids, copy_blobs, strict=True):
        for copy, (prefix_id, suffix_id) in zip(stamped.copies, pairs, strict=True):
            address = copy.recipient.lower()
            recipient = facts.by_address[address]
            copies.append(
                {
                    "message_id": message_id,
                    "recipient": address,
                    "recipient_local": recipient.local,
                    "peer": recipient.peer,
                    "trace_code": copy.trace_code,
                    "prefix_blob_id": prefix_id,
                    "suffix_blob_id": suffix_id,
                }
            )
            targets.append(facts.targets[address])
    return copies, targets


def _queue_rows(copy_ids: list[int], targets: list[DeliveryTarget], accepted_at: str) -> list[Row]:
    return [
        {
            "copy_id": copy_id,
            "target": target.column,
            "state": "queued",
            "attempts": 0,
            "next_attempt_at": accepted_at,
            "created_at": accepted_at,
            "updated_at": accepted_at,
        }
        for copy_id, target in zip(copy_ids, targets, strict=True)
    ]


def _receipt_rows(message_ids: list[int], accepted_at: str) -> list[Row]:
    return [
        {
            "message_id": message_id,
            "kind": "acceptance",
            "recipient": "",
            "state": "pending",
            "event_at": accepted_at,
        }
        for message_id in message_ids
    ]


def _accept_event(facts: Facts, stamped: Stamp) -> audit.Event:
    submission = facts.submission
    return audit.Event(
        actor=facts.actor,
        action="message.accept",
        target=stamped.registry,
        details={
            "sender": submission.sender_address.lower(),
            "recipients": len(submission.recipients),
            "classification": submission.classification.label,
            "documents": [d.sha256.lower() for d in submission.documents],
        },
    )


def _audit_hit_events(facts: Facts, stamped: Stamp) -> list[audit.Event]:
    """One "policy.audit-hit" event per audit-mode rule that matched a recipient."""
    submission = facts.submission
    return [
        audit.Event(
            actor=facts.actor,
            action=audit.POLICY_AUDIT_HIT,
            target=stamped.registry,
            details={
                "rule": hit.rule_id,
                "sender": submission.sender_address.lower(),
                "recipient": hit.recipient,
                "registry": stamped.registry,
            },
        )
        for hit in submission.audit_hits
    ]


def _key_id(stamped: Stamp) -> str | None:
    # `Stamp` does not carry the signing key id yet; take it from an attribute or
    # the certificate when present.
    value = getattr(stamped, "key_id", None) or stamped.certificate.get("key_id")
    return str(value) if value else None
