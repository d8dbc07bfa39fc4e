"""The human-read cover page of a delivered copy, in Arabic first, then English.

Owns: the wording and layout of the text/plain and text/html cover parts (and the
classification labels in both languages). Must not: encode MIME or touch bytes of
the original; every value is escaped here (HTML) and nothing here is trusted.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from policies.directory import Clearance

CLASSIFICATION_AR = {
    Clearance.PUBLIC: "عام",
    Clearance.INTERNAL: "داخلي",
    Clearance.CONFIDENTIAL: "سرّي",
    Clearance.SECRET: "سرّي للغاية",
}
ORIGINAL_NAME = "original.eml"
CERTIFICATE_NAME = "certificate.json"
_RULE = "-" * 60


@dataclass(frozen=True, slots=True)
class CoverDocument:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class CoverFacts:
    """Everything the cover page shows about one copy."""

    registry: str
    agency_code: str
    agency_name_ar: str
    agency_name_en: str
    sender_name_ar: str
    sender_name_en: str
    sender_code: str
    recipient: str
    classification: Clearance
    trace_code: str
    issued_at: str  # "2025-03-01 10:15:30 UTC"
    verify_url: str
    documents: tuple[CoverDocument, ...]


def _documents_text(docs: tuple[CoverDocument, ...]) -> list[str]:
    lines = []
    for doc in docs:
        lines.append(f"  - {doc.name}")
        lines.append(f"    SHA-256: {doc.sha256}")
    return lines


def cover_text(facts: CoverFacts) -> str:
    """The text/plain cover: Arabic section, a rule, the English section (CRLF ends)."""
    f = facts
    label_ar = CLASSIFICATION_AR[f.classification]
    label_en = f.classification.label
    arabic = [
        "بريد رسمي موثَّق — بريد (Barid)",
        "",
        f"رقم القيد: {f.registry}",
        f"الجهة المُصدِرة: {f.agency_name_ar} ({f.agency_code})",
        f"المُرسِل: {f.sender_name_ar} ({f.sender_code})",
        f"المُرسَل إليه: {f.recipient}",
        f"التصنيف: {label_ar} ({label_en})",
        f"رمز التتبّع: {f.trace_code}",
        f"تاريخ الإصدار: {f.issued_at}",
        f"رابط التحقّق: {f.verify_url}",
        "الوثائق:",
        *_documents_text(f.documents),
        "",
        f"الرسالة الأصلية مرفقة كما وردت دون أي تعديل ({ORIGINAL_NAME})،"
        f" ومعها شهادة قابلة للقراءة آليًا ({CERTIFICATE_NAME}).",
        "للتأكد من صدور هذه الوثيقة امسح رمز QR أو افتح رابط التحقّق.",
        "هذه النسخة خاصة بالمُرسَل إليه وتحمل رمز تتبّع خاصًا بها؛ لا تُعِد توجيهها.",
    ]
    english = [
        "Official mail, stamped by Barid",
        "",
        f"Registry number: {f.registry}",
        f"Issuing agency: {f.agency_name_en} ({f.agency_code})",
        f"Sender: {f.sender_name_en} ({f.sender_code})",
        f"Recipient: {f.recipient}",
        f"Classification: {label_en}",
        f"Trace code: {f.trace_code}",
        f"Issued: {f.issued_at}",
        f"Verify: {f.verify_url}",
        "Documents:",
        *_documents_text(f.documents),
        "",
        f"The original message is attached unchanged ({ORIGINAL_NAME}),"
        f" with a machine-readable certificate ({CERTIFICATE_NAME}).",
        "To confirm that this document was issued, scan the QR code or open the verification link.",
        "This copy is for the recipient only and carries its own trace code; do not forward it.",
    ]
    return "\r\n".join([*arabic, "", _RULE, "", *english]) + "\r\n"


def _ltr(value: str) -> str:
    """An escaped left-to-right value, isolated inside right-to-left text."""
    return f'<bdi dir="ltr">{html.escape(value)}</bdi>'


def _documents_html(docs: tuple[CoverDocument, ...]) -> str:
    items = "".join(
        f"<li>{_ltr(doc.name)}<br><code>SHA-256: {html.escape(doc.sha256)}</code></li>"
        for doc in docs
    )
    return f"<ul>{items}</ul>"


def _row(label: str, value: str) -> str:
    return f"<tr><th>{label}</th><td>{value}</td></tr>"


def cover_html(facts: CoverFacts, qr_cid: str, qr_pixels: int) -> str:
    """The text/html cover, showing the QR image by Content-ID (RFC 2392)."""
    f = facts
    e = html.escape
    url = e(f.verify_url)
    link = f'<a href="{url}">{url}</a>'
    label_ar = CLASSIFICATION_AR[f.classification]
    label_en = f.classification.label
    docs = _documents_html(f.documents)
    arabic = "".join(
        (
            '<div dir="rtl" lang="ar">',
            "<h2>بريد رسمي موثَّق</h2><table>",
            _row("رقم القيد", _ltr(f.registry)),
            _row("الجهة المُصدِرة", f"{e(f.agency_name_ar)} ({_ltr(f.agency_code)})"),
            _row("المُرسِل", f"{e(f.sender_name_ar)} ({_ltr(f.sender_code)})"),
            _row("المُرسَل إليه", _ltr(f.recipient)),
            _row("التصنيف", f"{e(label_ar)} ({_ltr(label_en)})"),
            _row("رمز التتبّع", f"<strong>{_ltr(f.trace_code)}</strong>"),
            _row("تاريخ الإصدار", _ltr(f.issued_at)),
            _row("رابط التحقّق", f'<bdi dir="ltr">{link}</bdi>'),
            "</table>",
            f"<p>الوثائق:</p>{docs}",
            f"<p>الرسالة الأصلية مرفقة كما وردت دون أي تعديل ({_ltr(ORIGINAL_NAME)})،",
            f" ومعها شهادة قابلة للقراءة آليًا ({_ltr(CERTIFICATE_NAME)}).</p>",
            "<p>للتأكد من صدور هذه الوثيقة امسح رمز QR أو افتح رابط التحقّق.</p>",
            "<p>هذه النسخة خاصة بالمُرسَل إليه وتحمل رمز تتبّع خاصًا بها؛ لا تُعِد توجيهها.</p>",
            "</div>",
        )
    )
    english = "".join(
        (
            '<div dir="ltr" lang="en">',
            "<h2>Official mail, stamped by Barid</h2><table>",
            _row("Registry number", e(f.registry)),
            _row("Issuing agency", f"{e(f.agency_name_en)} ({e(f.agency_code)})"),
            _row("Sender", f"{e(f.sender_name_en)} ({e(f.sender_code)})"),
            _row("Recipient", e(f.recipient)),
            _row("Classification", e(label_en)),
            _row("Trace code", f"<strong>{e(f.trace_code)}</strong>"),
            _row("Issued", e(f.issued_at)),
            _row("Verify", link),
            "</table>",
            f"<p>Documents:</p>{docs}",
            f"<p>The original message is attached unchanged ({e(ORIGINAL_NAME)}),",
            f" with a machine-readable certificate ({e(CERTIFICATE_NAME)}).</p>",
            "<p>To confirm that this document was issued, scan the QR code or open the",
            " verification link.</p>",
            "<p>This copy is for the recipient only and carries its own trace code;",
            " do not forward it.</p>",
            "</div>",
        )
    )
    image = (
        f'<p style="text-align:center"><img src="cid:{e(qr_cid)}" width="{qr_pixels}"'
        f' height="{qr_pixels}" alt="QR: {url}"></p>'
    )
    return (
        '<!DOCTYPE html>\r\n<html lang="ar" dir="rtl"><head><meta charset="utf-8">'
        f"<title>{e(f.registry)}</title></head><body>\r\n"
        f"{arabic}\r\n{image}\r\n<hr>\r\n{english}\r\n</body></html>\r\n"
    )
