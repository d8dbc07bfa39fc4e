"""Forensic marking of PDF documents: one recipient's marked reading copy, and reading
the mark back from a leaked file (docs/SECURITY-TEAMS.md §5).

Owns: `mark_pdf` (a visible footer on every page, in Arabic and English --
registry number, trace code, recipient, a small per-copy QR code -- upright at
the foot of the page as a reader sees it, whatever its /Rotate and wherever its
box starts, and an invisible per-copy identifier in the document's XMP metadata
and in every page's content) and `read_mark` (the
identifier found in a PDF, however re-saved). Must not: touch the sender's
original bytes (the marked copy is a new file), the database or the network.
Failure: a document that is not a PDF pikepdf can open, or is encrypted, is not
marked: `mark_pdf` raises `NotMarkable` with a one-line reason and the caller
carries the document unmarked; `read_mark` answers None for anything without
one consistent mark, never a guess. With no font with Arabic glyphs installed
(gateway.stamping.pdf_text) the footer is written in English only, and a
warning logged: the document is still marked.

The identifier is the text `BARID-MARK/1 <registry> <trace code>`: the same in
the XMP property and, drawn in invisible text (rendering mode 3), on every page.
qpdf and most editors keep both when they re-save a file; cutting pages keeps
the page marks; the visible footer is what a printout or photo keeps.
"""

from __future__ import annotations

import io
import logging
import re

import pikepdf
from pikepdf import Dictionary, Name, Pdf

from gateway.stamping.pdf_text import arabic_font, footer_overlay
from gateway.stamping.qr import qr_modules

_log = logging.getLogger(__name__)

MARK_FORMAT = "barid-pdf-mark/1"
MARK_NAMESPACE = "https://barid.invalid/ns/mark/1/"
MARK_PROPERTY = "{" + MARK_NAMESPACE + "}copy"
_MARK_PREFIX = "BARID-MARK/1"
_MARK_RE = re.compile(rb"BARID-MARK/1 ([A-Z0-9][A-Z0-9-]*/\d{4}/\d+) ([0-9A-Z]{5}-[0-9A-Z]{5})")
FOOTER_HEIGHT = 44.0  # points: the white band at the foot of every page
_FONT_SIZE = 7.0
_QR_SIDE = 40.0  # points: the per-copy QR code, bottom right
_MAX_PAGES = 2000


class NotMarkable(ValueError):
    """The document cannot be marked (not a PDF pikepdf opens, encrypted, too many pages)."""


def mark_text(registry: str, trace_code: str) -> str:
    """The per-copy identifier embedded in a marked PDF."""
    return f"{_MARK_PREFIX} {registry} {trace_code}"


def copy_url(verify_url: str, trace_code: str) -> str:
    """What the per-copy QR code holds: the message's verify URL and the copy's reference."""
    return f"{verify_url}?copy={trace_code}"


def _pdf_string(text: str) -> bytes:
    """A PDF literal string of printable ASCII (anything else becomes '?')."""
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return b"(" + safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode() + b")"


def _qr_ops(text: str, x: float, y: float) -> bytes:
    rows = qr_modules(text)
    unit = _QR_SIDE / len(rows)
    ops = [b"q 0 g", f"{unit:.4f} 0 0 {unit:.4f} {x:.2f} {y:.2f} cm".encode()]
    side = len(rows)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value == 0:
                ops.append(f"{c} {side - 1 - r} 1 1 re".encode())
    ops += [b"f Q"]
    return b"\n".join(ops)


def _text_ops(font: str, lines: list[str]) -> bytes:
    """English-only footer lines in Helvetica (no font with Arabic glyphs installed)."""
    ops = []
    for n, line in enumerate(lines):
        at = FOOTER_HEIGHT - 12 - n * (_FONT_SIZE + 2)
        ops.append(f"BT /{font} {_FONT_SIZE} Tf 0 Tr 18 {at:.2f} Td ".encode()
                   + _pdf_string(line) + b" Tj ET")  # fmt: skip
    return b"\n".join(ops)


def _footer_ops(width: float, matrix: str, font: str, text: bytes, mark: str,
                qr_text: str) -> bytes:  # fmt: skip
    """The footer drawn upright for the reader: `matrix` maps the page as seen (after
    /Rotate, origin at its lower left) to the page's own space."""
    ops = [b"q", f"{matrix} cm".encode(), b"1 g",
           f"0 0 {width:.2f} {FOOTER_HEIGHT:.2f} re f".encode(), b"0 g", text]  # fmt: skip
    ops.append(f"BT /{font} 1 Tf 3 Tr 18 2 Td ".encode() + _pdf_string(mark) + b" Tj ET")
    ops.append(_qr_ops(qr_text, width - _QR_SIDE - 2, 2))
    ops.append(b"Q")
    return b"\n".join(ops) + b"\n"


def _box(page: pikepdf.Page) -> tuple[float, float, float, float]:
    box = page.cropbox if "/CropBox" in page.obj else page.mediabox
    x0, y0, x1, y1 = (float(v) for v in box)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def seen_page(page: pikepdf.Page) -> tuple[float, str]:
    """(the width of the page as a reader sees it, the matrix from that view to the
    page's own space): /Rotate turns the page clockwise, the box may start anywhere."""
    x0, y0, x1, y1 = _box(page)
    try:
        turn = int(page.obj.get("/Rotate", 0)) % 360
    except (TypeError, ValueError):
        turn = 0
    if turn == 90:
        return y1 - y0, f"0 1 -1 0 {x1:.2f} {y0:.2f}"
    if turn == 180:
        return x1 - x0, f"-1 0 0 -1 {x1:.2f} {y1:.2f}"
    if turn == 270:
        return y1 - y0, f"0 -1 1 0 {x0:.2f} {y1:.2f}"
    return x1 - x0, f"1 0 0 1 {x0:.2f} {y0:.2f}"


