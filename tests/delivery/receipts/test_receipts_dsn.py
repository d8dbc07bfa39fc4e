"""Non-delivery receipts as RFC 6522 reports with an RFC 3464 delivery-status part;
the issuer domain of a receipt stated by another gateway."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import re
from collections.abc import Callable
from email.message import EmailMessage, Message
from typing import Any

import dkim
import pytest

from gateway.delivery.receipts import (
    NON_DELIVERY_REASONS,
    NON_DELIVERY_STATUS,
    ReceiptFacts,
    ReceiptKind,
    build_receipt,
)
from gateway.stamping import DkimSigner
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys

HOSTNAME = "mail.moh.gov.xx"
PEER_DOMAIN = "mof.gov.xx"  # a federated peer gateway stating a receipt for moh.gov.xx
FactsFactory = Callable[..., ReceiptFacts]
DnsFunc = Callable[..., bytes | None]
ND = ReceiptKind.NON_DELIVERY


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def report_parts(raw: bytes) -> tuple[EmailMessage, EmailMessage]:
    """(the human-readable multipart/mixed, the message/delivery-status) of an NDR."""
    message = parse(raw)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    parts = list(message.iter_parts())
    assert len(parts) == 2
    readable, status = parts
    assert isinstance(readable, EmailMessage) and isinstance(status, EmailMessage)
    assert readable.get_content_type() == "multipart/mixed"
    assert status.get_content_type() == "message/delivery-status"
    return readable, status


def dsn_groups(raw: bytes) -> list[list[tuple[str, str]]]:
    """The delivery-status field groups as `email` parses them (one block per group)."""
    _, status = report_parts(raw)
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    groups = []
    for block in blocks:
        assert isinstance(block, Message)
        groups.append([(name, str(value)) for name, value in block.items()])
    return groups


def dsn_bytes(raw: bytes) -> bytes:
    """The raw body of the message/delivery-status part; the CRLF before the closing
    delimiter belongs to the delimiter (RFC 2046 §5.1.1)."""
    start = raw.index(b"Content-Type: message/delivery-status\r\n")
    body = raw.index(b"\r\n\r\n", start) + 4
    return raw[body : raw.index(b"\r\n--r.barid.", body)]


def receipt_json(raw: bytes) -> dict[str, Any]:
    message = parse(raw)
    found = [p for p in message.walk() if p.get_content_type() == "application/json"]
    assert len(found) == 1
    payload = found[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    document: dict[str, Any] = json.loads(payload)
    return document


def status_of(raw: bytes) -> str:
    return dict(dsn_groups(raw)[1])["Status"]


def verify_all(message: bytes, dnsfunc: DnsFunc) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature (RSA first, then Ed25519)."""
    results = []
    for index in range(2):
        verifier = dkim.DKIM(message)
        try:
            results.append(bool(verifier.verify(idx=index, dnsfunc=dnsfunc)))
        except dkim.DKIMException:
            results.append(False)
    return results


def signatures(raw: bytes) -> list[str]:
    head = raw[: raw.index(b"\r\n\r\n")].decode("ascii")
    found = re.findall(r"^DKIM-Signature:.*?(?=^\S)", head, re.M | re.S)
    assert len(found) == 2
    return found


def assert_wire_safe(raw: bytes) -> None:
    assert raw.isascii() and b"\x00" not in raw and raw.endswith(b"\r\n")
    for line in raw.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line, "bare CR or LF"
        assert len(line) <= 998


@pytest.fixture(scope="module")
def peer_signer(receipt_keys: GatewayKeys) -> DkimSigner:
    return DkimSigner(receipt_keys, PEER_DOMAIN, "barid")


