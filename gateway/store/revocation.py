"""Revocation of an official message: the reason's rules and the one audited write.

Owns: `check_revoke_reason` and `revoke` (the message becomes "revoked" with its
time and reason, and a "message.revoke" audit event, in one transaction).
Must not: read the message back for display (gateway.store.readers does) or
notify anyone.
"""

from __future__ import annotations

import unicodedata
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit
from gateway.store.db import utcnow, writing
from gateway.store.errors import (
    DATABASE_ERRORS,
    AlreadyRevoked,
    UnknownMessage,
    database_trouble,
)
from gateway.store.models import Message

MAX_REVOKE_REASON = 500  # characters


def check_revoke_reason(reason: str) -> str:
    """The reason, stripped; ValueError unless it is one non-empty line of at most
    MAX_REVOKE_REASON characters without control characters."""
    text = reason.strip()
    if not text:
        raise ValueError("a reason is required")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise ValueError("the reason must be one line without control characters")
    if len(text) > MAX_REVOKE_REASON:
        raise ValueError(f"the reason is {len(text)} characters; at most {MAX_REVOKE_REASON}")
    return text


async def revoke(
    sessions: async_sessionmaker[AsyncSession],
    audit_key: bytes,
    registry: str,
    reason: str,
    *,
    actor: str,
) -> None:
    """Mark the message `registry` revoked and audit it ("message.revoke", target the
    registry number, the reason in details), in one transaction. ValueError for a
    bad reason (see `check_revoke_reason`), UnknownMessage, AlreadyRevoked,
    StoreUnavailable."""
    text = check_revoke_reason(reason)
    registry = registry.strip()
    try:
        async with writing(sessions) as session:
            at = utcnow()
            # Conditional: of two concurrent revocations exactly one wins.
            changed = await session.scalar(
                update(Message)
                .where(Message.registry_number == registry, Message.status == "valid")
                .values(status="revoked", revoked_at=at, revoked_reason=text)
                .returning(Message.id)
            )
            if changed is None:
                await _refuse(session, registry)
            await audit.append(
                session,
                audit_key,
                actor=actor,
                action="message.revoke",
                target=registry,
                details={"reason": text, "revoked_at": at},
            )
    except DATABASE_ERRORS as exc:
        raise database_trouble("revoke", exc) from None


async def _refuse(session: AsyncSession, registry: str) -> NoReturn:
    """Raise why `registry` could not be revoked: unknown, or revoked before."""
    row = (
        await session.execute(
            select(Message.status, Message.revoked_at).where(Message.registry_number == registry)
        )
    ).first()
    if row is None:
        raise UnknownMessage(f"no official message with registry number {registry}")
    raise AlreadyRevoked(registry, row[1])
