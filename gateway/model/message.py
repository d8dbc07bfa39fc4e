"""Plain values of one official message, passed between the steps (no behaviour, no I/O).

Owns: the shapes of a checked submission, of its stamp and of an acceptance.
Must not: grow logic or import the steps that use it; each step owns its own rules.
Call order: SMTP session -> checks (produce `Submission`) -> `Stamper.stamp`
(inside the acceptance transaction, once the registry number is allocated) ->
`MessageStore.accept` commits everything -> `250 2.0.0 Accepted <registry>`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gateway.mime.coverage import ContentPart
from policies.directory import Clearance


@dataclass(frozen=True, slots=True)
class Document:
    """A signed document (attachment) of the message, decoded."""

    name: str
    content_type: str
    data: bytes
    sha256: str  # hex of `data`


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # lower-case
    local: bool  # in this gateway's directory (False: a federated peer's domain)
    employee_code: str | None = None
    peer: str | None = None  # federation peer name for remote recipients
    mailserver: str | None = None  # the agency's own IMAP server, for local recipients


@dataclass(frozen=True, slots=True)
class PolicyAuditHit:
    """An audit-mode policy rule that matched one recipient of a submission."""

    rule_id: str
    recipient: str  # lower-case


@dataclass(frozen=True, slots=True)
class Submission:
    """Everything acceptance needs about one checked message."""

    sender_address: str
    sender_code: str
    sender_agency: str  # agency code, e.g. MOH-PLN
    sender_name_en: str
    sender_name_ar: str
    agency_name_en: str
    agency_name_ar: str
    classification: Clearance
    subject: str
    raw: bytes  # the original message exactly as received (CRLF line ends)
    documents: tuple[Document, ...]
    recipients: tuple[Recipient, ...]
    received_at: dt.datetime  # aware, UTC
    client_address: str = ""
    message_id: str = ""  # the original's Message-ID header, if any
    # The original's content parts and whether the sender's signature covers each
    # (message text beside signed documents may be unsigned); the cover lists them.
    parts: tuple[ContentPart, ...] = ()
    # Audit-mode rules that matched (one per rule and recipient); each becomes one
    # "policy.audit-hit" audit event in the acceptance transaction.
    audit_hits: tuple[PolicyAuditHit, ...] = ()


@dataclass(frozen=True, slots=True)
class StampedCopy:
    """One recipient's transport envelope: its bytes are prefix + original + suffix."""

    recipient: str
    trace_code: str
    prefix: bytes
    suffix: bytes

    def assemble(self, original: bytes) -> bytes:
        return self.prefix + original + self.suffix


@dataclass(frozen=True, slots=True)
class Stamp:
    registry: str  # <AGENCY>/<YEAR>/<serial>
    issued_at: dt.datetime
    token: str  # the verification token as printed in Barid-Verify and the QR
    verify_url: str  # <http.public_url>/v/<token>
    copies: tuple[StampedCopy, ...]
    certificate: dict[str, Any] = field(default_factory=dict)  # certificate.json content


@dataclass(frozen=True, slots=True)
class Accepted:
    registry: str
    message_id: int  # the store's row id
    token: str