@pytest.fixture(scope="module")
def peer_dnsfunc(receipt_keys: GatewayKeys) -> DnsFunc:
    records = {
        f"{r.name}.".encode(): r.value.encode()
        for r in dkim_records(receipt_keys, "barid", PEER_DOMAIN)
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


# ---------------------------------------------------------------- structure


def test_non_delivery_is_a_delivery_status_report(
    facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    facts = facts_factory(ND, remote_mta="mx1.mof.gov.xx")
    raw = build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)
    assert_wire_safe(raw)
    assert re.search(
        rb'^Content-Type: multipart/report; report-type=delivery-status; boundary="r\.barid\.',
        raw,
        re.M,
    )
    readable, status = report_parts(raw)
    # The human-readable part is the receipt as before: the alternative, then receipt.json.
    alternative, attachment = list(readable.iter_parts())
    assert isinstance(alternative, EmailMessage) and isinstance(attachment, EmailMessage)
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_filename() == "receipt.json"
    plain = alternative.get_body(preferencelist=("plain",))
    assert plain is not None
    assert "could not be delivered to finance@mof.gov.xx" in plain.get_content()
    # The delivery status is readable as it is: 7bit, not base64.
    assert status["Content-Transfer-Encoding"] == "7bit"
    assert b"Reporting-MTA: dns; mail.moh.gov.xx\r\n" in raw
    # Every boundary is distinct and occurs only on its delimiter lines.
    boundaries = re.findall(rb'boundary="([^"]+)"', raw)
    assert len(set(boundaries)) == 3
    for boundary in boundaries:
        lines = [line for line in raw.split(b"\r\n") if boundary in line]
        assert all(
            line in (b"--" + boundary, b"--" + boundary + b"--") or b'boundary="' in line
            for line in lines
        )
    assert raw.count(b"message/delivery-status") == 1


def test_delivery_status_fields(facts_factory: FactsFactory) -> None:
    facts = facts_factory(ND, remote_mta="mx1.mof.gov.xx")
    raw = build_receipt(facts, hostname=HOSTNAME, signer=None)
    groups = dsn_groups(raw)
    assert groups == [
        [
            ("Reporting-MTA", "dns; mail.moh.gov.xx"),
            ("Arrival-Date", "Sun, 01 Mar 2026 10:15:30 +0000"),
        ],
        [
            ("Final-Recipient", "rfc822; finance@mof.gov.xx"),
            ("Action", "failed"),
            ("Status", "5.1.1"),
            ("Remote-MTA", "dns; mx1.mof.gov.xx"),
            ("Diagnostic-Code", "smtp; 550 5.1.1 <finance@mof.gov.xx>: user unknown"),
            ("Last-Attempt-Date", "Sun, 01 Mar 2026 10:17:30 +0000"),
        ],
    ]
    assert email.utils.parsedate_to_datetime(groups[0][1][1]) == facts.accepted_at
    assert email.utils.parsedate_to_datetime(groups[1][-1][1]) == facts.event_at
    # On the wire: CRLF fields, one empty line between the per-message and recipient groups.
    assert dsn_bytes(raw) == (
        b"Reporting-MTA: dns; mail.moh.gov.xx\r\n"
        b"Arrival-Date: Sun, 01 Mar 2026 10:15:30 +0000\r\n"
        b"\r\n"
        b"Final-Recipient: rfc822; finance@mof.gov.xx\r\n"
        b"Action: failed\r\n"
        b"Status: 5.1.1\r\n"
        b"Remote-MTA: dns; mx1.mof.gov.xx\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 <finance@mof.gov.xx>: user unknown\r\n"
        b"Last-Attempt-Date: Sun, 01 Mar 2026 10:17:30 +0000\r\n"
    )
    document = receipt_json(raw)
    assert document["status"] == "5.1.1"
    assert document["remote_mta"] == "mx1.mof.gov.xx"


def test_remote_mta_and_diagnostic_code_only_when_known(facts_factory: FactsFactory) -> None:
    raw = build_receipt(facts_factory(ND, detail=None), hostname=HOSTNAME, signer=None)
    assert dsn_groups(raw)[1] == [
        ("Final-Recipient", "rfc822; finance@mof.gov.xx"),
        ("Action", "failed"),
        ("Status", "5.1.1"),
        ("Last-Attempt-Date", "Sun, 01 Mar 2026 10:17:30 +0000"),
    ]
    assert receipt_json(raw)["remote_mta"] is None
    # A detail that is no SMTP reply stays in the receipt's text, not in Diagnostic-Code.
    raw = build_receipt(
        facts_factory(ND, reason="withdrawn", detail="withdrawn by operator x"),
        hostname=HOSTNAME,
        signer=None,
    )
    names = [name for name, _ in dsn_groups(raw)[1]]
    assert "Diagnostic-Code" not in names and "Remote-MTA" not in names
    assert receipt_json(raw)["detail"] == "withdrawn by operator x"


# ---------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("reason", "detail", "status", "expected"),
    [
        ("policy", "550 5.7.1 Not allowed (policy x)", None, "5.7.1"),
        ("recipient-refused", "550 5.7.1 Not allowed (policy x)", None, "5.7.1"),
        ("recipient-refused", "554-5.7.26 Unauthenticated\r\n554 5.7.26 mail", None, "5.7.26"),
        ("retry-window-expired", "451 4.4.1 No answer from host", None, "4.4.1"),
        ("unknown-recipient", "host mx said: 550 5.1.10 no such user", None, "5.1.10"),
        # No enhanced code, or one that contradicts the reply: the reason's default.
        ("recipient-refused", "554 Transaction failed", None, "5.0.0"),
        ("recipient-refused", "550 4.2.2 odd", None, "5.0.0"),
        ("recipient-suspended", "250 2.0.0 Ok", None, "5.2.1"),
        ("retry-window-expired", "connection timed out", None, "4.4.7"),
        ("withdrawn", None, None, "5.3.0"),
        # The caller's status wins over the detail.
        ("recipient-refused", "550 5.7.1 Not allowed", "5.2.2", "5.2.2"),
        ("retry-window-expired", None, "4.4.2", "4.4.2"),
    ],
)
def test_status_from_caller_detail_or_reason(
    reason: str, detail: str | None, status: str | None, expected: str, facts_factory: FactsFactory
) -> None:
    facts = facts_factory(ND, reason=reason, detail=detail, status=status)
    raw = build_receipt(facts, hostname=HOSTNAME, signer=None)
    assert status_of(raw) == expected
    assert receipt_json(raw)["status"] == expected


