"""Delivery evidence of summarised messages, read back: the signed receipts and their check.

Owns: `load_evidence` (for a registry number, and optionally one recipient, the
delivery receipts kept as evidence, each rebuilt from the stored facts with its
stored DKIM-Signature fields, gateway.delivery.receipt_facts) and
`check_evidence` (does such a receipt's DKIM signature verify against this
gateway's own DKIM keys, as published by `barid dkim dns`). Must not: change
anything or sign anew: a receipt whose facts changed since (a different
`http.public_url` or host name) no longer verifies, and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dkim
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.delivery.receipt_facts import evidence_receipt, job_facts
from gateway.delivery.receipts import ReceiptKind
from gateway.store.models import Message, ReceiptJob
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys


class EvidenceNotFound(LookupError):
    """No such message, or no evidence kept for it (or for that recipient)."""


@dataclass(frozen=True)
class Evidence:
    recipient: str
    delivered_at: str
    receipt: bytes  # the signed delivery receipt (RFC 5322, CRLF)
    domain: str  # the DKIM signing domain


async def load_evidence(
    sessions: async_sessionmaker[AsyncSession],
    registry: str,
    *,
    recipient: str | None,
    hostname: str,
    verify_url: Callable[[str], str],
) -> list[Evidence]:
    """The kept delivery receipts of `registry` (of one recipient if given), in order."""
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
            facts, domain = await job_facts(session, message, job, verify_url)
            assert job.evidence is not None
            receipt = evidence_receipt(facts, hostname=hostname, evidence=job.evidence)
            out.append(Evidence(job.recipient, job.event_at, receipt, domain))
    if not out:
        who = f" for {recipient}" if recipient else ""
        raise EvidenceNotFound(f"no delivery evidence kept for {registry}{who}")
    return out


def check_evidence(item: Evidence, keys: GatewayKeys, selector_prefix: str) -> bool:
    """Whether the receipt's DKIM signatures verify against this gateway's keys."""
    if not item.receipt.startswith(b"DKIM-Signature:"):
        return False
    records = {
        f"{r.name}.".encode(): r.value.encode()
        for r in dkim_records(keys, selector_prefix, item.domain)
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    try:
        return bool(dkim.verify(item.receipt, dnsfunc=lookup))
    except dkim.DKIMException:
        return False
