"""Receipts for the sender's Receipts folder: acceptance, delivery and non-delivery.

Owns: the wording (Arabic first, then English), the checks on the facts and the
MIME bytes of one receipt (DESIGN.md §6), its deterministic Message-ID and
boundaries, and its DKIM signature through `DkimSigner`. Must not: read the clock,
the database or the network, or deliver anything; the caller stores the bytes.

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
import dataclasses
import datetime as dt
import email.utils
import enum
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.stamp.cover import CLASSIFICATION_AR
from gateway.stamp.dkim import DkimSigner
from gateway.stamp.envelope import (
    CRLF,
    MAX_LINE,
    base64_lines,
    close_delimiter,
    delimiter,
    header,
    part_headers,
    subject_header,
)
from gateway.stamp.registry import RegistryNumber
from gateway.stamp.stamper import utc_text
from policies.directory import Clearance


class ReceiptKind(enum.StrEnum):
    ACCEPTANCE = "acceptance"
    DELIVERY = "delivery"
    NON_DELIVERY = "non-delivery"


# Why a copy could not be delivered: code -> (English, Arabic). Each text completes
# "could not be delivered to X: ..." and stands alone after "Reason:".
NON_DELIVERY_REASONS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "unknown-recipient": (
            "the recipient address does not exist",
            "عنوان المُرسَل إليه غير موجود",
        ),
        "recipient-suspended": (
            "the recipient's mailbox is suspended",
            "صندوق بريد المُرسَل إليه موقوف",
        ),
        "recipient-refused": (
            "the recipient's mail gateway refused the message",
            "رفضت بوابة بريد المُرسَل إليه الرسالة",
        ),
        "retry-window-expired": (
            "delivery kept failing until the retry period ended",
            "استمر تعذّر التسليم حتى انتهت مهلة إعادة المحاولة",
        ),
        "policy": (
            "the routing policy refused delivery at delivery time",
            "رفضت سياسة التوجيه التسليم عند محاولة التسليم",
        ),
        "withdrawn": (
            "an operator withdrew the message from the delivery queue",
            "سحب أحد المشغّلين الرسالة من طابور التسليم",
        ),
    }
)

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

_FORMAT = "barid-receipt/1"
_JSON_NAME = "receipt.json"
_MAX_DETAIL_CHARS = 300
_PER_RECIPIENT = (ReceiptKind.DELIVERY, ReceiptKind.NON_DELIVERY)
# (Arabic, English) titles; the Subject is "<Arabic> / <English>: <registry> ...".
_TITLES = {
    ReceiptKind.ACCEPTANCE: ("إشعار قبول", "Acceptance receipt"),
    ReceiptKind.DELIVERY: ("إشعار تسليم", "Delivery receipt"),
    ReceiptKind.NON_DELIVERY: ("إشعار عدم تسليم", "Non-delivery receipt"),
}
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
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
_SMTP_REPLY_RE = re.compile(r"^[2-5][0-9]{2}(?:[ -]|$)")
_LINE_BREAKS = ("\r", "\n", "\x00")
_PREAMBLE = b"This is a multi-part message in MIME format (RFC 2045)."
_RULE = "-" * 60


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
    recipients: tuple[str, ...]  # ACCEPTANCE: every recipient; otherwise exactly one
    documents: tuple[tuple[str, str], ...] = ()  # (file name, sha256 hex)
    reason: str | None = None  # NON_DELIVERY only, a key of NON_DELIVERY_REASONS
    detail: str | None = None  # NON_DELIVERY only, e.g. a remote "550 5.1.1 ..." reply
    # The gateway stating the receipt, when not the sender's own: From "Barid
    # <noreply@{issuer_domain}>", DKIM d= this domain. None: sender_domain.
    issuer_domain: str | None = None
    remote_mta: str | None = None  # NON_DELIVERY only, host name of the refusing server
    # NON_DELIVERY only, RFC 3463 "5.1.1"; None: from the detail's reply, else the reason.
    status: str | None = None

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


def _matching(what: str, value: object, pattern: re.Pattern[str], expected: str) -> str:
    text = _one_line(what, value)
    if not pattern.fullmatch(text):
        raise ValueError(f"{what} must be {expected}, got {text!r}")
    return text


def _address(what: str, value: object) -> str:
    text = _matching(what, value, _ADDRESS_RE, "a plain ASCII mail address (local@domain)")
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
    text = _matching(what, value, _HOSTNAME_RE, "a host name such as mx.mof.gov.xx")
    if not all(_DNS_LABEL_RE.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"{what} must be a host name such as mx.mof.gov.xx, got {text!r}")
    return text


def _status(facts: ReceiptFacts, reason: str, detail: str | None) -> str:
    """The RFC 3463 status: the caller's, else the detail's SMTP reply's, else the reason's."""
    if facts.status is not None:
        status = _matching("status", facts.status, _STATUS_RE, "an RFC 3463 code such as 5.1.1")
        if status.startswith("2"):
            raise ValueError(f"status {status!r} means success, not a non-delivery")
        return status
    found = _REPLY_STATUS_RE.search(detail) if detail is not None else None
    if found is not None:
        return found.group(2)
    return NON_DELIVERY_STATUS[reason]


def _checked(facts: ReceiptFacts) -> ReceiptFacts:
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
    token = _matching("token", facts.token, _TOKEN_RE, "ASCII letters, digits, - or _")
    verify_url = _matching("verify_url", facts.verify_url, _URL_RE, "an http(s) URL")
    if not verify_url.endswith(f"/v/{token}"):
        raise ValueError(f"verify_url {verify_url!r} does not end with /v/<token>")
    recipients = tuple(facts.recipients)
    if kind is ReceiptKind.ACCEPTANCE and not recipients:
        raise ValueError("an acceptance receipt needs at least one recipient")
    if kind in _PER_RECIPIENT and len(recipients) != 1:
        raise ValueError(f"a {kind} receipt is about exactly one recipient, got {len(recipients)}")
    for address in recipients:
        _address("recipient", address)
    if len(set(recipients)) != len(recipients):
        raise ValueError("a recipient is listed twice")
    documents: list[tuple[str, str]] = []
    for doc in facts.documents:
        if len(doc) != 2:
            raise ValueError(f"a document must be (file name, sha256), got {doc!r}")
        name = _one_line("document name", doc[0])
        if not name.strip():
            raise ValueError("a document name is empty")
        sha256 = _matching(f"SHA-256 of {name!r}", doc[1], _SHA256_RE, "64 lower-case hex digits")
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
        documents=tuple(documents),
        detail=detail,
        issuer_domain=issuer_domain,
        remote_mta=remote_mta,
        status=status,
    )


# ---------------------------------------------------------------- wording


@dataclass(frozen=True, slots=True)
class _Run:
    """A piece of a sentence: our own words, a left-to-right value, a user's text, a link."""

    text: str
    style: str = "words"  # "words" | "ltr" | "user" | "link"


