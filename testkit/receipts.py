"""Sample facts for the receipt tests: one consistent `ReceiptFacts` per kind, with
overrides, and the sender domain and DKIM selector prefix they are signed under."""

from __future__ import annotations

import datetime as dt
import hashlib

from gateway.delivery.receipts import ReceiptFacts, ReceiptKind

SENDER_DOMAIN = "moh.gov.xx"
SELECTOR_PREFIX = "barid"
TOKEN = "AEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIB2345"
VERIFY_URL = f"https://verify.health-ministry.gov.xx/v/{TOKEN}"
ACCEPTED_AT = dt.datetime(2026, 3, 1, 10, 15, 30, tzinfo=dt.UTC)


def make_facts(kind: ReceiptKind, /, **changes: object) -> ReceiptFacts:
    """Consistent facts of one kind; `changes` override any field."""
    per_recipient = kind is not ReceiptKind.ACCEPTANCE
    fields: dict[str, object] = {
        "kind": kind,
        "registry": "MOH/2026/000042",
        "token": TOKEN,
        "verify_url": VERIFY_URL,
        "sender_address": "ahmad.ali@moh.gov.xx",
        "sender_domain": SENDER_DOMAIN,
        "subject": "التقرير الفصلي / Quarterly report",
        "classification": "confidential",
        "accepted_at": ACCEPTED_AT,
        "event_at": ACCEPTED_AT + dt.timedelta(minutes=2) if per_recipient else ACCEPTED_AT,
        "recipients": ("finance@mof.gov.xx",)
        if per_recipient
        else ("finance@mof.gov.xx", "audit@moh.gov.xx"),
        "documents": (
            ("report.pdf", hashlib.sha256(b"%PDF-1.7 demo").hexdigest()),
            ("تقرير.pdf", hashlib.sha256(b"%PDF-1.7 arabic").hexdigest()),
        ),
        "reason": "unknown-recipient" if kind is ReceiptKind.NON_DELIVERY else None,
        "detail": "550 5.1.1 <finance@mof.gov.xx>: user unknown"
        if kind is ReceiptKind.NON_DELIVERY
        else None,
    }
    fields.update(changes)
    return ReceiptFacts(**fields)  # type: ignore[arg-type]