def test_every_reason_has_a_default_status(facts_factory: FactsFactory) -> None:
    assert set(NON_DELIVERY_STATUS) == set(NON_DELIVERY_REASONS)
    for reason, status in NON_DELIVERY_STATUS.items():
        assert re.fullmatch(r"[45]\.[0-9]{1,3}\.[0-9]{1,3}", status), reason
        facts = facts_factory(ND, reason=reason, detail=None)
        assert status_of(build_receipt(facts, hostname=HOSTNAME, signer=None)) == status
    assert NON_DELIVERY_STATUS == {
        "unknown-recipient": "5.1.1",
        "recipient-suspended": "5.2.1",
        "recipient-refused": "5.0.0",
        "retry-window-expired": "4.4.7",
        "policy": "5.7.1",
        "withdrawn": "5.3.0",
    }


# ---------------------------------------------------------------- determinism, DKIM


def test_same_facts_same_report_bytes(
    facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    def build(**changes: object) -> bytes:
        facts = facts_factory(ND, **{"remote_mta": "mx1.mof.gov.xx", **changes})
        return build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)

    first = build()
    assert first == build()
    assert b"multipart/report" in first
    assert build(status="5.1.2") != first
    assert build(remote_mta="mx2.mof.gov.xx") != first


def test_dkim_signs_the_whole_report(
    facts_factory: FactsFactory, receipt_signer: DkimSigner, receipt_dnsfunc: DnsFunc
) -> None:
    facts = facts_factory(ND, remote_mta="mx1.mof.gov.xx")
    raw = build_receipt(facts, hostname=HOSTNAME, signer=receipt_signer)
    for signature in signatures(raw):
        assert "d=moh.gov.xx;" in signature
    assert verify_all(raw, receipt_dnsfunc) == [True, True]
    assert b"multipart/report" in raw
    for old, new in (
        (b"Status: 5.1.1\r\n", b"Status: 5.1.2\r\n"),
        (b"Remote-MTA: dns; mx1.", b"Remote-MTA: dns; mx2."),
        (b"report-type=delivery-status", b"report-type=delivery-xtatus"),
    ):
        tampered = raw.replace(old, new)
        assert tampered != raw and len(tampered) == len(raw)
        assert verify_all(tampered, receipt_dnsfunc) == [False, False], old


def test_wire_format_with_a_long_detail(facts_factory: FactsFactory) -> None:
    reply = "550-5.1.1 " + "x" * 2000 + "\r\n550 5.1.1 é"
    facts = facts_factory(ND, detail=reply, remote_mta="a" * 63 + ".mof.gov.xx")
    raw = build_receipt(facts, hostname=HOSTNAME, signer=None)
    assert_wire_safe(raw)
    diagnostic = dict(dsn_groups(raw)[1])["Diagnostic-Code"]
    assert diagnostic.startswith("smtp; 550-5.1.1 xxx") and len(diagnostic) == 6 + 300


# ---------------------------------------------------------------- issuer domain


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_issuer_domain_states_and_signs(
    kind: ReceiptKind,
    facts_factory: FactsFactory,
    peer_signer: DkimSigner,
    peer_dnsfunc: DnsFunc,
) -> None:
    facts = facts_factory(kind, issuer_domain=PEER_DOMAIN)
    raw = build_receipt(facts, hostname="mail.mof.gov.xx", signer=peer_signer)
    message = parse(raw)
    assert message["From"] == "Barid <noreply@mof.gov.xx>"
    assert message["To"] == "ahmad.ali@moh.gov.xx"  # still the sender of the other government
    for signature in signatures(raw):
        assert "d=mof.gov.xx;" in signature
    assert verify_all(raw, peer_dnsfunc) == [True, True]
    document = receipt_json(raw)
    assert document["issuer_domain"] == PEER_DOMAIN
    assert document["sender"] == "ahmad.ali@moh.gov.xx"
    assert_wire_safe(raw)


