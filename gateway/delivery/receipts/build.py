"""Receipts for the sender's Receipts folder: acceptance, delivery and non-delivery.

Owns: the MIME bytes of one receipt (docs/CONTRACT.md §6), its receipt.json and
delivery-status part, its deterministic Message-ID and boundaries, and its DKIM
signature through `DkimSigner`; what it says comes from receipts.content, checked
facts from receipts.facts. Must not: read the clock, the database or the network,
or deliver anything; the caller stores the bytes.

Contract: `build_receipt(facts, hostname=, signer=)` returns a complete message with
CRLF line ends only, every line at most 998 octets, 7-bit on the wire (base64
bodies, RFC 2047 Subject, a 7bit delivery-status part), `Auto-Submitted:
auto-generated` (RFC 3834), DKIM-signed with `t=` taken from `facts.event_at`. The
same facts give the same bytes, so a receipt re-rendered after a crash is the same
message with the same Message-ID (`receipt_message_id`). Facts that do not fit
together raise ValueError before anything is built.

The issuer: the gateway stating the receipt is `facts.issuer_domain` when set (a
federated peer gateway reporting on a sender of another government), else
`facts.sender_domain`. That domain is in `From: Barid <noreply@{domain}>` and must be
the DKIM signer's domain. receipt.json has "issuer_domain" only when it is set, so a
receipt without one is byte for byte what it was before the field existed.

Layout of an acceptance or delivery receipt:

    multipart/mixed
      multipart/alternative      text/plain + text/html, Arabic then English
      application/json           receipt.json, the facts for machines

Layout of a non-delivery receipt (RFC 6522 report, RFC 3464 delivery status):

    multipart/report; report-type=delivery-status
      multipart/mixed            the human-readable part: the same two parts as above
        multipart/alternative    text/plain + text/html, Arabic then English
        application/json         receipt.json, also with "status" and "remote_mta"
      message/delivery-status    7bit fields (RFC 3464 §2.2, §2.3):
                                   Reporting-MTA: dns; <hostname>
                                   Arrival-Date: <accepted_at>
                                   (empty line)
                                   Final-Recipient: rfc822; <recipient>
                                   Action: failed
                                   Status: <status>
                                   Remote-MTA: dns; <remote_mta>    (when known)
                                   Diagnostic-Code: smtp; <detail>  (when an SMTP reply)
                                   Last-Attempt-Date: <event_at>

The status is `facts.status` when given, else the enhanced code of an SMTP reply in
`facts.detail` ("550 5.7.1 ..." gives 5.7.1), else `NON_DELIVERY_STATUS[reason]`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from gateway.delivery.receipts.content import JSON_NAME, receipt_content, receipt_html, receipt_text
from gateway.delivery.receipts.facts import (
    HOSTNAME_RE,
    PER_RECIPIENT,
    SMTP_REPLY_RE,
    ReceiptFacts,
    ReceiptKind,
    checked,
    matching,
)
from gateway.presentation import say
from gateway.stamping.dkim import DkimSigner
from gateway.stamping.envelope import (
    CRLF,
    MAX_LINE,
    base64_lines,
    close_delimiter,
    delimiter,
    header,
    part_headers,
    subject_header,
)
from gateway.stamping.stamper import utc_text

_FORMAT = "barid-receipt/1"
_PREAMBLE = b"This is a multi-part message in MIME format (RFC 2045)."


def _receipt_document(facts: ReceiptFacts) -> dict[str, Any]:
    """receipt.json: the facts, times as ISO 8601 UTC with a Z.

    A non-delivery adds "status" and "remote_mta" (null when unknown); "issuer_domain"
    is there only when set, so other receipts keep the keys they always had.
    """
    document: dict[str, Any] = {
        "format": _FORMAT,
        "kind": str(facts.kind),
        "registry": facts.registry,
        "token": facts.token,
        "verify_url": facts.verify_url,
        "sender": facts.sender_address,
        "recipients": list(facts.recipients),
        "subject": facts.subject,
        "classification": facts.classification,
        "accepted_at": utc_text(facts.accepted_at),
        "event_at": utc_text(facts.event_at),
        "documents": [{"name": name, "sha256": sha256} for name, sha256 in facts.documents],
        "reason": facts.reason,
        "detail": facts.detail,
    }
    if facts.kind is ReceiptKind.NON_DELIVERY:
        document["status"] = facts.status
        document["remote_mta"] = facts.remote_mta
    if facts.kind is ReceiptKind.SUMMARY:
        document["failed"] = list(facts.failed)
        document["pending"] = list(facts.pending)
        document["copies"] = [
            {"recipient": r, "outcome": o, "at": at or None, "evidence": e or None}
            for r, o, at, e in facts.copies
        ]
    if facts.issuer_domain is not None:
        document["issuer_domain"] = facts.issuer_domain
    return document


def _delivery_status(facts: ReceiptFacts, hostname: str) -> bytes:
    """The message/delivery-status body (RFC 3464 §2): per-message fields, an empty
    line, then the one recipient's fields; ASCII, CRLF ends, one line per field."""
    assert facts.status is not None  # set by _checked for every non-delivery
    per_message = [
        ("Reporting-MTA", f"dns; {hostname}"),
        ("Arrival-Date", email.utils.format_datetime(facts.accepted_at)),
    ]
    per_recipient = [
        ("Final-Recipient", f"rfc822; {facts.recipients[0]}"),
        ("Action", "failed"),
        ("Status", facts.status),
    ]
    if facts.remote_mta is not None:
        per_recipient.append(("Remote-MTA", f"dns; {facts.remote_mta}"))
    if facts.detail is not None and SMTP_REPLY_RE.match(facts.detail):
        per_recipient.append(("Diagnostic-Code", f"smtp; {facts.detail}"))
    per_recipient.append(("Last-Attempt-Date", email.utils.format_datetime(facts.event_at)))
    return (
        b"".join(_field(name, value) for name, value in per_message)
        + CRLF
        + b"".join(_field(name, value) for name, value in per_recipient)
    )


