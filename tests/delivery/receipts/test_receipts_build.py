"""Receipts: bilingual content, receipt.json, DKIM, determinism, wire format and refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import json
import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import dkim
import pytest

from gateway.delivery.receipts import (
    NON_DELIVERY_REASONS,
    ReceiptFacts,
    ReceiptKind,
    build_receipt,
    receipt_message_id,
)
from gateway.stamping import DkimSigner
from gateway.stamping.dkim import SIGNED_HEADERS

HOSTNAME = "mail.moh.gov.xx"
FactsFactory = Callable[..., ReceiptFacts]
DnsFunc = Callable[..., bytes | None]

# What each kind must say, in both languages (the registry number sits in between).
TITLES = {
    ReceiptKind.ACCEPTANCE: ("إشعار قبول", "Acceptance receipt"),
    ReceiptKind.DELIVERY: ("إشعار تسليم", "Delivery receipt"),
    ReceiptKind.NON_DELIVERY: ("إشعار عدم تسليم", "Non-delivery receipt"),
    ReceiptKind.SUMMARY: ("ملخّص التسليم", "Delivery summary"),
}
STATEMENTS = {
    ReceiptKind.ACCEPTANCE: ("قُبِلت رسالتك وسُجِّلت برقم القيد", "accepted and registered"),
    ReceiptKind.DELIVERY: ("إلى صندوق بريد", "was delivered to the mailbox of"),
    ReceiptKind.NON_DELIVERY: ("تعذّر تسليم رسالتك", "could not be delivered to"),
    ReceiptKind.SUMMARY: ("وما زالت", "could not be delivered,"),
}


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body_parts(message: EmailMessage) -> tuple[str, str, dict[str, Any]]:
    """(text/plain, text/html, receipt.json) of a parsed receipt.

    A non-delivery receipt is a multipart/report whose first part is the receipt.
    """
    if message.get_content_type() == "multipart/report":
        first = next(message.iter_parts())
        assert isinstance(first, EmailMessage)
        message = first
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = list(message.iter_parts())
    assert isinstance(alternative, EmailMessage) and isinstance(attachment, EmailMessage)
    assert alternative.get_content_type() == "multipart/alternative"
    plain, page = list(alternative.iter_parts())
    assert isinstance(plain, EmailMessage) and isinstance(page, EmailMessage)
    assert plain.get_content_type() == "text/plain"
    assert page.get_content_type() == "text/html"
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_filename() == "receipt.json"
    assert attachment.get_content_disposition() == "attachment"
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    document = json.loads(payload)
    return plain.get_content(), page.get_content(), document


def verify_all(message: bytes, dnsfunc: DnsFunc) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature (RSA first, then Ed25519)."""
    results = []
    for index in range(2):
        verifier = dkim.DKIM(message)
        try:
            results.append(bool(verifier.verify(idx=index, dnsfunc=dnsfunc)))
        except dkim.DKIMException:  # e.g. "body hash mismatch"
            results.append(False)
    return results


def expected_document(facts: ReceiptFacts) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "barid-receipt/1",
        "kind": facts.kind.value,
        "registry": facts.registry,
        "token": facts.token,
        "verify_url": facts.verify_url,
        "sender": facts.sender_address,
        "recipients": list(facts.recipients),
        "subject": facts.subject,
        "classification": facts.classification,
        "accepted_at": facts.accepted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "event_at": facts.event_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "documents": [{"name": n, "sha256": h} for n, h in facts.documents],
        "reason": facts.reason,
        "detail": facts.detail,
    }
    if facts.kind is ReceiptKind.SUMMARY:
        document |= {"failed": list(facts.failed), "pending": list(facts.pending), "copies": []}
    if facts.kind is ReceiptKind.NON_DELIVERY:  # the status taken from the detail
        document["status"] = facts.status or "5.1.1"
        document["remote_mta"] = facts.remote_mta
    return document


