"""Fixtures for the receipt tests: gateway keys (made once), a DKIM signer and resolver, facts."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest

from gateway.receipts import ReceiptFacts, ReceiptKind
from gateway.stamp import DkimSigner
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys, default_keys_dir, ensure_gateway_keys, load_gateway_keys

SENDER_DOMAIN = "moh.gov.xx"
SELECTOR_PREFIX = "barid"
TOKEN = "AEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIB2345"
VERIFY_URL = f"https://verify.health-ministry.gov.xx/v/{TOKEN}"
ACCEPTED_AT = dt.datetime(2026, 3, 1, 10, 15, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def receipt_keys(tmp_path_factory: pytest.TempPathFactory) -> GatewayKeys:
    directory = default_keys_dir(tmp_path_factory.mktemp("receiptkeys"))
    ensure_gateway_keys(directory)
    return load_gateway_keys(directory)


@pytest.fixture(scope="session")
def receipt_signer(receipt_keys: GatewayKeys) -> DkimSigner:
    return DkimSigner(receipt_keys, SENDER_DOMAIN, SELECTOR_PREFIX)


@pytest.fixture(scope="session")
def receipt_dnsfunc(receipt_keys: GatewayKeys) -> Callable[..., bytes | None]:
    """A resolver answering only with the records `barid dkim dns` would publish."""
    records = {
        f"{r.name}.".encode(): r.value.encode()
        for r in dkim_records(receipt_keys, SELECTOR_PREFIX, SENDER_DOMAIN)
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


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


@pytest.fixture(scope="session")
def facts_factory() -> Callable[..., ReceiptFacts]:
    """`make_facts(kind, **changes)`: consistent facts of one kind, with overrides."""
    return make_facts
