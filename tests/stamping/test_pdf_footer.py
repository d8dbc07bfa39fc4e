"""The marked footer as a reader sees it: on pages turned by /Rotate 90, 180 and 270 and
on pages whose box does not start at 0,0, pdftoppm renders the footer upright at the
foot of every page (its per-copy QR code decodes unturned, bottom right), pdftotext
finds the registry number, trace code and recipient in Arabic and English lines, and
the document given to `mark_pdf` is left as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from gateway.stamping.pdf_mark import copy_url, mark_pdf, read_mark
from gateway.stamping.pdf_text import arabic_font
from testkit.pdfs import TURNED_PAGES, turned_pdf
from testkit.tools import missing, require_tool

REGISTRY, CODE, RECIPIENT = "MOF-TAX/2026/000017", "7K3QD-9XW2A", "reader01@moh.gov.example"
VERIFY = "https://verify.example/v/token"


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if arabic_font() is None:
        missing("no font with Arabic glyphs installed (fonts-dejavu-core)")
    original = turned_pdf()
    kept = bytes(original)
    out = tmp_path_factory.mktemp("footer") / "marked.pdf"
    out.write_bytes(mark_pdf(original, REGISTRY, CODE, RECIPIENT, VERIFY))
    assert original == kept
    return out


def test_footer_is_upright_on_turned_pages(marked: Path) -> None:
    pdftoppm = require_tool("pdftoppm")
    subprocess.run([pdftoppm, "-r", "72", "-png", str(marked), str(marked.parent / "p")],
                   check=True)  # fmt: skip
    images = sorted(marked.parent.glob("p-*.png"))
    assert len(images) == len(TURNED_PAGES)
    for png, (turn, box) in zip(images, TURNED_PAGES, strict=True):
        with Image.open(png) as image:
            grey = image.convert("L")
        width, height = grey.size
        wide, tall = box[2] - box[0], box[3] - box[1]
        assert (width, height) == ((wide, tall) if turn in (0, 180) else (tall, wide))
        [qr] = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormat.QRCode)
        assert qr.text == copy_url(VERIFY, CODE)
        assert qr.orientation == 0, f"/Rotate {turn}: the QR code is turned"
        corner = qr.position.top_left
        assert corner.x > width * 0.8 and corner.y > height - 50, (turn, corner.x, corner.y)
        band = grey.crop((0, height - 44, width - 50, height)).tobytes()
        assert sum(1 for value in band if value < 128) > 200, f"/Rotate {turn}: no footer text"


def test_footer_text_in_both_languages(marked: Path) -> None:
    pdftotext = require_tool("pdftotext")
    text = subprocess.run([pdftotext, str(marked), "-"], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip
    pages = text.split("\f")[:-1]
    assert len(pages) == len(TURNED_PAGES)
    for page in pages:
        assert f"Trace code {CODE}" in page and REGISTRY in page and RECIPIENT in page
        assert "رمز التتبع" in page and "نسخة قراءة موسومة" in page
    assert read_mark(marked.read_bytes()) == (REGISTRY, CODE)
