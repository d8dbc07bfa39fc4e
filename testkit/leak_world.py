"""The leak-trace tests' world: one official message, stamped by the gateway's real
Stamper (real trace codes, real copies), delivered to ten recipients, with one
body fetch of every copy in the access trail.

Owns: `leak_world(app)` on top of `admin_use_cases.seed`. Every trace code of the
message holds a character a printout can confuse (O for 0, I or L for 1, a
twin such as S for 5), so each test can type one; a message whose codes do not
is stamped again (a new registry number, new codes) until one does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass

from sqlalchemy import select

from admin.context import App
from gateway.model.message import Document, Recipient, Submission
from gateway.stamping import TRACE_KEY_PURPOSE
from gateway.stamping.stamper import Stamper
from gateway.store import audit
from gateway.store.access_trail import ACCESS_ACTION
from gateway.store.db import transaction
from gateway.store.leak_lookup import copies_by_trace
from gateway.store.messages import MessageStore
from gateway.store.models import Message, MessageCopy
from policies.directory import Clearance
from testkit.admin_use_cases import TAX_CLERK, seed
from testkit.pdfs import original_with_pdf, sample_pdf
from testkit.stamp import plain_original

RECIPIENTS = tuple(f"reader{n:02d}@moh.gov.example" for n in range(1, 11))
# One confusable typing per character: outside the alphabet first, then twins.
CONFUSED = {"0": "o", "1": "l", "V": "u", "5": "s", "S": "5", "8": "b", "B": "8",
            "2": "z", "Z": "2", "6": "g", "G": "6", "D": "0"}  # fmt: skip
MAX_TRIES = 20


@dataclass
class LeakWorld:
    app: App
    registry: str
    document: bytes  # the letter.pdf every copy holds
    codes: dict[str, str]  # recipient -> trace code
    copy_ids: dict[str, int]  # recipient -> message_copies.id


def misread(code: str) -> str:
    """`code` in lower case with its first confusable character typed wrongly."""
    at = next(i for i, ch in enumerate(code) if ch in CONFUSED)
    return (code[:at] + CONFUSED[code[at]] + code[at + 1 :]).lower()


def _submission(document: bytes, classification: Clearance) -> Submission:
    marked = classification >= Clearance.CONFIDENTIAL
    return Submission(
        sender_address=TAX_CLERK,
        sender_code="MOF-TAX-000001-X",
        sender_agency="MOF-TAX",
        sender_name_en="Clerk",
        sender_name_ar="الكاتب",
        agency_name_en="Tax",
        agency_name_ar="الضرائب",
        classification=classification,
        subject="Quarterly report",
        raw=original_with_pdf(TAX_CLERK, document) if marked else plain_original(),
        documents=(
            Document(
                "letter.pdf", "application/pdf", document, hashlib.sha256(document).hexdigest()
            ),
        ),
        recipients=tuple(Recipient(address, True) for address in RECIPIENTS),
        received_at=dt.datetime.now(dt.UTC),
        client_address="192.0.2.10",
    )


async def accept_message(
    app: App, document: bytes, classification: Clearance = Clearance.INTERNAL
) -> tuple[str, dict[str, str]]:
    """One message holding `document`, stamped for the ten recipients: its registry
    number and each recipient's trace code."""
    stamper = Stamper(app.keys, app.settings.http.public_url, app.keys.derive(TRACE_KEY_PURPOSE))
    store = MessageStore(app.sessions, app.keys.master_key, app.audit_key)
    try:
        sub = _submission(document, classification)
        accepted = await store.accept(sub, lambda r, t: stamper.stamp(sub, r, t), actor="smtp:x")
    finally:
        await store.close()
    async with app.sessions() as session:
        rows = await session.execute(
            select(MessageCopy.recipient, MessageCopy.trace_code)
            .join(Message, Message.id == MessageCopy.message_id)
            .where(Message.registry_number == accepted.registry)
        )
        return accepted.registry, {recipient: code for recipient, code in rows.all()}


def _fetch(reader: str, registry: str, code: str, client: str) -> audit.Event:
    details = {"trace": code, "copy": "recipient", "protocol": "imaps", "client": client,
               "mailbox": "INBOX", "uid": 1, "items": ["BODY[]"]}  # fmt: skip
    return audit.Event(actor=reader, action=ACCESS_ACTION, target=registry, details=details)


async def leak_world(app: App, classification: Clearance = Clearance.INTERNAL) -> LeakWorld:
    """`seed`, then the ten-recipient message (issued by MOF-TAX) and one fetch per copy.

    A `confidential` or `secret` world's document is a real PDF (so the copies carry
    marked reading copies of it) inside a real original message."""
    await seed(app)
    for _ in range(MAX_TRIES):
        if classification >= Clearance.CONFIDENTIAL:
            document = sample_pdf()
        else:
            document = b"%PDF-1.7 leak test " + os.urandom(64)
        registry, codes = await accept_message(app, document, classification)
        if all(any(ch in CONFUSED for ch in code) for code in codes.values()):
            break
    else:
        raise AssertionError("no message with a confusable character in every trace code")
    async with app.sessions() as session:
        refs = await copies_by_trace(session, list(codes.values()))
    fetches = [
        _fetch(r.recipient, registry, r.trace_code, f"198.51.100.{n}")
        for n, r in enumerate(refs, start=1)
    ]
    async with transaction(app.sessions) as session:
        await audit.append_many(session, app.audit_key, fetches)
    return LeakWorld(app, registry, document, codes, {r.recipient: r.copy_id for r in refs})


__all__ = ["CONFUSED", "RECIPIENTS", "LeakWorld", "leak_world", "misread"]