# ---------------------------------------------------------------- message


def receipt_message_id(facts: ReceiptFacts, hostname: str) -> str:
    """`<receipt.{kind}.{sha256 hex of (kind, registry, recipients)}@{hostname}>`.

    The same receipt always gets the same Message-ID, whatever order the recipients
    come in, so one rendered again after a crash is recognisably the same message.
    """
    host = matching("hostname", hostname, HOSTNAME_RE, "a host name such as mail.moh.gov.xx")
    kind = ReceiptKind(facts.kind)
    # A summary is one per message, whatever it lists.
    listed = [] if kind is ReceiptKind.SUMMARY else sorted(facts.recipients)
    identity = json.dumps([str(kind), facts.registry, listed])
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return f"<receipt.{kind}.{digest}@{host}>"


def _boundary(seed: bytes, parts: Sequence[bytes]) -> str:
    """A boundary base that occurs in none of `parts`, derived from `seed`.

    `envelope.new_boundary` draws a random one; a receipt needs the same bytes for
    the same facts, so here the candidates come from hashing `seed` with a counter.
    """
    counter = 0
    while True:
        digest = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        base = "barid." + base64.b32encode(digest[:20]).decode("ascii").lower()
        raw = base.encode("ascii")
        if not any(raw in part for part in parts):
            return base
        counter += 1


def _subject(f: ReceiptFacts) -> str:
    title = f"receipt.{f.kind}.title"
    text = f"{say('ar', title)} / {say('en', title)}: {f.registry}"
    if f.kind in PER_RECIPIENT:
        text += f" ({f.recipients[0]})"
    if f.subject.strip():
        text += f" — {f.subject}"
    return text


