"""The message store: what the rest of the gateway calls to keep and read official messages.

Owns: `MessageStore`, one object over the acceptance writer (group commit,
gateway.store.acceptance), the readers (gateway.store.readers), revocation
(gateway.store.revocation) and the audit of refused submissions. Must not: hold
their logic itself; each part keeps its own rules and transactions.
Call order: `accept` (returns only after the commit) ... -> `close()`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.model.message import Accepted, Submission
from gateway.store import audit, revocation
from gateway.store.acceptance import AcceptanceWriter, StampFunction
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.blobstore import DATABASE_ONLY, BlobStores
from gateway.store.db import writing
from gateway.store.errors import DATABASE_ERRORS, UnknownMessage, database_trouble
from gateway.store.readers import MessageReader, StoredMessage
from keys.gateway_keys import derive_key


class MessageStore(MessageReader):
    """Accepts checked submissions durably and reads stored messages back.

    Every public coroutine is its own transaction (or read); see
    gateway.store.acceptance for `accept`'s order and failure behaviour.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        master_key: bytes,
        audit_key: bytes,
        blob_stores: BlobStores = DATABASE_ONLY,
    ) -> None:
        cipher = BlobCipher(derive_key(master_key, BLOB_KEK_PURPOSE), blob_stores)
        super().__init__(sessions, cipher)
        self._audit_key = audit_key
        self._writer = AcceptanceWriter(sessions, cipher, audit_key)

    @property
    def on_accepted(self) -> Callable[[], None] | None:
        """Called (on the loop) after each commit of acceptances: wakes the mail worker."""
        return self._writer.on_accepted

    @on_accepted.setter
    def on_accepted(self, hook: Callable[[], None] | None) -> None:
        self._writer.on_accepted = hook

    async def accept(self, submission: Submission, stamp: StampFunction, *, actor: str) -> Accepted:
        """Store `submission` with its stamp durably; returns only after the commit."""
        return await self._writer.accept(submission, stamp, actor=actor)

    async def close(self) -> None:
        """Let queued acceptances finish, then stop the writer task."""
        await self._writer.close()

    async def record_rejection(
        self,
        *,
        actor: str,
        sender: str,
        reason: str,
        rule: str | None = None,
        recipients: Sequence[str] = (),
        client_address: str = "",
        audit_hits: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Audit a refused submission ("message.reject", outcome "refused"), in its own
        transaction, with one "policy.audit-hit" event per (rule id, recipient) of
        `audit_hits`. `reason` is a short code (e.g. "policy", "unsigned"), `rule` the
        policy rule id if one decided. StoreUnavailable on database trouble."""
        reject = audit.Event(
            actor=actor,
            action="message.reject",
            target=sender.lower(),
            outcome="refused",
            details={
                "reason": reason,
                "rule": rule,
                "recipients": [r.lower() for r in recipients],
                "client": client_address,
            },
        )
        hits = [
            audit.Event(
                actor=actor,
                action=audit.POLICY_AUDIT_HIT,
                target=sender.lower(),
                details={"rule": hit_rule, "sender": sender.lower(), "recipient": recipient},
            )
            for hit_rule, recipient in audit_hits
        ]
        try:
            async with writing(self._sessions) as session:
                await audit.append_many(session, self._audit_key, [reject, *hits])
        except DATABASE_ERRORS as exc:
            raise database_trouble("record_rejection", exc) from None

    async def revoke(self, registry: str, reason: str, *, actor: str) -> StoredMessage:
        """Mark the message revoked, with the time and reason, and audit it, in one
        transaction (gateway.store.revocation); the message as now stored. ValueError
        for a bad reason, UnknownMessage, AlreadyRevoked, StoreUnavailable."""
        await revocation.revoke(self._sessions, self._audit_key, registry, reason, actor=actor)
        stored = await self.message_by_registry(registry.strip())
        if stored is None:  # pragma: no cover - just committed
            raise UnknownMessage(f"no official message with registry number {registry}")
        return stored
