"""The facts a receipt states, and the checks that they fit together.

Owns: `ReceiptFacts`, the receipt kinds, the non-delivery reasons and their RFC 3463
statuses, and `checked`: every value checked (one line, addresses, domains, times
in whole UTC seconds, the remote detail cleaned) before anything is written. Must
not: word, lay out or encode anything (receipts.content, the templates and
receipts.build do).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.presentation import say
from gateway.stamping.registry import RegistryNumber


class ReceiptKind(enum.StrEnum):
    ACCEPTANCE = "acceptance"
    DELIVERY = "delivery"
    NON_DELIVERY = "non-delivery"
    SUMMARY = "summary"  # one per message with many copies: delivered, failed, pending


# Why a copy could not be delivered: code -> (English, Arabic). Each text completes
# "could not be delivered to X: ..." and stands alone after "Reason:".

# The RFC 3463 status a non-delivery states when neither the caller nor the remote
# reply gives one: reason code -> enhanced status code. Every reason has one.
NON_DELIVERY_STATUS: Mapping[str, str] = MappingProxyType(
    {
        "unknown-recipient": "5.1.1",  # bad destination mailbox address
        "recipient-suspended": "5.2.1",  # mailbox disabled, not accepting messages
        "recipient-refused": "5.0.0",  # other or undefined status
        "retry-window-expired": "4.4.7",  # delivery time expired
        "policy": "5.7.1",  # delivery not authorized, message refused
        "withdrawn": "5.3.0",  # other or undefined mail system status
    }
)

# Why a copy could not be delivered: code -> (English, Arabic), from the catalogue
# (`reason.<code>`). Each completes "could not be delivered to X: ..." and stands
# alone after "Reason:".
NON_DELIVERY_REASONS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        code: (say("en", f"reason.{code}"), say("ar", f"reason.{code}"))
        for code in NON_DELIVERY_STATUS
    }
)
_MAX_DETAIL_CHARS = 300
PER_RECIPIENT = (ReceiptKind.DELIVERY, ReceiptKind.NON_DELIVERY)
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A dot-atom address (RFC 5322 §3.4.1): nothing that could change the To field's structure.
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,255}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_URL_RE = re.compile(r"^https?://[\x21-\x7e]+$")
# RFC 3463 §2: class "." subject "." detail; a non-delivery is class 4 or 5 (2 is success).
_STATUS_RE = re.compile(r"^[245]\.[0-9]{1,3}\.[0-9]{1,3}$")
# An SMTP reply with an enhanced code (RFC 2034): "550 5.1.1 ..." or "550-5.1.1 ...",
# the code's class the same as the reply's first digit.
_REPLY_STATUS_RE = re.compile(r"(?:^|\s)([45])[0-9]{2}[ -](\1\.[0-9]{1,3}\.[0-9]{1,3})(?=\s|$)")
SMTP_REPLY_RE = re.compile(r"^[2-5][0-9]{2}(?:[ -]|$)")
_LINE_BREAKS = ("\r", "\n", "\x00")


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """Everything one receipt states; `build_receipt` checks that the facts fit together."""

    kind: ReceiptKind
    registry: str  # "MOH/2026/000042"
    token: str  # the message's verification token
    verify_url: str  # "<public_url>/v/<token>"
    sender_address: str  # the receipt goes To this address
    sender_domain: str  # the sender's mail domain; also From and DKIM d= unless issuer_domain
    subject: str  # the original message's subject (any script, may be empty)
    classification: str  # label, e.g. "confidential"
    accepted_at: dt.datetime  # aware
    event_at: dt.datetime  # when accepted / delivered / failed, aware
    # ACCEPTANCE: every recipient; SUMMARY: those delivered to; otherwise exactly one
    recipients: tuple[str, ...]
    documents: tuple[tuple[str, str], ...] = ()  # (file name, sha256 hex)
    reason: str | None = None  # NON_DELIVERY only, a key of NON_DELIVERY_REASONS
    detail: str | None = None  # NON_DELIVERY only, e.g. a remote "550 5.1.1 ..." reply
    # The gateway stating the receipt, when not the sender's own: From "Barid
    # <noreply@{issuer_domain}>", DKIM d= this domain. None: sender_domain.
    issuer_domain: str | None = None
    remote_mta: str | None = None  # NON_DELIVERY only, host name of the refusing server
    # NON_DELIVERY only, RFC 3463 "5.1.1"; None: from the detail's reply, else the reason.
    status: str | None = None
    failed: tuple[str, ...] = ()  # SUMMARY only: the copies that could not be delivered
    pending: tuple[str, ...] = ()  # SUMMARY only: the copies not settled at its deadline
    # SUMMARY only: per copy (recipient, "delivered" | "failed" | "pending", when or "",
    # the signed evidence of a delivery or ""), as receipt.json lists them.
    copies: tuple[tuple[str, str, str, str], ...] = ()

    @property
    def signing_domain(self) -> str:
        """The domain in From and in DKIM d=: the issuer's, else the sender's."""
        return self.issuer_domain if self.issuer_domain is not None else self.sender_domain


# ---------------------------------------------------------------- checks


def _one_line(what: str, value: object) -> str:
    """`value` as text on one line: no CR, LF or NUL, and encodable as UTF-8."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if any(ch in value for ch in _LINE_BREAKS):
        raise ValueError(f"{what} contains a line break or NUL: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text: {value!r}") from None
    return value