def _field(name: str, value: str) -> bytes:
    line = header(name, value)
    if len(line) - len(CRLF) > MAX_LINE:
        raise ValueError(f"{name} is too long for one header line ({len(line)} octets)")
    return line


def _header_fields(f: ReceiptFacts, message_id: str, content_type: str) -> list[bytes]:
    fields = [
        _field("From", f"Barid <noreply@{f.signing_domain}>"),
        _field("To", f.sender_address),
        subject_header(_subject(f)),
        _field("Date", email.utils.format_datetime(f.event_at)),
        _field("Message-ID", message_id),
        _field("MIME-Version", "1.0"),
        _field("Content-Type", content_type),
        _field("Auto-Submitted", "auto-generated"),
        _field("Barid-Registry", f.registry),
        _field("Barid-Verify", f.verify_url),
        _field("Barid-Receipt", str(f.kind)),
    ]
    if f.kind in PER_RECIPIENT:
        fields.append(_field("Barid-Recipient", f.recipients[0]))
    return fields


def build_receipt(facts: ReceiptFacts, *, hostname: str, signer: DkimSigner | None) -> bytes:
    """The receipt's bytes, DKIM-signed by `signer` unless None; the signer's domain
    must be `facts.issuer_domain` when set, else `facts.sender_domain`.

    Raises ValueError when the facts are inconsistent or cannot be written safely.
    """
    f = checked(facts)
    domain = f.signing_domain
    if signer is not None and signer.domain != domain.lower().removesuffix("."):
        raise ValueError(f"the DKIM signer is for {signer.domain!r}, the receipt for {domain!r}")
    message_id = receipt_message_id(f, hostname)
    report = f.kind is ReceiptKind.NON_DELIVERY
    content = receipt_content(f)
    text = receipt_text(content).encode("utf-8")
    page = receipt_html(content).encode("utf-8")
    document = json.dumps(_receipt_document(f), ensure_ascii=False, indent=2).encode("utf-8")
    encoded = [base64_lines(text), base64_lines(page), base64_lines(document + b"\n")]
    status = _delivery_status(f, hostname) if report else b""
    base = _boundary(message_id.encode("ascii") + document, [*encoded, status])
    mixed, alternative, outer = f"m.{base}", f"a.{base}", f"r.{base}"
    utf8_base64 = ("Content-Transfer-Encoding", "base64")
    mixed_type = f'multipart/mixed; boundary="{mixed}"'
    if report:
        content_type = f'multipart/report; report-type=delivery-status; boundary="{outer}"'
    else:
        content_type = mixed_type
    fields = _header_fields(f, message_id, content_type)
    body = b"".join(
        (
            delimiter(mixed),
            part_headers(("Content-Type", f'multipart/alternative; boundary="{alternative}"')),
            delimiter(alternative),
            part_headers(("Content-Type", 'text/plain; charset="utf-8"'), utf8_base64),
            encoded[0],
            delimiter(alternative),
            part_headers(("Content-Type", 'text/html; charset="utf-8"'), utf8_base64),
            encoded[1],
            close_delimiter(alternative),
            delimiter(mixed),
            part_headers(
                ("Content-Type", f'application/json; charset="utf-8"; name="{JSON_NAME}"'),
                ("Content-Disposition", f'attachment; filename="{JSON_NAME}"'),
                utf8_base64,
            ),
            encoded[2],
            close_delimiter(mixed),
        )
    )
    if report:
        body = b"".join(
            (
                delimiter(outer),
                part_headers(("Content-Type", mixed_type)),
                body,
                delimiter(outer),
                part_headers(
                    ("Content-Type", "message/delivery-status"),
                    ("Content-Transfer-Encoding", "7bit"),
                ),
                status,
                close_delimiter(outer),
            )
        )
    message = b"".join((*fields, CRLF, _PREAMBLE, CRLF, body))
    if signer is None:
        return message
    return signer.signed(message, timestamp=int(f.event_at.timestamp()))