# ---------------------------------------------------------------- content


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_each_kind_reads_back(
    kind: ReceiptKind, facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    facts = facts_factory(kind)
    raw = build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)
    message = parse(raw)
    title_ar, title_en = TITLES[kind]
    subject = str(message["Subject"])
    assert subject.startswith(f"{title_ar} / {title_en}: MOH/2026/000042")
    assert facts.subject in subject  # the original subject, to tell receipts apart
    assert message["From"] == "Barid <noreply@moh.gov.xx>"
    assert message["To"] == "ahmad.ali@moh.gov.xx"
    assert message["Date"].datetime == facts.event_at
    assert message["Message-ID"] == receipt_message_id(facts, HOSTNAME)
    assert message["MIME-Version"] == "1.0"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Barid-Registry"] == "MOH/2026/000042"
    assert message["Barid-Verify"] == facts.verify_url
    assert message["Barid-Receipt"] == kind.value
    if kind in (ReceiptKind.ACCEPTANCE, ReceiptKind.SUMMARY):
        assert "Barid-Recipient" not in message
    else:
        assert message["Barid-Recipient"] == "finance@mof.gov.xx"

    text, page, document = body_parts(message)
    statement_ar, statement_en = STATEMENTS[kind]
    for body in (text, page):
        for needle in (title_ar, title_en, statement_ar, statement_en, "MOH/2026/000042"):
            assert needle in body, needle
        assert facts.verify_url in body
        assert "سرّي (confidential)" in body and "confidential" in body
        assert "التقرير الفصلي / Quarterly report" in body
        for name, sha256 in facts.documents:
            assert name in body and f"SHA-256: {sha256}" in body
        for address in facts.recipients:
            assert address in body
    # Arabic first, then English.
    assert text.index(statement_ar) < text.index(statement_en)
    assert page.index('dir="rtl"') < page.index(statement_ar) < page.index('dir="ltr" lang="en"')
    assert page.index('dir="ltr" lang="en"') < page.index(statement_en)
    assert document == expected_document(facts)


def test_delivery_says_where_and_when(facts_factory: FactsFactory) -> None:
    facts = facts_factory(ReceiptKind.DELIVERY)
    text, _, _ = body_parts(parse(build_receipt(facts, hostname=HOSTNAME, signer=None)))
    assert (
        "Your message MOH/2026/000042 was delivered to the mailbox of finance@mof.gov.xx"
        " at 2026-03-01 10:17:30 UTC." in text
    )
    assert "Accepted: 2026-03-01 10:15:30 UTC" in text
    assert "تاريخ التسليم: 2026-03-01 10:17:30 UTC" in text


@pytest.mark.parametrize("reason", sorted(NON_DELIVERY_REASONS))
def test_non_delivery_states_each_reason(
    reason: str, facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    facts = facts_factory(ReceiptKind.NON_DELIVERY, reason=reason)
    text, page, document = body_parts(
        parse(build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer))
    )
    english, arabic = NON_DELIVERY_REASONS[reason]
    assert f"could not be delivered to finance@mof.gov.xx: {english}." in text
    assert f"finance@mof.gov.xx: {arabic}." in text
    assert f"Detail: {facts.detail}" in text
    assert "&lt;finance@mof.gov.xx&gt;: user unknown" in page  # the detail, escaped
    assert document["reason"] == reason


def test_reason_table() -> None:
    for code in (
        "unknown-recipient",
        "recipient-suspended",
        "recipient-refused",
        "retry-window-expired",
        "policy",
    ):
        english, arabic = NON_DELIVERY_REASONS[code]
        assert english.isascii() and not arabic.isascii()


def test_detail_is_one_line_of_at_most_300_characters(facts_factory: FactsFactory) -> None:
    reply = "550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 x"
    facts = facts_factory(ReceiptKind.NON_DELIVERY, detail=reply + " " + "y" * 500)
    text, _, document = body_parts(parse(build_receipt(facts, hostname=HOSTNAME, signer=None)))
    detail = document["detail"]
    assert len(detail) == 300
    assert detail.startswith(
        "550-5.1.1 The email account that you tried to reach does not exist. 550"
    )
    assert f"Detail: {detail}" in text and "\n" not in detail
    short = facts_factory(ReceiptKind.NON_DELIVERY, detail=None)
    text, _, document = body_parts(parse(build_receipt(short, hostname=HOSTNAME, signer=None)))
    assert document["detail"] is None and "Detail:" not in text


def test_html_escapes_every_value(facts_factory: FactsFactory) -> None:
    facts = facts_factory(
        ReceiptKind.ACCEPTANCE,
        subject='<script>alert("x")</script> & co',
        documents=(("<img src=x onerror=alert(1)>.pdf", "ab" * 32),),
    )
    raw = build_receipt(facts, hostname=HOSTNAME, signer=None)
    text, page, document = body_parts(parse(raw))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    assert "&lt;img src=x onerror=alert(1)&gt;.pdf" in page
    assert '<script>alert("x")</script> & co' in text  # plain text shows it as written
    assert document["subject"] == facts.subject


