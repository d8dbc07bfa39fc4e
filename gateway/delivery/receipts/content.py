"""What a receipt says, in no particular language, and its rendered text and HTML.

Owns: the order of a receipt's statement, rows, lists and footer for each kind, as
catalogue keys and values (`ReceiptContent`), and rendering it with the templates
`receipt.txt` and `receipt.html` (Arabic first, then English). Must not: check the
facts (receipts.facts does, before this runs) or encode MIME (receipts.build).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.delivery.receipts.facts import PER_RECIPIENT, ReceiptFacts, ReceiptKind
from gateway.presentation import Value, render_mail_html, render_mail_text

JSON_NAME = "receipt.json"
SUMMARY_LISTED = 100  # a summary names at most this many delivered recipients


@dataclass(frozen=True, slots=True)
class Sentence:
    """A catalogue key and the values that fill its placeholders."""

    key: str
    values: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Listing:
    """A labelled list (recipients, documents); `empty` is said when it has no items."""

    label: str
    items: tuple[tuple[Value, str | None], ...]  # (what, its SHA-256 or None)
    empty: str


@dataclass(frozen=True, slots=True)
class ReceiptContent:
    """One receipt's content: keys into the catalogue and the values they show."""

    kind: ReceiptKind
    registry: str
    statement: tuple[Sentence, ...]
    rows: tuple[tuple[str, Value], ...]  # (label key, value)
    lists: tuple[Listing, ...]
    footer: tuple[Sentence, ...]

    @property
    def title_key(self) -> str:
        return f"receipt.{self.kind}.title"


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _statement(f: ReceiptFacts) -> tuple[Sentence, ...]:
    registry = Value(f.registry)
    if f.kind is ReceiptKind.ACCEPTANCE:
        accepted = Value(_when(f.accepted_at))
        return (Sentence("receipt.accepted", {"registry": registry, "accepted": accepted}),)
    if f.kind is ReceiptKind.SUMMARY:
        counts = {
            "registry": registry,
            "total": Value(str(len(f.recipients) + len(f.failed) + len(f.pending))),
            "delivered": Value(str(len(f.recipients))),
            "failed": Value(str(len(f.failed))),
            "pending": Value(str(len(f.pending))),
        }
        return (Sentence("receipt.summary", counts),)
    recipient, event = Value(f.recipients[0]), Value(_when(f.event_at))
    if f.kind is ReceiptKind.DELIVERY:
        values = {"registry": registry, "recipient": recipient, "event": event}
        return (Sentence("receipt.delivered", values),)
    reason = Value(f"reason.{f.reason}", "key")
    values = {"registry": registry, "recipient": recipient, "reason": reason}
    return (Sentence("receipt.not_delivered", values), Sentence("receipt.others_unaffected"))


def _rows(f: ReceiptFacts) -> tuple[tuple[str, Value], ...]:
    subject = Value(f.subject, "user") if f.subject else Value("receipt.no_subject", "key")
    rows = [
        ("receipt.registry", Value(f.registry)),
        ("receipt.classification", Value(f.classification, "classification")),
        ("receipt.subject", subject),
    ]
    if f.kind in PER_RECIPIENT:
        rows.append(("receipt.recipient", Value(f.recipients[0])))
    rows.append(("receipt.accepted_at", Value(_when(f.accepted_at))))
    if f.kind is ReceiptKind.DELIVERY:
        rows.append(("receipt.delivered_at", Value(_when(f.event_at))))
    elif f.kind is ReceiptKind.SUMMARY:
        rows.append(("receipt.summarised_at", Value(_when(f.event_at))))
    elif f.kind is ReceiptKind.NON_DELIVERY:
        rows.append(("receipt.failed_at", Value(_when(f.event_at))))
        rows.append(("receipt.reason", Value(f"reason.{f.reason}", "key")))
        if f.detail:
            rows.append(("receipt.detail", Value(f.detail)))
    rows.append(("receipt.verify", Value(f.verify_url, "link")))
    return tuple(rows)


def receipt_content(f: ReceiptFacts) -> ReceiptContent:
    """What the receipt about checked facts `f` says (receipts.facts.checked)."""
    lists = []
    if f.kind is ReceiptKind.ACCEPTANCE:
        recipients = tuple((Value(a), None) for a in f.recipients)
        lists.append(Listing("receipt.recipients", recipients, "receipt.no_recipients"))
    footer = [Sentence("receipt.automatic")]
    if f.kind is ReceiptKind.SUMMARY:
        # A circular to hundreds: the delivered are counted and listed in receipt.json
        # only; those failed or pending (what needs attention) are always named.
        delivered = f.recipients if len(f.recipients) <= SUMMARY_LISTED else ()
        empty = "receipt.no_recipients" if delivered == f.recipients else "receipt.summary.in_json"
        items = tuple((Value(a), None) for a in delivered)
        lists.append(Listing("receipt.summary.delivered", items, empty))
        for label, addresses in (
            ("receipt.summary.failed", f.failed),
            ("receipt.summary.pending", f.pending),
        ):
            items = tuple((Value(a), None) for a in addresses)
            lists.append(Listing(label, items, "receipt.no_recipients"))
        footer.append(Sentence("receipt.summary.evidence", {"registry": Value(f.registry)}))
    footer.append(Sentence("receipt.attached_facts", {"file": Value(JSON_NAME)}))
    documents = tuple((Value(name, "user"), sha256) for name, sha256 in f.documents)
    lists.append(Listing("receipt.documents", documents, "receipt.no_documents"))
    return ReceiptContent(
        kind=f.kind,
        registry=f.registry,
        statement=_statement(f),
        rows=_rows(f),
        lists=tuple(lists),
        footer=tuple(footer),
    )


def receipt_text(content: ReceiptContent) -> str:
    """The text/plain body: Arabic section, a rule, the English section (CRLF ends)."""
    return render_mail_text("receipt.txt", r=content)


def receipt_html(content: ReceiptContent) -> str:
    """The text/html body: an Arabic `dir="rtl"` section, then an English `dir="ltr"` one."""
    return render_mail_html("receipt.html", r=content, title=content.registry)