def matching(what: str, value: object, pattern: re.Pattern[str], expected: str) -> str:
    text = _one_line(what, value)
    if not pattern.fullmatch(text):
        raise ValueError(f"{what} must be {expected}, got {text!r}")
    return text


def _address(what: str, value: object) -> str:
    text = matching(what, value, _ADDRESS_RE, "a plain ASCII mail address (local@domain)")
    _domain(what, text.rpartition("@")[2])
    return text


def _domain(what: str, value: object) -> str:
    text = _one_line(what, value)
    labels = text.removesuffix(".").split(".")
    if len(labels) < 2 or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(f"{what} must be a mail domain such as moh.gov.xx, got {text!r}")
    return text


def _moment(what: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got the naive {value.isoformat()}")
    return value.astimezone(dt.UTC).replace(microsecond=0)


def _detail(value: object) -> str | None:
    """The remote detail as one ASCII line of at most 300 characters.

    A multi-line SMTP reply becomes one line (breaks and tabs turn into spaces);
    any other character outside printable ASCII becomes "?". A receipt about a
    failure must still be written when the remote reply is odd, so this cleans
    rather than refuses.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"detail must be a string or None, got {type(value).__name__}")
    flat = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\t", " ")
    clean = "".join(ch if " " <= ch <= "~" else "?" for ch in flat).strip()
    return clean[:_MAX_DETAIL_CHARS].rstrip() or None


def _host(what: str, value: object) -> str:
    text = matching(what, value, HOSTNAME_RE, "a host name such as mx.mof.gov.xx")
    if not all(_DNS_LABEL_RE.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"{what} must be a host name such as mx.mof.gov.xx, got {text!r}")
    return text


def _status(facts: ReceiptFacts, reason: str, detail: str | None) -> str:
    """The RFC 3463 status: the caller's, else the detail's SMTP reply's, else the reason's."""
    if facts.status is not None:
        status = matching("status", facts.status, _STATUS_RE, "an RFC 3463 code such as 5.1.1")
        if status.startswith("2"):
            raise ValueError(f"status {status!r} means success, not a non-delivery")
        return status
    found = _REPLY_STATUS_RE.search(detail) if detail is not None else None
    if found is not None:
        return found.group(2)
    return NON_DELIVERY_STATUS[reason]


def _recipients(
    kind: ReceiptKind, facts: ReceiptFacts
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The recipients, failed and pending copies, checked for the kind."""
    recipients = tuple(facts.recipients)
    if kind is ReceiptKind.ACCEPTANCE and not recipients:
        raise ValueError("an acceptance receipt needs at least one recipient")
    if kind in PER_RECIPIENT and len(recipients) != 1:
        raise ValueError(f"a {kind} receipt is about exactly one recipient, got {len(recipients)}")
    failed, pending = tuple(facts.failed), tuple(facts.pending)
    if kind is not ReceiptKind.SUMMARY and (failed or pending or facts.copies):
        raise ValueError(f"failed and pending copies belong to summaries, not to {kind}")
    for row in facts.copies:
        if len(row) != 4:
            raise ValueError(f"a copy's outcome must be four values, got {row!r}")
        for value in row:
            _one_line("copy outcome", value)
    if kind is ReceiptKind.SUMMARY and not (recipients or failed or pending):
        raise ValueError("a summary needs at least one copy")
    everyone = (*recipients, *failed, *pending)
    for address in everyone:
        _address("recipient", address)
    if len(set(everyone)) != len(everyone):
        raise ValueError("a recipient is listed twice")
    return recipients, failed, pending


def checked(facts: ReceiptFacts) -> ReceiptFacts:
    """`facts` with every value checked, times in whole UTC seconds, the detail cleaned."""
    try:
        kind = ReceiptKind(facts.kind)
    except ValueError:
        allowed = ", ".join(k.value for k in ReceiptKind)
        raise ValueError(
            f"unknown receipt kind {facts.kind!r} (expected one of: {allowed})"
        ) from None
    registry = _one_line("registry", facts.registry)
    if str(RegistryNumber.parse(registry)) != registry:
        raise ValueError(f"registry {registry!r} is not in canonical form (AGENCY/YEAR/NNNNNN)")
    token = matching("token", facts.token, _TOKEN_RE, "ASCII letters, digits, - or _")
    verify_url = matching("verify_url", facts.verify_url, _URL_RE, "an http(s) URL")
    if not verify_url.endswith(f"/v/{token}"):
        raise ValueError(f"verify_url {verify_url!r} does not end with /v/<token>")
    recipients, failed, pending = _recipients(kind, facts)
    documents: list[tuple[str, str]] = []
    for doc in facts.documents:
        if len(doc) != 2:
            raise ValueError(f"a document must be (file name, sha256), got {doc!r}")
        name = _one_line("document name", doc[0])
        if not name.strip():
            raise ValueError("a document name is empty")
        sha256 = matching(f"SHA-256 of {name!r}", doc[1], _SHA256_RE, "64 lower-case hex digits")
        documents.append((name, sha256))
    reason = facts.reason
    detail = _detail(facts.detail)
    status = remote_mta = None
    if kind is ReceiptKind.NON_DELIVERY:
        if reason is None:
            raise ValueError("a non-delivery receipt needs a reason")
        if reason not in NON_DELIVERY_REASONS:
            allowed = ", ".join(NON_DELIVERY_REASONS)
            raise ValueError(f"unknown non-delivery reason {reason!r} (expected one of: {allowed})")
        status = _status(facts, reason, detail)
        if facts.remote_mta is not None:
            remote_mta = _host("remote_mta", facts.remote_mta)
    elif any(v is not None for v in (reason, facts.detail, facts.status, facts.remote_mta)):
        raise ValueError(
            f"reason, detail, status and remote_mta belong to non-delivery receipts, not to {kind}"
        )
    issuer_domain = facts.issuer_domain
    if issuer_domain is not None:
        issuer_domain = _domain("issuer_domain", issuer_domain)
    classification = _one_line("classification", facts.classification)
    if not classification.strip():
        raise ValueError("classification is empty")
    return dataclasses.replace(
        facts,
        kind=kind,
        token=token,
        verify_url=verify_url,
        sender_address=_address("sender_address", facts.sender_address),
        sender_domain=_domain("sender_domain", facts.sender_domain),
        subject=_one_line("subject", facts.subject),
        accepted_at=_moment("accepted_at", facts.accepted_at),
        event_at=_moment("event_at", facts.event_at),
        recipients=recipients,
        failed=failed,
        pending=pending,
        documents=tuple(documents),
        detail=detail,
        issuer_domain=issuer_domain,
        remote_mta=remote_mta,
        status=status,
    )
