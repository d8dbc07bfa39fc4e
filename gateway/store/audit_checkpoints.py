"""Signed checkpoints of the audit chain: what seals it beyond the audit key.

Owns: writing a checkpoint (one "audit.checkpoint" event appended to the chain,
then a row stating that event's id, MAC, the chain's count, time, node and the
Ed25519 signature over them by the gateway's signing key, the key it publishes
for verification), deciding when the next periodic one is due, and verifying
every checkpoint against the chain and the public keys. Must not: hold the
private key longer than a call, or log secrets.

The checkpoint covers its own event, so a checkpoint is in the chain it seals:
deleting a checkpoint row leaves an "audit.checkpoint" event without its row,
and deleting the tail below a checkpoint leaves a row whose event is gone, even
when the head was re-MACed by someone holding the audit key (but not the signing
key). The signed payload is canonical JSON of ["barid-audit-checkpoint/v1",
event_id, event_mac, count, at, node, key_id]; offline verification of an
exported archive (admin.services.audit_archive) uses the same payload.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import audit
from gateway.store.models import AuditCheckpoint, AuditEvent, AuditHead

CHECKPOINT_LABEL = "barid-audit-checkpoint/v1"
CHECKPOINT_ACTION = audit.CHECKPOINT_ACTION


@dataclass(frozen=True)
class CheckpointFacts:
    """What a checkpoint states; `signature` is base64url without padding."""

    event_id: int
    event_mac: str
    count: int
    at: str
    node: str
    key_id: str
    signature: str

    def as_dict(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "event_mac": self.event_mac,
            "count": self.count,
            "at": self.at,
            "node": self.node,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def signed_payload(
    *, event_id: int, event_mac: str, count: int, at: str, node: str, key_id: str
) -> bytes:
    body = [CHECKPOINT_LABEL, event_id, event_mac, count, at, node, key_id]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signature_valid(facts: CheckpointFacts, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """None when the signature verifies with the named key; else the reason."""
    public = keys.get(facts.key_id)
    if public is None:
        return f"signed with unknown key {facts.key_id}"
    payload = signed_payload(
        event_id=facts.event_id,
        event_mac=facts.event_mac,
        count=facts.count,
        at=facts.at,
        node=facts.node,
        key_id=facts.key_id,
    )
    try:
        public.verify(_unb64url(facts.signature), payload)
    except (InvalidSignature, ValueError):
        return "bad signature"
    return None


async def write_checkpoint(
    session: AsyncSession,
    audit_key: bytes,
    signing_key: Ed25519PrivateKey,
    key_id: str,
    *,
    node: str,
    actor: str,
) -> CheckpointFacts:
    """Append the checkpoint's event and its signed row, in the session's transaction."""
    event = await audit.append(
        session,
        audit_key,
        actor=actor,
        action=CHECKPOINT_ACTION,
        target=node,
        details={"node": node, "key_id": key_id},
    )
    head = await session.get(AuditHead, 1)
    assert head is not None  # append locked it
    payload = signed_payload(
        event_id=event.id,
        event_mac=event.mac,
        count=head.count,
        at=event.at,
        node=node,
        key_id=key_id,
    )
    facts = CheckpointFacts(
        event_id=event.id,
        event_mac=event.mac,
        count=head.count,
        at=event.at,
        node=node,
        key_id=key_id,
        signature=b64url(signing_key.sign(payload)),
    )
    session.add(AuditCheckpoint(**facts.as_dict()))
    await session.flush()
    return facts


def _facts(row: AuditCheckpoint) -> CheckpointFacts:
    return CheckpointFacts(
        event_id=row.event_id,
        event_mac=row.event_mac,
        count=row.count,
        at=row.at,
        node=row.node,
        key_id=row.key_id,
        signature=row.signature,
    )


async def checkpoints(session: AsyncSession, *, from_event: int = 0) -> list[CheckpointFacts]:
    """Every checkpoint covering event `from_event` or later, oldest first."""
    rows = (
        await session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.event_id >= from_event)
            .order_by(AuditCheckpoint.event_id)
        )
    ).all()
    return [_facts(row) for row in rows]


async def last_checkpoint(
    session: AsyncSession, *, at_or_before: int | None = None
) -> CheckpointFacts | None:
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.event_id.desc()).limit(1)
    if at_or_before is not None:
        stmt = stmt.where(AuditCheckpoint.event_id <= at_or_before)
    row = await session.scalar(stmt)
    return _facts(row) if row is not None else None


async def due(
    session: AsyncSession,
    *,
    every_events: int,
    every_seconds: float,
    now: dt.datetime,
    lock: bool = False,
) -> bool:
    """A periodic checkpoint is due: `every_events` events since the last one, or
    `every_seconds` since it with at least one new event (an idle chain is not
    re-signed). 0 turns a trigger off. `lock`: hold the head row (the caller then
    writes the checkpoint in the same transaction, so two nodes never both do)."""
    head = await session.get(AuditHead, 1, with_for_update=lock)
    if head is None or head.last_id == 0:
        return False
    last = await last_checkpoint(session)
    if last is None:
        return True
    new_events = head.last_id - last.event_id
    if new_events <= 0:
        return False
    if every_events and new_events >= every_events:
        return True
    if not every_seconds:
        return False
    signed_at = dt.datetime.fromisoformat(last.at.replace("Z", "+00:00"))
    return (now - signed_at).total_seconds() >= every_seconds


async def verify_checkpoints(
    session: AsyncSession, keys: Mapping[str, Ed25519PublicKey], *, max_problems: int = 20
) -> tuple[int, list[str]]:
    """Every checkpoint: signature, its event still in the chain with the same MAC,
    its count; and every checkpoint event has its row. (count, problems)."""
    problems: list[str] = []
    count = 0
    for facts in await checkpoints(session):
        count += 1
        where = f"checkpoint at event {facts.event_id}"
        reason = signature_valid(facts, keys)
        if reason is not None:
            problems.append(f"{where}: {reason} (forged checkpoint?)")
        mac = await session.scalar(select(AuditEvent.mac).where(AuditEvent.id == facts.event_id))
        if mac is None:
            problems.append(f"{where}: the event is missing from the chain (tail deleted?)")
        elif mac != facts.event_mac:
            problems.append(f"{where}: the chain's event has another MAC (chain rewritten?)")
        if facts.count != facts.event_id:
            problems.append(f"{where}: counts {facts.count} events, expected {facts.event_id}")
        if len(problems) >= max_problems:
            return count, problems
    orphans = (
        await session.scalars(
            select(AuditEvent.id)
            .where(AuditEvent.action == CHECKPOINT_ACTION)
            .where(AuditEvent.id.not_in(select(AuditCheckpoint.event_id)))
            .order_by(AuditEvent.id)
            .limit(max_problems)
        )
    ).all()
    problems += [f"event {event_id}: its signed checkpoint row is missing" for event_id in orphans]
    return count, problems