def _open(data: bytes) -> Pdf:
    try:
        pdf = Pdf.open(io.BytesIO(data))
    except pikepdf.PasswordError:
        raise NotMarkable("the PDF is encrypted") from None
    except (pikepdf.PdfError, ValueError) as exc:
        raise NotMarkable(f"not a readable PDF ({type(exc).__name__})") from None
    if pdf.is_encrypted or not 0 < len(pdf.pages) <= _MAX_PAGES:
        pages = len(pdf.pages)
        pdf.close()
        if pages and pages <= _MAX_PAGES:
            raise NotMarkable("the PDF is encrypted")
        raise NotMarkable(f"the PDF has {pages} pages (1 to {_MAX_PAGES} are marked)")
    return pdf


def markable(data: bytes) -> bool:
    """Whether `mark_pdf` can mark the PDF `data`."""
    try:
        _open(data).close()
    except NotMarkable:
        return False
    return True


def footer_lines(registry: str, trace_code: str, recipient: str) -> tuple[list[str], list[str]]:
    """The footer's visible lines: (Arabic, English)."""
    arabic = [
        f"رقم القيد {registry}   رمز التتبع {trace_code}   المستلم {recipient}",
        "نسخة قراءة موسومة: أصل المرسل الموقّع في original.eml، امسح رمز QR للتحقق منه.",
    ]
    english = [
        f"Registry {registry}   Trace code {trace_code}   Recipient {recipient}",
        "Marked reading copy: the sender's signed original is in original.eml;"
        " scan the QR code to verify it.",
    ]
    return arabic, english


class _FooterText:
    """The footer's text lines as a form XObject per page width (Arabic and English),
    or, with no font with Arabic glyphs installed, English lines in Helvetica."""

    def __init__(self, pdf: Pdf, lines: tuple[list[str], list[str]]) -> None:
        self.pdf, self.lines = pdf, lines
        self.forms: dict[float, pikepdf.Object] = {}
        self.bilingual = arabic_font() is not None
        if not self.bilingual:
            _log.warning("no font with Arabic glyphs installed: marked PDF footers in English only")

    def ops(self, page: pikepdf.Page, width: float, font: str) -> bytes:
        if not self.bilingual:
            return _text_ops(font, self.lines[1])
        key = round(width, 2)
        if key not in self.forms:
            overlay = footer_overlay(key, FOOTER_HEIGHT, *self.lines, right_margin=_QR_SIDE + 8)
            with Pdf.open(io.BytesIO(overlay)) as source:
                self.forms[key] = self.pdf.copy_foreign(source.pages[0].as_form_xobject())
        name = page.add_resource(self.forms[key], Name.XObject, prefix="BaridT",
                                 replace_existing=False)  # fmt: skip
        return f"q {name} Do Q".encode()


def mark_pdf(data: bytes, registry: str, trace_code: str, recipient: str, verify_url: str) -> bytes:
    """The marked reading copy of the PDF `data` for one recipient's copy."""
    with _open(data) as pdf:
        mark = mark_text(registry, trace_code)
        text = _FooterText(pdf, footer_lines(registry, trace_code, recipient))
        font_dict = Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica,
                               Encoding=Name.WinAnsiEncoding)  # fmt: skip
        font_obj = pdf.make_indirect(font_dict)
        qr_text = copy_url(verify_url, trace_code)
        for page in pdf.pages:
            font = str(page.add_resource(font_obj, Name.Font, prefix="BaridF",
                                         replace_existing=False))[1:]  # fmt: skip
            width, matrix = seen_page(page)
            page.contents_add(b"q\n", prepend=True)
            footer = _footer_ops(width, matrix, font, text.ops(page, width, font), mark, qr_text)
            page.contents_add(pdf.make_stream(b"\nQ\n" + footer))
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta[MARK_PROPERTY] = mark
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True)
        return out.getvalue()


def _page_marks(pdf: Pdf) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for page in pdf.pages:
        try:
            content = page.obj.Contents
            streams = list(content) if isinstance(content, pikepdf.Array) else [content]
            for stream in streams:
                for registry, code in _MARK_RE.findall(stream.read_bytes()):
                    found.add((registry.decode(), code.decode()))
        except (pikepdf.PdfError, AttributeError, TypeError, ValueError):
            continue
    return found


def read_mark(data: bytes) -> tuple[str, str] | None:
    """(registry, trace code) of the one mark in the PDF `data`; None if it has none,
    is no PDF, or carries more than one different mark."""
    try:
        pdf = Pdf.open(io.BytesIO(data))
    except (pikepdf.PdfError, ValueError):
        return None
    with pdf:
        found = _page_marks(pdf)
        try:
            text = str(pdf.open_metadata().get(MARK_PROPERTY, ""))
        except (pikepdf.PdfError, ValueError, KeyError):
            text = ""
        matched = _MARK_RE.fullmatch(text.encode("ascii", "replace"))
        if matched:
            found.add((matched.group(1).decode(), matched.group(2).decode()))
    return found.pop() if len(found) == 1 else None


__all__ = [
    "MARK_FORMAT",
    "NotMarkable",
    "copy_url",
    "footer_lines",
    "mark_pdf",
    "mark_text",
    "markable",
    "read_mark",
    "seen_page",
]