def test_empty_subject_and_no_documents(facts_factory: FactsFactory) -> None:
    facts = facts_factory(ReceiptKind.ACCEPTANCE, subject="", documents=())
    message = parse(build_receipt(facts, hostname=HOSTNAME, signer=None))
    assert str(message["Subject"]) == "إشعار قبول / Acceptance receipt: MOH/2026/000042"
    text, _, document = body_parts(message)
    assert "Subject: (no subject)" in text and "Documents: (no documents)" in text
    assert document["documents"] == [] and document["subject"] == ""


def test_times_are_written_in_utc(facts_factory: FactsFactory) -> None:
    baghdad = dt.timezone(dt.timedelta(hours=3))
    facts = facts_factory(
        ReceiptKind.DELIVERY,
        accepted_at=dt.datetime(2026, 3, 1, 13, 15, 30, 999, tzinfo=baghdad),
        event_at=dt.datetime(2026, 3, 1, 13, 17, 30, tzinfo=baghdad),
    )
    message = parse(build_receipt(facts, hostname=HOSTNAME, signer=None))
    assert message["Date"] == "Sun, 01 Mar 2026 10:17:30 +0000"
    _, _, document = body_parts(message)
    assert document["accepted_at"] == "2026-03-01T10:15:30Z"
    assert document["event_at"] == "2026-03-01T10:17:30Z"


# ---------------------------------------------------------------- DKIM


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_dkim_verifies_with_both_algorithms(
    kind: ReceiptKind,
    facts_factory: FactsFactory,
    receipt_signer: DkimSigner,
    receipt_dnsfunc: DnsFunc,
) -> None:
    facts = facts_factory(kind)
    raw = build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)
    head = raw[: raw.index(b"\r\n\r\n")].decode("ascii")
    signatures = re.findall(r"^DKIM-Signature:.*?(?=^\S)", head, re.M | re.S)
    assert len(signatures) == 2
    assert "a=rsa-sha256" in signatures[0] and "a=ed25519-sha256" in signatures[1]
    for signature in signatures:
        assert "d=moh.gov.xx;" in signature
        assert f"t={int(facts.event_at.timestamp())};" in signature
    assert verify_all(raw, receipt_dnsfunc) == [True, True]


def test_dkim_covers_the_receipt_headers(
    facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    raw = build_receipt(
        facts_factory(ReceiptKind.DELIVERY), hostname=HOSTNAME, signer=receipt_signer
    )
    match = re.search(r"h=([^;]+);", raw.decode("ascii"))
    assert match is not None
    names = [n.strip() for n in match.group(1).split(":")]
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                 "barid-registry", "barid-verify"):  # fmt: skip
        assert name in SIGNED_HEADERS
        assert names.count(name) == 2, name  # present once, over-signed


def _change_body_byte(raw: bytes) -> bytes:
    """One base64 character of the text/plain part, replaced by another."""
    start = raw.index(b"Content-Transfer-Encoding: base64\r\n\r\n") + 37
    replacement = b"B" if raw[start : start + 1] != b"B" else b"C"
    return raw[:start] + replacement + raw[start + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_change_body_byte, id="body-base64"),
        pytest.param(
            lambda raw: raw.replace(b"This is a multi", b"This iz a multi"), id="preamble"
        ),
        pytest.param(
            lambda raw: raw.replace(
                b"Barid-Registry: MOH/2026/000042", b"Barid-Registry: MOH/2026/000043"
            ),
            id="barid-registry",
        ),
    ],
)
def test_tampering_breaks_both_signatures(
    tamper: Callable[[bytes], bytes],
    facts_factory: FactsFactory,
    receipt_signer: DkimSigner,
    receipt_dnsfunc: DnsFunc,
) -> None:
    raw = build_receipt(
        facts_factory(ReceiptKind.NON_DELIVERY), hostname=HOSTNAME, signer=receipt_signer
    )
    tampered = tamper(raw)
    assert tampered != raw and len(tampered) == len(raw)
    assert verify_all(tampered, receipt_dnsfunc) == [False, False]