@dataclass(frozen=True, slots=True)
class _Section:
    """One language's half of the receipt, rendered as text and as HTML alike."""

    lang: str
    title: str
    statement: tuple[tuple[_Run, ...], ...]  # paragraphs
    rows: tuple[tuple[str, tuple[_Run, ...]], ...]
    lists: tuple[tuple[str, tuple[tuple[_Run, str | None], ...], str], ...]  # label, items, empty
    footer: tuple[str, ...]


def _words(text: str) -> _Run:
    return _Run(text)


def _ltr(text: str) -> _Run:
    return _Run(text, "ltr")


def _user(text: str) -> _Run:
    return _Run(text, "user")


def _link(url: str) -> _Run:
    return _Run(url, "link")


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _classification_ar(label: str) -> str:
    try:
        clearance = Clearance.parse(label)
    except ValueError:
        return label
    return f"{CLASSIFICATION_AR[clearance]} ({label})"


def _p(*runs: _Run) -> tuple[_Run, ...]:
    """One paragraph."""
    return runs


_Rows = list[tuple[str, tuple[_Run, ...]]]
_Lists = list[tuple[str, tuple[tuple[_Run, str | None], ...], str]]


def _arabic(f: ReceiptFacts) -> _Section:
    registry, recipient = _ltr(f.registry), _ltr(f.recipients[0])
    accepted, event = _ltr(_when(f.accepted_at)), _ltr(_when(f.event_at))
    reason = NON_DELIVERY_REASONS[f.reason][1] if f.reason is not None else ""
    statement: list[tuple[_Run, ...]]
    if f.kind is ReceiptKind.ACCEPTANCE:
        statement = [
            _p(
                _words("قُبِلت رسالتك وسُجِّلت برقم القيد "),
                registry,
                _words(" بتاريخ "),
                accepted,
                _words("."),
            )
        ]
    elif f.kind is ReceiptKind.DELIVERY:
        statement = [
            _p(
                _words("سُلِّمت رسالتك ذات رقم القيد "),
                registry,
                _words(" إلى صندوق بريد "),
                recipient,
                _words(" بتاريخ "),
                event,
                _words("."),
            )
        ]
    else:
        statement = [
            _p(
                _words("تعذّر تسليم رسالتك ذات رقم القيد "),
                registry,
                _words(" إلى "),
                recipient,
                _words(f": {reason}."),
            ),
            _p(_words("لا يؤثر ذلك في نسخ بقية المُرسَل إليهم، ويبقى رقم القيد صالحًا.")),
        ]
    rows: _Rows = [
        ("رقم القيد", _p(registry)),
        ("التصنيف", _p(_user(_classification_ar(f.classification)))),
        ("الموضوع", _p(_user(f.subject)) if f.subject else _p(_words("(بلا موضوع)"))),
    ]
    if f.kind in _PER_RECIPIENT:
        rows.append(("المُرسَل إليه", _p(recipient)))
    rows.append(("تاريخ القبول", _p(accepted)))
    if f.kind is ReceiptKind.DELIVERY:
        rows.append(("تاريخ التسليم", _p(event)))
    elif f.kind is ReceiptKind.NON_DELIVERY:
        rows.append(("تاريخ تعذّر التسليم", _p(event)))
        rows.append(("السبب", _p(_words(reason))))
        if f.detail:
            rows.append(("التفاصيل", _p(_ltr(f.detail))))
    rows.append(("رابط التحقّق", _p(_link(f.verify_url))))
    lists: _Lists = []
    if f.kind is ReceiptKind.ACCEPTANCE:
        lists.append(("المُرسَل إليهم", tuple((_ltr(a), None) for a in f.recipients), "-"))
    lists.append(("الوثائق", tuple((_user(n), h) for n, h in f.documents), "(لا توجد وثائق)"))
    return _Section(
        lang="ar",
        title=f"{_TITLES[f.kind][0]} — بريد (Barid)",
        statement=tuple(statement),
        rows=tuple(rows),
        lists=tuple(lists),
        footer=(
            "هذا إشعار آلي موقَّع من بريد؛ لا تردّ عليه.",
            f"الوقائع نفسها مرفقة بصيغة قابلة للقراءة آليًا ({_JSON_NAME}).",
        ),
    )


