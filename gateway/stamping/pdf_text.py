"""Arabic and English text in the PDFs Barid writes: an installed font with Arabic glyphs
and shaped lines (marked copies' footers, leak case summaries).

Owns: `arabic_font` (the path of an installed TrueType font with Arabic and Latin
glyphs: DejaVu Sans where Debian puts it, else the first font fontconfig lists
for both languages), `new_document` (an fpdf2 document in points with that font
and HarfBuzz shaping on, so Arabic letters join and right-to-left runs are
ordered; the font is embedded as a subset and text stays extractable) and
`footer_overlay` (the visible text lines of a marked page's footer as a one-page
PDF). Must not: read documents or touch the network; fpdf2 is imported only
when a PDF is written (it takes most of a second to load).
Failure: no such font installed is `NoArabicFont` (callers decide: a footer
falls back to English, a case summary is refused with the reason).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpdf import FPDF

FONT_FAMILY = "barid"
_KNOWN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
)


class NoArabicFont(RuntimeError):
    """No installed TrueType font has both Arabic and Latin glyphs."""


@functools.cache
def arabic_font() -> str | None:
    """The path of an installed TrueType font with Arabic and Latin glyphs, or None."""
    for path in _KNOWN_FONTS:
        if Path(path).is_file():
            return path
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        listed = subprocess.run([fc_list, ":lang=ar:lang=en", "file"], capture_output=True,
                                text=True, timeout=10, check=False).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip().rstrip(":") for line in listed.splitlines())
    return next((f for f in files if f.lower().endswith(".ttf")), None)


def new_document(width: float, height: float) -> FPDF:
    """An empty fpdf2 document of `width` x `height` points (pages added by the caller)
    writing Arabic and English with `arabic_font`. NoArabicFont if there is none."""
    font = arabic_font()
    if font is None:
        raise NoArabicFont("no font with Arabic glyphs is installed (Debian: fonts-dejavu-core)")
    from fpdf import FPDF  # slow to import: only when a PDF is written

    pdf = FPDF(unit="pt", format=(width, height))
    pdf.set_margin(0)
    pdf.set_auto_page_break(False)
    pdf.add_font(FONT_FAMILY, "", font)
    pdf.set_font(FONT_FAMILY, size=7)
    pdf.set_text_shaping(True)
    pdf.set_creator("Barid")
    pdf.set_producer("Barid")
    return pdf


def _fit(pdf: FPDF, text: str, size: float, room: float) -> float:
    """The largest font size up to `size` at which `text` fits in `room` points."""
    pdf.set_font_size(size)
    wide = pdf.get_string_width(text)
    return size if wide <= room else max(3.0, size * room / wide)


def footer_overlay(width: float, height: float, arabic: list[str], english: list[str],
                   right_margin: float) -> bytes:  # fmt: skip
    """One page, `width` x `height` points, transparent but for the text: the `arabic`
    lines right-aligned (ending `right_margin` points from the right edge), then the
    `english` lines left-aligned, each shrunk if needed to fit."""
    pdf = new_document(width, height)
    pdf.add_page()
    left = 18.0
    room = max(width - left - right_margin, 40.0)
    step = (height - 6) / max(len(arabic) + len(english), 1)
    for n, line in enumerate(arabic + english):
        size = _fit(pdf, line, min(7.0, step - 1.5), room)
        pdf.set_font_size(size)
        pdf.set_xy(left, 3 + n * step)
        pdf.cell(room, step, line, align="R" if n < len(arabic) else "L")
    return bytes(pdf.output())


__all__ = ["FONT_FAMILY", "NoArabicFont", "arabic_font", "footer_overlay", "new_document"]
