"""What a peer transferred: a stamped copy for one of our employees, or a receipt.

Owns: reading the facts of one received transfer from its bytes (pure): the
`Barid-*` fields, the From address, and for a copy its `certificate.json`
(issue time, token, documents); the headers this gateway puts on top before
filing it. Must not: verify signatures (gateway.federation.dkim_check does,
before this runs), decide policy, or store anything.

Contract: `read_transfer(raw, notification=...)` parses `raw` once and returns
`TransferFacts`, or raises `NotATransfer` with an ASCII reason when a field
Barid needs is missing, repeated or malformed (the listener answers 550 5.6.0).
A notification (null reverse-path, RFC 5321 §4.5.5) must be a delivery receipt
(`Barid-Receipt: delivery`); anything else must be a copy.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.parser
import email.policy
import email.utils
import json
import re
from dataclasses import dataclass
from email.message import Message

from gateway.stamping.cover import CERTIFICATE_NAME
from gateway.stamping.envelope import header

COPY_FIELDS = (
    "barid-registry",
    "barid-employee-code",
    "barid-trace",
    "barid-verify",
    "barid-classification",
)
RECEIPT_FIELDS = ("barid-registry", "barid-receipt", "barid-recipient", "barid-verify")
_REGISTRY_RE = re.compile(r"^[A-Z0-9-]{1,70}/\d{4}/\d{1,12}$")
_TRACE_RE = re.compile(r"^[A-Za-z0-9-]{4,64}$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ADDRESS_RE = re.compile(r"^[^@\s<>]{1,64}@[A-Za-z0-9.-]{1,253}$")
_SUBJECT_PREFIX_RE = re.compile(r"^\[[^\]]*\]\s?")


class NotATransfer(ValueError):
    """The bytes are not a Barid transfer; the message is a safe ASCII reason."""


@dataclass(frozen=True)
class TransferFacts:
    kind: str  # "copy" | "receipt"
    sender: str  # the From address (the sending employee, or noreply@ of the peer)
    registry: str
    verify_url: str
    # copies
    trace_code: str = ""
    employee_code: str = ""
    classification: str = ""  # the peer's label, as written
    subject: str = ""  # without the "[registry] " prefix
    token: str = ""
    issued_at: dt.datetime | None = None
    documents: tuple[tuple[str, str, int, str], ...] = ()  # (name, content type, size, sha256)
    # receipts
    receipt_kind: str = ""
    receipt_recipient: str = ""


def _one(message: Message, name: str) -> str:
    values = message.get_all(name) or []
    if len(values) != 1:
        raise NotATransfer(f"{name} must appear exactly once (found {len(values)})")
    value = " ".join(str(values[0]).split())
    if not value or not value.isascii():
        raise NotATransfer(f"{name} is empty or not ASCII")
    return value


def _from_address(message: Message) -> str:
    values = message.get_all("From") or []
    if len(values) != 1:
        raise NotATransfer("From must appear exactly once")
    pairs = email.utils.getaddresses([str(values[0])])
    if len(pairs) != 1 or not _ADDRESS_RE.fullmatch(pairs[0][1]):
        raise NotATransfer("From must hold one plain address")
    return pairs[0][1].lower()


def _certificate(message: Message) -> dict[str, object]:
    if not message.is_multipart():
        raise NotATransfer(f"a copy is multipart with {CERTIFICATE_NAME}")
    for part in message.get_payload():
        assert isinstance(part, Message)
        if part.get_filename() == CERTIFICATE_NAME:
            payload = part.get_payload(decode=True)
            try:
                found = json.loads(payload if isinstance(payload, bytes) else b"")
            except ValueError:
                raise NotATransfer(f"{CERTIFICATE_NAME} is not JSON") from None
            if not isinstance(found, dict):
                raise NotATransfer(f"{CERTIFICATE_NAME} is not a JSON object")
            return found
    raise NotATransfer(f"a copy carries {CERTIFICATE_NAME}")


def _documents(certificate: dict[str, object]) -> tuple[tuple[str, str, int, str], ...]:
    out = []
    items = certificate.get("documents")
    if not isinstance(items, list):
        raise NotATransfer(f"{CERTIFICATE_NAME} lists no documents")
    for item in items:
        if not isinstance(item, dict):
            raise NotATransfer(f"{CERTIFICATE_NAME}: a document is not an object")
        name, ctype, size, sha = (item.get(k) for k in ("name", "content_type", "size", "sha256"))
        if not (isinstance(name, str) and isinstance(ctype, str) and isinstance(sha, str)):
            raise NotATransfer(f"{CERTIFICATE_NAME}: a document lacks name, type or sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise NotATransfer(f"{CERTIFICATE_NAME}: a document's size is not a number")
        out.append((name, ctype, size, sha))
    return tuple(out)


def _issued_at(certificate: dict[str, object]) -> dt.datetime:
    text = certificate.get("issued_at")
    try:
        assert isinstance(text, str)
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (AssertionError, ValueError):
        raise NotATransfer(f"{CERTIFICATE_NAME}: issued_at is not an ISO 8601 UTC time") from None


def read_transfer(raw: bytes, *, notification: bool) -> TransferFacts:
    """The facts of one transfer (see the module contract)."""
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    sender = _from_address(message)
    registry = _one(message, "Barid-Registry")
    if not _REGISTRY_RE.fullmatch(registry):
        raise NotATransfer("Barid-Registry is not a registry number")
    verify_url = _one(message, "Barid-Verify")
    if notification:
        kind = _one(message, "Barid-Receipt").lower()
        if kind != "delivery":
            raise NotATransfer("a notification must be a delivery receipt")
        recipient = _one(message, "Barid-Recipient").lower()
        if not _ADDRESS_RE.fullmatch(recipient):
            raise NotATransfer("Barid-Recipient is not an address")
        return TransferFacts(
            kind="receipt",
            sender=sender,
            registry=registry,
            verify_url=verify_url,
            receipt_kind=kind,
            receipt_recipient=recipient,
        )
    if message.get_all("Barid-Receipt"):
        raise NotATransfer("a receipt must come with a null reverse-path")
    trace = _one(message, "Barid-Trace")
    if not _TRACE_RE.fullmatch(trace):
        raise NotATransfer("Barid-Trace is not a trace code")
    label = _one(message, "Barid-Classification")
    if not _LABEL_RE.fullmatch(label):
        raise NotATransfer("Barid-Classification is not a label")
    certificate = _certificate(message)
    token = certificate.get("token")
    if not isinstance(token, str) or not token or certificate.get("registry") != registry:
        raise NotATransfer(f"{CERTIFICATE_NAME} does not match Barid-Registry")
    subject_values = message.get_all("Subject") or [""]
    subject = str(email.header.make_header(email.header.decode_header(str(subject_values[0]))))
    return TransferFacts(
        kind="copy",
        sender=sender,
        registry=registry,
        verify_url=verify_url,
        trace_code=trace,
        employee_code=_one(message, "Barid-Employee-Code"),
        classification=label,
        subject=_SUBJECT_PREFIX_RE.sub("", " ".join(subject.split()), count=1),
        token=token,
        issued_at=_issued_at(certificate),
        documents=_documents(certificate),
    )


def trace_headers(
    *,
    hostname: str,
    peer: str,
    client: str,
    dkim_domain: str,
    local_classification: str | None,
    received_at: dt.datetime,
) -> bytes:
    """Fields put on top of a received transfer before it is filed (RFC 5321 §4.4
    Received, RFC 8601 Authentication-Results). New names only: the peer over-signs
    the Barid-* fields, so adding one of those would break its DKIM signature."""
    when = email.utils.format_datetime(received_at)
    fields = [
        header("Received", f"from {peer} ([{client}]) by {hostname} with ESMTPS; {when}"),
        header("Authentication-Results", f"{hostname}; dkim=pass header.d={dkim_domain}"),
        header("Barid-Peer", peer),
    ]
    if local_classification is not None:
        fields.append(header("Barid-Local-Classification", local_classification))
    return b"".join(fields)