def test_without_signer_there_is_no_signature(facts_factory: FactsFactory) -> None:
    raw = build_receipt(facts_factory(ReceiptKind.ACCEPTANCE), hostname=HOSTNAME, signer=None)
    assert raw.startswith(b"From: Barid <noreply@moh.gov.xx>\r\n")
    assert b"DKIM-Signature" not in raw


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_same_facts_same_bytes(
    kind: ReceiptKind, facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    first = build_receipt(facts_factory(kind), hostname=HOSTNAME, signer=receipt_signer)
    again = build_receipt(facts_factory(kind), hostname=HOSTNAME, signer=receipt_signer)
    assert first == again
    unsigned = build_receipt(facts_factory(kind), hostname=HOSTNAME, signer=None)
    assert first.endswith(unsigned)


def test_message_id_is_stable_and_distinct(facts_factory: FactsFactory) -> None:
    acceptance = facts_factory(ReceiptKind.ACCEPTANCE)
    message_id = receipt_message_id(acceptance, HOSTNAME)
    assert re.fullmatch(r"<receipt\.acceptance\.[0-9a-f]{64}@mail\.moh\.gov\.xx>", message_id)
    # Stable: other facts (times, subject, recipients' order) do not change it.
    later = dataclasses.replace(
        acceptance,
        event_at=acceptance.event_at + dt.timedelta(hours=1),
        subject="changed",
        recipients=tuple(reversed(acceptance.recipients)),
    )
    assert receipt_message_id(later, HOSTNAME) == message_id
    delivery = facts_factory(ReceiptKind.DELIVERY)
    ids = {
        message_id,
        receipt_message_id(delivery, HOSTNAME),
        receipt_message_id(facts_factory(ReceiptKind.NON_DELIVERY), HOSTNAME),
        receipt_message_id(dataclasses.replace(delivery, recipients=("x@mof.gov.xx",)), HOSTNAME),
        receipt_message_id(dataclasses.replace(delivery, registry="MOH/2026/000043"), HOSTNAME),
    }
    assert len(ids) == 5
    assert receipt_message_id(delivery, HOSTNAME).startswith("<receipt.delivery.")
    with pytest.raises(ValueError, match="hostname"):
        receipt_message_id(delivery, "mail.moh.gov.xx>\r\nBcc: x@y")


def test_different_facts_different_boundaries(facts_factory: FactsFactory) -> None:
    def boundary(raw: bytes) -> bytes:
        match = re.search(rb'boundary="([^"]+)"', raw)
        assert match is not None
        return match.group(1)

    one = build_receipt(facts_factory(ReceiptKind.DELIVERY), hostname=HOSTNAME, signer=None)
    two = build_receipt(
        facts_factory(ReceiptKind.DELIVERY, recipients=("x@mof.gov.xx",)),
        hostname=HOSTNAME,
        signer=None,
    )
    assert boundary(one) != boundary(two)


# ---------------------------------------------------------------- wire format


def assert_wire_safe(raw: bytes) -> None:
    assert raw.isascii(), "8-bit octets on the wire"
    assert b"\x00" not in raw
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, "bare CR or LF"
        assert len(line) <= 998


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_wire_format(
    kind: ReceiptKind, facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    assert_wire_safe(build_receipt(facts_factory(kind), hostname=HOSTNAME, signer=receipt_signer))


def test_wire_format_with_large_values(
    facts_factory: FactsFactory, receipt_signer: DkimSigner, receipt_dnsfunc: DnsFunc
) -> None:
    facts = facts_factory(
        ReceiptKind.ACCEPTANCE,
        subject="تقرير " * 400 + "x" * 1500,
        recipients=tuple(f"employee{i}@mof.gov.xx" for i in range(300)),
        documents=tuple((f"وثيقة-{i}.pdf", f"{i:064x}") for i in range(50)),
    )
    raw = build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)
    assert_wire_safe(raw)
    message = parse(raw)
    assert str(message["Subject"]).endswith("x" * 1500)
    _, _, document = body_parts(message)
    assert document == expected_document(facts)
    assert verify_all(raw, receipt_dnsfunc) == [True, True]


# ---------------------------------------------------------------- refusals


NAIVE = dt.datetime(2026, 3, 1, 10, 15, 30)  # naive on purpose
REFUSED = [
    (ReceiptKind.ACCEPTANCE, {"recipients": ()}, "at least one recipient"),
    (ReceiptKind.DELIVERY, {"recipients": ()}, "exactly one recipient"),
    (ReceiptKind.DELIVERY, {"recipients": ("a@mof.gov.xx", "b@mof.gov.xx")}, "exactly one recipient"),
    (ReceiptKind.NON_DELIVERY, {"recipients": ("a@mof.gov.xx", "b@mof.gov.xx")}, "exactly one recipient"),
    (ReceiptKind.ACCEPTANCE, {"recipients": ("a@mof.gov.xx", "a@mof.gov.xx")}, "listed twice"),
    (ReceiptKind.NON_DELIVERY, {"reason": None}, "needs a reason"),
    (ReceiptKind.NON_DELIVERY, {"reason": "mailbox-on-fire"}, "unknown non-delivery reason"),
    (ReceiptKind.DELIVERY, {"reason": "policy"}, "belong to non-delivery"),
    (ReceiptKind.ACCEPTANCE, {"reason": "unknown-recipient"}, "belong to non-delivery"),
    (ReceiptKind.DELIVERY, {"detail": "250 ok"}, "belong to non-delivery"),
    (ReceiptKind.ACCEPTANCE, {"accepted_at": NAIVE}, "accepted_at must be timezone-aware"),
    (ReceiptKind.DELIVERY, {"event_at": NAIVE}, "event_at must be timezone-aware"),
    (ReceiptKind.ACCEPTANCE, {"kind": "bounce"}, "unknown receipt kind"),
    (ReceiptKind.ACCEPTANCE, {"subject": "Report\r\nBcc: spy@evil.example"}, "subject contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"subject": "two\nlines"}, "subject contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"subject": "two\rlines"}, "subject contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"subject": "nul\x00"}, "subject contains a line break or NUL"),
    (ReceiptKind.ACCEPTANCE, {"subject": "bad \udcff"}, "subject is not valid Unicode"),
    (ReceiptKind.ACCEPTANCE, {"sender_address": "a@moh.gov.xx\r\nBcc: b@c.xx"}, "sender_address contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"sender_address": "Ahmad <a@moh.gov.xx>"}, "sender_address must be"),
    (ReceiptKind.ACCEPTANCE, {"sender_address": "أحمد@moh.gov.xx"}, "sender_address must be"),
    (ReceiptKind.ACCEPTANCE, {"sender_domain": "moh.gov.xx\n"}, "sender_domain contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"sender_domain": "moh gov"}, "sender_domain must be"),
    (ReceiptKind.ACCEPTANCE, {"registry": "MOH/2026/000042\r\nX: y"}, "registry contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"registry": "moh/2026/42"}, "registry number"),
    (ReceiptKind.ACCEPTANCE, {"registry": "moh/2026/000042"}, "canonical form"),
    (ReceiptKind.DELIVERY, {"recipients": ("f@mof.gov.xx\r\nBcc: x@y.xx",)}, "recipient contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"token": "ABC\r\n"}, "token contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"token": "ABC DEF"}, "token must be"),
    (ReceiptKind.ACCEPTANCE, {"verify_url": "https://v.gov.xx/v/X\r\n"}, "verify_url contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"verify_url": "javascript:alert(1)"}, "verify_url must be an http"),
    (ReceiptKind.ACCEPTANCE, {"verify_url": "https://v.gov.xx/v/OTHER"}, "does not end with /v/<token>"),
    (ReceiptKind.ACCEPTANCE, {"classification": "secret\r\n"}, "classification contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"documents": (("a\r\n.pdf", "ab" * 32),)}, "document name contains a line break"),
    (ReceiptKind.ACCEPTANCE, {"documents": (("a.pdf", "AB" * 32),)}, "64 lower-case hex digits"),
    (ReceiptKind.ACCEPTANCE, {"documents": (("a.pdf",),)}, r"must be \(file name, sha256\)"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "changes", "message"), REFUSED)
def test_inconsistent_facts_are_refused(
    kind: ReceiptKind,
    changes: dict[str, object],
    message: str,
    facts_factory: FactsFactory,
    receipt_signer: DkimSigner,
) -> None:
    facts = facts_factory(kind, **changes)
    with pytest.raises(ValueError, match=message):
        build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)


def test_refuses_a_signer_for_another_domain(
    facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    facts = facts_factory(ReceiptKind.ACCEPTANCE, sender_domain="mof.gov.xx")
    with pytest.raises(ValueError, match=r"DKIM signer is for 'moh\.gov\.xx'"):
        build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)


def test_refuses_a_bad_hostname(facts_factory: FactsFactory) -> None:
    with pytest.raises(ValueError, match="hostname"):
        build_receipt(facts_factory(ReceiptKind.ACCEPTANCE), hostname="", signer=None)
