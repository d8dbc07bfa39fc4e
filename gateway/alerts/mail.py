"""The message an alert files into a security mailbox: its content and its bytes.

Owns: what the message says (the kind and its description, when, what it is
about, the kind's named facts, how to acknowledge it) rendered with the
templates `alert.txt` and `alert.html` (Arabic first, then English), and the
MIME bytes: From the gateway's own address at the mailbox's domain, a bilingual
RFC 2047 Subject, `Barid-Alert: <id>`, `Auto-Submitted: auto-generated`, a
deterministic Message-ID (the same alert gives the same message), and, given
the gateway's DKIM signer for the mailbox's domain, both DKIM-Signature fields
on top (timestamp: the alert's time), as receipts are signed, so a mail client
can check the message is the gateway's own. Must not:
show any detail of the event beyond the kind's named facts (kinds.KINDS), read
the database or the clock, or deliver anything. Failure: an unknown kind or a
header that cannot be written, or a signer for another domain, raises ValueError.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.alerts.kinds import KINDS
from gateway.presentation import Value, render_mail_html, render_mail_text, say
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

ACK_PAGE = "/admin/security/alerts"
MAX_FACT = 300  # a longer fact (a peer's error reply) is cut here


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """An alert as its audit event records it."""

    id: int
    at: dt.datetime
    action: str
    subject: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlertContent:
    kind: str
    ident: str
    command: str
    page: str
    rows: tuple[tuple[str, Value], ...]
    facts: tuple[tuple[str, str], ...]

    @property
    def description_key(self) -> str:
        return f"alert.kind.{self.kind}"


def _fact(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return " ".join(text.split())[:MAX_FACT]


def alert_content(alert: AlertFacts, admin_url: str = "") -> AlertContent:
    info = KINDS.get(alert.action)
    if info is None:
        raise ValueError(f"{alert.action!r} is not an alert")
    rows = [
        ("alert.id", Value(str(alert.id))),
        ("alert.kind", Value(info.kind.value)),
        ("alert.at", Value(alert.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))),
    ]
    if alert.subject:
        rows.append(("alert.subject", Value(alert.subject)))
    facts = tuple(
        (name, _fact(alert.details[name]))
        for name in info.facts
        if alert.details.get(name) not in (None, "", [])
    )
    return AlertContent(
        kind=info.kind.value,
        ident=str(alert.id),
        command=f"barid alerts ack {alert.id}",
        page=admin_url.rstrip("/") + ACK_PAGE,
        rows=tuple(rows),
        facts=facts,
    )


def _field(name: str, value: str) -> bytes:
    line = header(name, value)
    if len(line) - len(CRLF) > MAX_LINE:
        raise ValueError(f"{name} is too long for one header line")
    return line


def alert_message_id(alert_id: int, hostname: str) -> str:
    return f"<alert.{alert_id}@{hostname}>"


def build_alert_mail(
    alert: AlertFacts,
    *,
    to: str,
    hostname: str,
    admin_url: str = "",
    signer: DkimSigner | None = None,
) -> bytes:
    """The message's bytes (CRLF, 7-bit, base64 bodies) for the mailbox `to`,
    DKIM-signed by `signer` (whose domain must be the mailbox's) unless None."""
    content = alert_content(alert, admin_url)
    domain = to.rpartition("@")[2]
    if signer is not None and signer.domain != domain.lower().removesuffix("."):
        raise ValueError(f"the DKIM signer is for {signer.domain!r}, the alert for {domain!r}")
    title = f"{say('ar', 'alert.title')} / {say('en', 'alert.title')}"
    subject = f"{title}: {content.kind} #{alert.id}"
    if alert.subject:
        subject += f" ({alert.subject})"
    text = render_mail_text("alert.txt", a=content).encode("utf-8")
    page = render_mail_html("alert.html", a=content, title=title).encode("utf-8")
    encoded = [base64_lines(text), base64_lines(page)]
    seed = f"{alert.id}/{alert.action}/{alert.subject}".encode()
    boundary = "a.barid." + hashlib.sha256(seed).hexdigest()[:32]
    utf8_base64 = ("Content-Transfer-Encoding", "base64")
    fields = [
        _field("From", f"Barid <noreply@{domain}>"),
        _field("To", to),
        subject_header(subject),
        _field("Date", email.utils.format_datetime(alert.at.astimezone(dt.UTC))),
        _field("Message-ID", alert_message_id(alert.id, hostname)),
        _field("MIME-Version", "1.0"),
        _field("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        _field("Auto-Submitted", "auto-generated"),
        _field("Barid-Alert", str(alert.id)),
        _field("Barid-Alert-Kind", content.kind),
    ]
    body = b"".join(
        (
            delimiter(boundary),
            part_headers(("Content-Type", 'text/plain; charset="utf-8"'), utf8_base64),
            encoded[0],
            delimiter(boundary),
            part_headers(("Content-Type", 'text/html; charset="utf-8"'), utf8_base64),
            encoded[1],
            close_delimiter(boundary),
        )
    )
    message = b"".join((*fields, CRLF, body))
    if signer is None:
        return message
    return signer.signed(message, timestamp=int(alert.at.timestamp()))
