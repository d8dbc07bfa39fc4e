"""Reading stored mail contents: descriptions, whole bytes, registry facts.

Owns: decrypting a content's blobs in order and its description, and naming the
registry number and trace code behind it (for the access trail). Must not:
write anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import func, select

from gateway.store.blobs import BLOB_COLUMNS, BlobValues, fetch_outside, open_blob
from gateway.store.mailbox.base import StoreBase
from gateway.store.mailbox.records import ContentFacts, MailboxError, chunks
from gateway.store.models import Blob, InboundCopy, MailContent, Message, MessageCopy


class ContentReads(StoreBase):
    """Reads of mail contents."""

    async def load_meta(self, content_ids: Iterable[int]) -> dict[int, bytes]:
        """The decrypted descriptions of these contents, in one read."""
        wanted = sorted(set(content_ids))
        out: dict[int, bytes] = {}
        async with self.reading("load_meta") as session:
            for chunk in chunks(wanted, 500):
                found = await session.execute(
                    select(MailContent.id.label("content_id"), *BLOB_COLUMNS)
                    .join(Blob, Blob.id == MailContent.meta_blob_id)
                    .where(MailContent.id.in_(chunk))
                )
                values = {row.content_id: BlobValues.of(row) for row in found.all()}
                await fetch_outside(self._cipher, values.values())
                for content_id, blob in values.items():
                    out[content_id] = open_blob(self._cipher, blob)
        return out

    async def load_bytes(self, content_id: int) -> bytes:
        """The whole mail, decrypted; NoSuchMailbox-free: a missing content is a bug."""
        async with self.reading("load_bytes") as session:
            parts_json = await session.scalar(
                select(MailContent.parts).where(MailContent.id == content_id)
            )
            if parts_json is None:
                raise MailboxError("message no longer exists")
            ids: list[str] = json.loads(parts_json)
            found = await session.execute(select(*BLOB_COLUMNS).where(Blob.id.in_(ids)))
            blobs = {row.id: BlobValues.of(row) for row in found.all()}
        await fetch_outside(self._cipher, blobs.values())
        return b"".join(open_blob(self._cipher, blobs[i]) for i in ids)

    async def content_facts(self, content_ids: Iterable[int]) -> dict[int, ContentFacts]:
        """Registry number and trace code behind each content (for the access trail)."""
        wanted = sorted(set(content_ids))
        out: dict[int, ContentFacts] = {}
        async with self.reading("content_facts") as session:
            for chunk in chunks(wanted, 500):
                # A copy received from a federation peer has no message of ours:
                # its registry number and trace code are in inbound_copies.
                found = await session.execute(
                    select(
                        MailContent.id,
                        MailContent.kind,
                        func.coalesce(Message.registry_number, InboundCopy.registry_number),
                        func.coalesce(MessageCopy.trace_code, InboundCopy.trace_code),
                    )
                    .outerjoin(Message, Message.id == MailContent.message_id)
                    .outerjoin(MessageCopy, MessageCopy.id == MailContent.copy_id)
                    .outerjoin(InboundCopy, InboundCopy.content_id == MailContent.id)
                    .where(MailContent.id.in_(chunk))
                )
                for content_id, kind, registry, trace in found.all():
                    out[content_id] = ContentFacts(content_id, kind, registry, trace)
        return out