def _english(f: ReceiptFacts) -> _Section:
    registry, recipient = _ltr(f.registry), _ltr(f.recipients[0])
    accepted, event = _ltr(_when(f.accepted_at)), _ltr(_when(f.event_at))
    reason = NON_DELIVERY_REASONS[f.reason][0] if f.reason is not None else ""
    statement: list[tuple[_Run, ...]]
    if f.kind is ReceiptKind.ACCEPTANCE:
        statement = [
            _p(
                _words("Your message was accepted and registered under registry number "),
                registry,
                _words(" at "),
                accepted,
                _words("."),
            )
        ]
    elif f.kind is ReceiptKind.DELIVERY:
        statement = [
            _p(
                _words("Your message "),
                registry,
                _words(" was delivered to the mailbox of "),
                recipient,
                _words(" at "),
                event,
                _words("."),
            )
        ]
    else:
        statement = [
            _p(
                _words("Your message "),
                registry,
                _words(" could not be delivered to "),
                recipient,
                _words(f": {reason}."),
            ),
            _p(
                _words(
                    "Copies to the other recipients are not affected;"
                    " the registry number stays valid."
                )
            ),
        ]
    rows: _Rows = [
        ("Registry number", _p(registry)),
        ("Classification", _p(_user(f.classification))),
        ("Subject", _p(_user(f.subject)) if f.subject else _p(_words("(no subject)"))),
    ]
    if f.kind in _PER_RECIPIENT:
        rows.append(("Recipient", _p(recipient)))
    rows.append(("Accepted", _p(accepted)))
    if f.kind is ReceiptKind.DELIVERY:
        rows.append(("Delivered", _p(event)))
    elif f.kind is ReceiptKind.NON_DELIVERY:
        rows.append(("Failed", _p(event)))
        rows.append(("Reason", _p(_words(reason))))
        if f.detail:
            rows.append(("Detail", _p(_ltr(f.detail))))
    rows.append(("Verify", _p(_link(f.verify_url))))
    lists: _Lists = []
    if f.kind is ReceiptKind.ACCEPTANCE:
        lists.append(("Recipients", tuple((_ltr(a), None) for a in f.recipients), "-"))
    lists.append(("Documents", tuple((_user(n), h) for n, h in f.documents), "(no documents)"))
    return _Section(
        lang="en",
        title=f"{_TITLES[f.kind][1]} — Barid",
        statement=tuple(statement),
        rows=tuple(rows),
        lists=tuple(lists),
        footer=(
            "This is an automatic receipt, signed by Barid; do not reply to it.",
            f"The same facts are attached in machine-readable form ({_JSON_NAME}).",
        ),
    )


def _plain(runs: tuple[_Run, ...]) -> str:
    return "".join(run.text for run in runs)


def _section_text(s: _Section) -> list[str]:
    lines = [s.title, ""]
    lines += [_plain(paragraph) for paragraph in s.statement]
    lines.append("")
    lines += [f"{label}: {_plain(value)}" for label, value in s.rows]
    for label, items, empty in s.lists:
        lines.append(f"{label}:" if items else f"{label}: {empty}")
        for first, sha256 in items:
            lines.append(f"  - {first.text}")
            if sha256 is not None:
                lines.append(f"    SHA-256: {sha256}")
    return [*lines, "", *s.footer]


