"""Delivery evidence of summarised messages, read back and checked.

Owns: `load_evidence` (for a registry number, and optionally one recipient, the
signed statements kept for its delivered copies, gateway.delivery.evidence,
each checked against the gateway's current and retired signing keys) and
`evidence_receipt` (the delivery receipt of one of them, rebuilt from the
stored facts as it would have been filed, DKIM-signed with the delivery time as
`t=`). Must not: change anything in the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.delivery.evidence import FORMAT, statement, verify
from gateway.delivery.receipt_facts import job_facts
from gateway.delivery.receipts import ReceiptKind, build_receipt
from gateway.stamping.dkim import DkimSigner
from gateway.store.models import Message, ReceiptJob
from keys.gateway_keys import GatewayKeys


class EvidenceNotFound(LookupError):
    """No such message, or no evidence kept for it (or for that recipient)."""


@dataclass(frozen=True)
class Evidence:
    recipient: str
    delivered_at: str
    statement: bytes  # the canonical JSON that was signed
    signature: str  # "<key id>:<base64 Ed25519>"
    verified: bool
    receipt: bytes = b""  # the delivery receipt, when asked for

    def as_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "statement": json.loads(self.statement),
            "signature": self.signature,
            "verified": self.verified,
        }


async def load_evidence(
    sessions: async_sessionmaker[AsyncSession],
    keys: GatewayKeys,
    registry: str,
    *,
    recipient: str | None = None,
    receipts: tuple[str, str, Callable[[str], str]] | None = None,
) -> list[Evidence]:
    """The kept evidence of `registry` (of one recipient if given), in delivery order;
    with `receipts` = (hostname, DKIM selector prefix, verify URL of a token), each
    with its delivery receipt rebuilt too."""
    async with sessions() as session:
        message = await session.scalar(select(Message).where(Message.registry_number == registry))
        if message is None:
            raise EvidenceNotFound(f"no message with registry number {registry}")
        query = (
            select(ReceiptJob)
            .where(
                ReceiptJob.message_id == message.id,
                ReceiptJob.kind == ReceiptKind.DELIVERY.value,
                ReceiptJob.evidence.is_not(None),
            )
            .order_by(ReceiptJob.id)
        )
        if recipient is not None:
            query = query.where(ReceiptJob.recipient == recipient.lower())
        out = []
        for job in (await session.scalars(query)).all():
            assert job.evidence is not None
            signed = statement(registry, message.sha256, job.recipient, job.event_at)
            ok = verify(job.evidence, signed, keys.verification_keys)
            receipt = b""
            if receipts is not None:
                hostname, selector, verify_url = receipts
                facts, domain = await job_facts(session, message, job, verify_url)
                receipt = build_receipt(
                    facts, hostname=hostname, signer=DkimSigner(keys, domain, selector)
                )
            out.append(Evidence(job.recipient, job.event_at, signed, job.evidence, ok, receipt))
    if not out:
        who = f" for {recipient}" if recipient else ""
        raise EvidenceNotFound(f"no delivery evidence kept for {registry}{who}")
    return out
