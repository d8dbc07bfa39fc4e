"""A leak case file's PDF summary, in Arabic and English: which message, which copy,
and each copy's chain of custody.

Owns: `case_summary_pdf` (the bytes of `case.pdf` for a trace's answer; one page
for a copy, more when its custody is long). Must not: sign (admin.services.leak_case
lists the summary's SHA-256 in the signed case.json) or hold any fact the
answer does not. Failure: no font with Arabic glyphs installed is `Unavailable`
with the reason (nothing is written).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from admin.services.errors import Unavailable
from admin.services.leaks import CopyCustody, LeakTrace, MessageOrigin
from gateway.stamping.pdf_text import NoArabicFont, new_document

if TYPE_CHECKING:
    from fpdf import FPDF

A4 = (595.0, 842.0)
_MARGIN = 40.0
_INNER = A4[0] - 2 * _MARGIN
TITLE = ("ملخص ملف قضية تسريب", "Leak case file summary")
SIGNED_NOTE = (
    "هذا الملخص مشمول بتوقيع case.json (بصمته SHA-256 مدرجة فيه)؛"
    " تحقق منه دون اتصال بالأمر barid leak verify-case.",
    "This summary is covered by the signature of case.json (its SHA-256 is listed there);"
    " check it offline with barid leak verify-case.",
)
_CUSTODY_HEAD = ("الوقت / Time", "الحدث / Event", "من / By", "العنوان / Client")


def _pair(pdf: FPDF, arabic: str, english: str, value: str) -> None:
    """One fact: the English label, the value, the Arabic label right-aligned."""
    pdf.set_font_size(9)
    pdf.set_x(_MARGIN)
    pdf.cell(95, 14, english)
    room = _INNER - 190
    pdf.set_font_size(max(4.5, min(9.0, 9.0 * room / max(pdf.get_string_width(value), 1))))
    pdf.cell(room, 14, value)
    pdf.set_font_size(9)
    pdf.cell(95, 14, arabic, align="R", new_x="LMARGIN", new_y="NEXT")


def _heading(pdf: FPDF, arabic: str, english: str) -> None:
    pdf.ln(6)
    pdf.set_font_size(11)
    pdf.set_x(_MARGIN)
    pdf.cell(_INNER / 2, 16, english)
    pdf.cell(_INNER / 2, 16, arabic, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.line(_MARGIN, pdf.get_y(), A4[0] - _MARGIN, pdf.get_y())
    pdf.ln(2)


def _message(pdf: FPDF, m: MessageOrigin) -> None:
    _heading(pdf, "الرسالة", "Message")
    _pair(pdf, "رقم القيد", "Registry number", m.registry)
    _pair(pdf, "التصنيف", "Classification", m.classification)
    _pair(pdf, "الجهة المصدرة", "Issued by", m.agency)
    _pair(pdf, "المرسل", "Sender", m.sender)
    _pair(pdf, "القبول", "Accepted", f"{m.accepted_at} from {m.accepted_from}")
    if m.documents:
        _pair(pdf, "المستندات", "Documents", ", ".join(m.documents))


def _custody_rows(copy: CopyCustody, origin: MessageOrigin | None) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    if origin is not None:
        rows.append((origin.accepted_at, "accepted / قُبلت", origin.sender, origin.accepted_from))
    rows.append((copy.delivered_at or "-", f"{copy.state} via {copy.target} / التسليم", "Barid",
                 "-"))  # fmt: skip
    rows += [
        (a.at, f"opened / فُتحت ({a.protocol}, {a.mailbox})", a.employee, a.client)
        for a in copy.accesses
    ]
    if not copy.accesses:
        rows.append(("-", "never opened / لم تُفتح", "-", "-"))
    rows.append(("-", f"forwards / إعادة التوجيه: {', '.join(copy.forwards) or 'none'}", "-", "-"))
    return rows


def _copy(pdf: FPDF, copy: CopyCustody, origin: MessageOrigin | None) -> None:
    _heading(pdf, "النسخة وسلسلة الحيازة", "Copy and chain of custody")
    _pair(pdf, "المستلم", "Recipient", copy.recipient)
    _pair(pdf, "رمز التتبع", "Trace code", copy.trace_code)
    _pair(pdf, "رقم القيد", "Registry number", copy.registry)
    pdf.ln(4)
    pdf.set_font_size(8)
    from fpdf.fonts import FontFace  # with fpdf2, which is imported only when writing

    heads = FontFace(emphasis="", fill_color=(225, 225, 225))
    with pdf.table(col_widths=(25, 35, 25, 15), line_height=11, headings_style=heads,
                   width=_INNER) as table:  # fmt: skip
        for row in (_CUSTODY_HEAD, *_custody_rows(copy, origin)):
            cells = table.row()
            for value in row:
                cells.cell(value)
    if copy.forwards_note and not copy.forwards:
        pdf.set_font_size(7)
        pdf.set_x(_MARGIN)
        pdf.multi_cell(_INNER, 10, f"Forwards: {copy.forwards_note}.", new_x="LMARGIN")


def case_summary_pdf(trace: LeakTrace, created_at: str, key_id: str) -> bytes:
    """`case.pdf` of the case file for `trace`, written at `created_at`."""
    try:
        pdf = new_document(*A4)
    except NoArabicFont as exc:
        raise Unavailable(f"the case file's PDF summary cannot be written: {exc}") from None
    pdf.set_margin(_MARGIN)
    pdf.set_auto_page_break(True, margin=_MARGIN)
    pdf.set_title(f"{TITLE[1]}: {', '.join(m.registry for m in trace.messages)}")
    pdf.add_page()
    pdf.set_font_size(15)
    pdf.cell(_INNER, 20, TITLE[0], align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(_INNER, 20, TITLE[1], new_x="LMARGIN", new_y="NEXT")
    _heading(pdf, "الدليل", "Evidence")
    _pair(pdf, "تاريخ الملف", "Case written", created_at)
    _pair(pdf, "المُدخل", "Input", f"{trace.kind}: {trace.input}")
    _pair(pdf, "بصمة المدخل", "Input SHA-256", trace.input_sha256)
    _pair(pdf, "طريقة المطابقة", "Matched by", trace.matched_by)
    if trace.verified:
        _pair(pdf, "التحقق", "Verified", trace.verified)
    if trace.note:
        pdf.set_font_size(8)
        pdf.multi_cell(_INNER, 11, f"Note: {trace.note}.", new_x="LMARGIN", new_y="NEXT")
    for message in trace.messages:
        _message(pdf, message)
    origins = {m.registry: m for m in trace.messages}
    for copy in trace.copies:
        _copy(pdf, copy, origins.get(copy.registry))
    pdf.ln(8)
    pdf.set_font_size(8)
    pdf.multi_cell(_INNER, 11, SIGNED_NOTE[0], align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(_INNER, 11, f"{SIGNED_NOTE[1]} Signing key: {key_id}.",
                   new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    return bytes(pdf.output())


__all__ = ["case_summary_pdf"]
