"""Small real PDF documents for the marking tests, made with pikepdf.

Owns: `sample_pdf` (pages of text, each page's text unique to the call),
`turned_pdf` (pages with /Rotate 0, 90, 180 and 270 and boxes not at 0,0) and
`original_with_pdf` (a sender's original message carrying it). Must not: mark
anything (the tests use the gateway's own marking).
"""

from __future__ import annotations

import base64
import io
import os

import pikepdf
from pikepdf import Dictionary, Name


def sample_pdf(pages: int = 3, title: str = "Quarterly report") -> bytes:
    """A PDF of `pages` A4 pages with a line of text near the top of each."""
    nonce = os.urandom(4).hex()
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica)
    )
    for n in range(1, pages + 1):
        pdf.add_blank_page(page_size=(595, 842))
        page = pdf.pages[-1]
        name = page.add_resource(font, Name.Font)
        text = f"{title} {nonce}, page {n} of {pages}"
        page.contents_add(pdf.make_stream(f"BT {name} 20 Tf 72 760 Td ({text}) Tj ET".encode()))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


# (/Rotate, MediaBox) of each page of `turned_pdf`.
TURNED_PAGES = (
    (0, (0, 0, 595, 842)),
    (90, (0, 0, 595, 842)),
    (180, (100, 200, 695, 1042)),
    (270, (-50, 30, 545, 872)),
    (90, (10, -20, 852, 575)),
)


def turned_pdf() -> bytes:
    """A PDF whose pages are turned (/Rotate) and whose boxes start away from 0,0."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica)
    )
    for n, (turn, box) in enumerate(TURNED_PAGES, start=1):
        pdf.add_blank_page(page_size=(box[2] - box[0], box[3] - box[1]))
        page = pdf.pages[-1]
        page.obj.MediaBox = pikepdf.Array(box)
        page.obj.Rotate = turn
        name = page.add_resource(font, Name.Font)
        text = f"BT {name} 20 Tf {box[0] + 72} {box[1] + 300} Td (Page {n}, /Rotate {turn}) Tj ET"
        page.contents_add(pdf.make_stream(text.encode()))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def original_with_pdf(sender: str, document: bytes, name: str = "letter.pdf") -> bytes:
    """A CRLF message from `sender` with `document` attached as base64."""
    payload = base64.encodebytes(document).replace(b"\n", b"\r\n")
    head = (
        f"From: Clerk <{sender}>\r\n"
        "To: readers@moh.gov.example\r\n"
        "Subject: Quarterly report\r\n"
        "Message-ID: <marked.report@mof.gov.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        f'--b1\r\nContent-Type: application/pdf; name="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + payload + b"--b1--\r\n"