def _receipt_text(facts: ReceiptFacts) -> str:
    """The text/plain body: Arabic section, a rule, the English section (CRLF ends)."""
    lines = [*_section_text(_arabic(facts)), "", _RULE, "", *_section_text(_english(facts))]
    return "\r\n".join(lines) + "\r\n"


def _html_run(run: _Run) -> str:
    e = html.escape(run.text)
    if run.style == "ltr":
        return f'<bdi dir="ltr">{e}</bdi>'
    if run.style == "user":  # any script: let the reader's text choose its direction
        return f"<bdi>{e}</bdi>"
    if run.style == "link":
        return f'<bdi dir="ltr"><a href="{e}">{e}</a></bdi>'
    return e


def _html_runs(runs: tuple[_Run, ...]) -> str:
    return "".join(map(_html_run, runs))


def _section_html(s: _Section) -> str:
    direction = "rtl" if s.lang == "ar" else "ltr"
    parts = [f'<div dir="{direction}" lang="{s.lang}">', f"<h2>{html.escape(s.title)}</h2>"]
    parts += [f"<p>{_html_runs(paragraph)}</p>" for paragraph in s.statement]
    parts.append("<table>")
    parts += [
        f"<tr><th>{html.escape(label)}</th><td>{_html_runs(value)}</td></tr>"
        for label, value in s.rows
    ]
    parts.append("</table>")
    for label, items, empty in s.lists:
        if not items:
            parts.append(f"<p>{html.escape(label)}: {html.escape(empty)}</p>")
            continue
        entries = "".join(
            f"<li>{_html_run(first)}"
            + (f"<br><code>SHA-256: {html.escape(sha256)}</code>" if sha256 is not None else "")
            + "</li>"
            for first, sha256 in items
        )
        parts.append(f"<p>{html.escape(label)}:</p><ul>{entries}</ul>")
    parts += [f"<p>{html.escape(line)}</p>" for line in s.footer]
    parts.append("</div>")
    return "".join(parts)


def _receipt_html(facts: ReceiptFacts) -> str:
    """The text/html body: an Arabic `dir="rtl"` section, then an English `dir="ltr"` one."""
    return (
        '<!DOCTYPE html>\r\n<html lang="ar" dir="rtl"><head><meta charset="utf-8">'
        f"<title>{html.escape(facts.registry)}</title></head><body>\r\n"
        f"{_section_html(_arabic(facts))}\r\n<hr>\r\n{_section_html(_english(facts))}\r\n"
        "</body></html>\r\n"
    )


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
    if facts.detail is not None and _SMTP_REPLY_RE.match(facts.detail):
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
    host = _matching("hostname", hostname, _HOSTNAME_RE, "a host name such as mail.moh.gov.xx")
    kind = ReceiptKind(facts.kind)
    identity = json.dumps([str(kind), facts.registry, sorted(facts.recipients)])
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
    title_ar, title_en = _TITLES[f.kind]
    text = f"{title_ar} / {title_en}: {f.registry}"
    if f.kind in _PER_RECIPIENT:
        text += f" ({f.recipients[0]})"
    if f.subject.strip():
        text += f" — {f.subject}"
    return text


def _field(name: str, value: str) -> bytes:
    line = header(name, value)
    if len(line) - len(CRLF) > MAX_LINE:
        raise ValueError(f"{name} is too long for one header line ({len(line)} octets)")
    return line


def build_receipt(facts: ReceiptFacts, *, hostname: str, signer: DkimSigner | None) -> bytes:
    """The receipt's bytes, DKIM-signed by `signer` unless None; the signer's domain
    must be `facts.issuer_domain` when set, else `facts.sender_domain`.

    Raises ValueError when the facts are inconsistent or cannot be written safely.
    """
    f = _checked(facts)
    domain = f.signing_domain
    if signer is not None and signer.domain != domain.lower().removesuffix("."):
        raise ValueError(f"the DKIM signer is for {signer.domain!r}, the receipt for {domain!r}")
    message_id = receipt_message_id(f, hostname)
    report = f.kind is ReceiptKind.NON_DELIVERY
    text = _receipt_text(f).encode("utf-8")
    page = _receipt_html(f).encode("utf-8")
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
    fields = [
        _field("From", f"Barid <noreply@{domain}>"),
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
    if f.kind in _PER_RECIPIENT:
        fields.append(_field("Barid-Recipient", f.recipients[0]))
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
                ("Content-Type", f'application/json; charset="utf-8"; name="{_JSON_NAME}"'),
                ("Content-Disposition", f'attachment; filename="{_JSON_NAME}"'),
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
