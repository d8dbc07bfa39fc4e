"""The delivery summary's content: counts, the recipients who need attention named,
hundreds of delivered ones listed in receipt.json only, with their outcomes."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable

import pytest

from gateway.delivery.receipts import ReceiptFacts, ReceiptKind, build_receipt
from gateway.delivery.receipts.content import SUMMARY_LISTED

FactsFactory = Callable[..., ReceiptFacts]


def _parts(raw: bytes) -> tuple[str, str, dict[str, object]]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = page = ""
    document: dict[str, object] = {}
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_content()
        elif part.get_content_type() == "text/html":
            page = part.get_content()
        elif part.get_filename() == "receipt.json":
            document = json.loads(part.get_payload(decode=True))
    return text, page, document


@pytest.mark.parametrize("delivered", [3, SUMMARY_LISTED + 1])
def test_summary_counts_names_and_lists(facts_factory: FactsFactory, delivered: int) -> None:
    recipients = tuple(f"staff{n}@mof.gov.xx" for n in range(delivered))
    copies = tuple((a, "delivered", "2026-03-01T10:17:30.000000Z", "k:sig") for a in recipients)
    copies += (("gone@mof.gov.xx", "failed", "2026-03-01T10:17:31.000000Z", ""),)
    copies += (("later@mof.gov.xx", "pending", "", ""),)
    facts = facts_factory(
        ReceiptKind.SUMMARY,
        recipients=recipients,
        failed=("gone@mof.gov.xx",),
        pending=("later@mof.gov.xx",),
        copies=copies,
    )
    raw = build_receipt(facts, hostname="gw.moh.gov.xx", signer=None)
    assert b"Barid-Receipt: summary" in raw and b"Barid-Recipient" not in raw
    text, page, document = _parts(raw)
    total = delivered + 2
    assert f"to {total} recipients: {delivered} delivered, 1 could not be delivered" in text
    for body in (text, page):
        assert "gone@mof.gov.xx" in body and "later@mof.gov.xx" in body
        assert ("staff0@mof.gov.xx" in body) is (delivered <= SUMMARY_LISTED)
    assert ("listed with their delivery times" in text) is (delivered > SUMMARY_LISTED)
    assert document["failed"] == ["gone@mof.gov.xx"]
    assert document["pending"] == ["later@mof.gov.xx"]
    rows = document["copies"]
    assert isinstance(rows, list) and len(rows) == total
    assert rows[0] == {
        "recipient": "staff0@mof.gov.xx",
        "outcome": "delivered",
        "at": "2026-03-01T10:17:30.000000Z",
        "evidence": "k:sig",
    }
    assert rows[-1]["at"] is None and rows[-1]["evidence"] is None


def test_summary_facts_belong_to_summaries(facts_factory: FactsFactory) -> None:
    with pytest.raises(ValueError, match="belong to summaries"):
        build_receipt(
            facts_factory(ReceiptKind.DELIVERY, failed=("x@mof.gov.xx",)),
            hostname="gw.moh.gov.xx",
            signer=None,
        )
    with pytest.raises(ValueError, match="listed twice"):
        build_receipt(
            facts_factory(ReceiptKind.SUMMARY, failed=("finance@mof.gov.xx",)),
            hostname="gw.moh.gov.xx",
            signer=None,
        )