def test_issuer_domain_must_be_the_signers(
    facts_factory: FactsFactory, receipt_signer: DkimSigner, peer_signer: DkimSigner
) -> None:
    with pytest.raises(ValueError, match=r"DKIM signer is for 'moh\.gov\.xx'.*'mof\.gov\.xx'"):
        build_receipt(
            facts_factory(ND, issuer_domain=PEER_DOMAIN), hostname=HOSTNAME, signer=receipt_signer
        )
    # Without an issuer, the sender's domain must still be the signer's.
    with pytest.raises(ValueError, match=r"DKIM signer is for 'mof\.gov\.xx'"):
        build_receipt(facts_factory(ND), hostname=HOSTNAME, signer=peer_signer)
    # The issuer may be given as the sender's own domain.
    raw = build_receipt(
        facts_factory(ND, issuer_domain="moh.gov.xx"), hostname=HOSTNAME, signer=receipt_signer
    )
    assert parse(raw)["From"] == "Barid <noreply@moh.gov.xx>"


def test_without_new_facts_other_receipts_are_unchanged(
    facts_factory: FactsFactory, receipt_signer: DkimSigner
) -> None:
    for kind in (ReceiptKind.ACCEPTANCE, ReceiptKind.DELIVERY):
        raw = build_receipt(facts_factory(kind), hostname=HOSTNAME, signer=receipt_signer)
        explicit = facts_factory(kind, issuer_domain=None, status=None, remote_mta=None)
        assert build_receipt(explicit, hostname=HOSTNAME, signer=receipt_signer) == raw
        message = parse(raw)
        assert message.get_content_type() == "multipart/mixed"
        assert [p.get_content_type() for p in message.iter_parts()] == [
            "multipart/alternative",
            "application/json",
        ]
        assert b"multipart/report" not in raw and b"delivery-status" not in raw
        assert b"Reporting-MTA" not in raw
        assert set(receipt_json(raw)) == {
            "format", "kind", "registry", "token", "verify_url", "sender", "recipients",
            "subject", "classification", "accepted_at", "event_at", "documents", "reason",
            "detail",
        }  # fmt: skip
    nd = build_receipt(facts_factory(ND), hostname=HOSTNAME, signer=receipt_signer)
    assert "issuer_domain" not in receipt_json(nd)


# ---------------------------------------------------------------- refusals


REFUSED = [
    (ND, {"status": "5.1"}, "status must be an RFC 3463 code"),
    (ND, {"status": "6.1.1"}, "status must be an RFC 3463 code"),
    (ND, {"status": "5.1.1234"}, "status must be an RFC 3463 code"),
    (ND, {"status": "5.1.1 "}, "status must be an RFC 3463 code"),
    (ND, {"status": "5.1.1\r\nX: y"}, "status contains a line break"),
    (ND, {"status": 511}, "status must be a string"),
    (ND, {"status": "2.0.0"}, "means success"),
    (ND, {"remote_mta": "mx1.mof.gov.xx\r\nX: y"}, "remote_mta contains a line break"),
    (ND, {"remote_mta": "mx1.mof.gov.xx; x"}, "remote_mta must be a host name"),
    (ND, {"remote_mta": "mx1..mof.gov.xx"}, "remote_mta must be a host name"),
    (ND, {"remote_mta": "-mx.mof.gov.xx"}, "remote_mta must be a host name"),
    (ND, {"remote_mta": ""}, "remote_mta must be a host name"),
    (ND, {"remote_mta": "مخدم.gov.xx"}, "remote_mta must be a host name"),
    (ReceiptKind.DELIVERY, {"status": "5.1.1"}, "belong to non-delivery"),
    (ReceiptKind.ACCEPTANCE, {"remote_mta": "mx1.mof.gov.xx"}, "belong to non-delivery"),
    (ND, {"issuer_domain": "mof gov"}, "issuer_domain must be a mail domain"),
    (ND, {"issuer_domain": "localhost"}, "issuer_domain must be a mail domain"),
    (ReceiptKind.ACCEPTANCE, {"issuer_domain": "mof.gov.xx\r\nBcc: x@y.xx"}, "issuer_domain contains a line break"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "changes", "message"), REFUSED)
def test_bad_status_remote_mta_and_issuer_are_refused(
    kind: ReceiptKind, changes: dict[str, object], message: str, facts_factory: FactsFactory
) -> None:
    with pytest.raises(ValueError, match=message):
        build_receipt(facts_factory(kind, **changes), hostname=HOSTNAME, signer=None)
