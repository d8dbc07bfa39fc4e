"""The access trail of official mail read over IMAP (docs/CONTRACT.md §7).

Owns: deciding which FETCH items open a message body (pure: `body_items`) and
writing one "message.access" audit event per opened official copy — who (the
employee), which copy (registry number, trace code), when, from where (client
address) and through which protocol. Must not: decide who may read a mailbox.

Contract: `AccessRecorder.record` commits the events (one transaction, in the
HMAC-chained audit trail) before it returns; the IMAP session calls it before
any body byte is written, and serves nothing when it raises (StoreUnavailable).
Header, size, ENVELOPE and BODYSTRUCTURE items are not body access; BODY[...]
of any part or text, RFC822, RFC822.TEXT and BINARY[...] are. Event shape (read
by gateway.store.access_trail): actor = employee address, target = registry
number, details = {trace, copy ("recipient" | "sender"), protocol, client,
mailbox, uid, items}.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.store import audit
from gateway.store.db import writing
from gateway.store.errors import DATABASE_ERRORS, database_trouble

ACCESS_ACTION = "message.access"
_BODY_ITEMS = (b"RFC822", b"RFC822.TEXT", b"BINARY", b"BINARY.PEEK")
_HEADER_SPECIFIERS = (b"HEADER", b"HEADER.FIELDS", b"HEADER.FIELDS.NOT", b"MIME")


def opens_body(attr: Any) -> bool:
    """Whether one pymap FetchAttribute returns body bytes."""
    name = attr.value
    if name in _BODY_ITEMS:
        return True
    if name in (b"BODY", b"BODY.PEEK") and attr.section is not None:
        return attr.section.specifier not in _HEADER_SPECIFIERS
    return False


def body_items(attributes: Iterable[Any]) -> list[str]:
    """The FETCH items (as the client wrote them, e.g. "BODY[2]") that open a body."""
    return [bytes(attr.raw).decode("ascii", "replace") for attr in attributes if opens_body(attr)]


@dataclass(frozen=True)
class AccessTarget:
    registry: str
    trace: str | None
    copy: str  # "recipient" | "sender"
    mailbox: str
    uid: int


class AccessRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit_key: bytes) -> None:
        self._sessions = sessions
        self._audit_key = audit_key

    async def record(
        self,
        *,
        employee: str,
        protocol: str,
        client: str,
        targets: Sequence[AccessTarget],
        items: Sequence[str],
    ) -> None:
        if not targets:
            return
        events = [
            audit.Event(
                actor=employee,
                action=ACCESS_ACTION,
                target=t.registry,
                details={
                    "trace": t.trace,
                    "copy": t.copy,
                    "protocol": protocol,
                    "client": client,
                    "mailbox": t.mailbox,
                    "uid": t.uid,
                    "items": list(items),
                },
            )
            for t in targets
        ]
        try:
            async with writing(self._sessions) as session:
                await audit.append_many(session, self._audit_key, events)
        except DATABASE_ERRORS as exc:
            raise database_trouble("record_access", exc) from None
        metrics.MESSAGE_ACCESSES.labels(protocol).inc(len(events))
