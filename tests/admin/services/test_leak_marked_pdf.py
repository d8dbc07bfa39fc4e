"""Forensic marking end to end on a real data dir: one confidential message with a real
PDF, stamped by the gateway's Stamper and stored for ten recipients. Each copy holds
a marked reading copy whose footer (registry number, trace code) shows on every page
rendered by pdftoppm and in pdftotext's text; the original in the store is
byte-identical to what the sender sent and its token still verifies; certificate.json's
signed marking record verifies; the marked PDF, and the same PDF re-saved by qpdf,
trace to their one recipient and no other; so does a photo of a printed page (rendered
by pdftoppm, rotated 5 degrees, blurred, JPEG-compressed) by its per-copy QR code, and
with that QR code blacked out, by the trace code printed in its footer (Tesseract)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import json
import subprocess
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from admin.context import open_app
from admin.services import leak_ocr, leaks
from admin.services.errors import NotFound
from gateway.config import load_settings
from gateway.stamping.marked_copies import verify_marking_record
from gateway.stamping.pdf_mark import FOOTER_HEIGHT, read_mark
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.readers import MessageReader
from keys.gateway_keys import derive_key
from keys.tokens import TokenError, verify_token
from policies.directory import Clearance
from testkit.admin_use_cases import AUDITOR
from testkit.leak_world import RECIPIENTS, LeakWorld, leak_world
from testkit.pdfs import original_with_pdf
from testkit.tools import require_tool


@pytest.fixture
async def world(barid: object, tmp_path: Path) -> AsyncIterator[LeakWorld]:
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        yield await leak_world(app, Clearance.CONFIDENTIAL)


def _reader(world: LeakWorld) -> MessageReader:
    return MessageReader(world.app.sessions, BlobCipher(derive_key(world.app.keys.master_key,
                                                                   BLOB_KEK_PURPOSE)))  # fmt: skip


def _parts(raw: bytes) -> tuple[bytes, dict[str, object]]:
    """(the marked PDF, certificate.json) of a delivered copy."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    pdfs, certificate = [], {}
    for part in parsed.iter_attachments():
        if part.get_content_type() == "application/pdf":
            pdfs.append(part.get_payload(decode=True))
        elif part.get_filename() == "certificate.json":
            certificate = json.loads(part.get_payload(decode=True))
    assert len(pdfs) == 1, "one marked reading copy of the one PDF"
    return pdfs[0], certificate


def _footer_inked(png: Path) -> bool:
    """The footer band at the foot of the page holds dark pixels (text and QR)."""
    with Image.open(png) as image:
        grey = image.convert("L")
        width, height = grey.size
        band = grey.crop((0, height - int(height * FOOTER_HEIGHT / 842), width, height))
        return sum(1 for value in band.tobytes() if value < 128) > 200


async def test_each_copy_holds_a_marked_pdf(world: LeakWorld, tmp_path: Path) -> None:
    pdftoppm, pdftotext = require_tool("pdftoppm"), require_tool("pdftotext")
    reader = _reader(world)
    stored = await reader.message_by_registry(world.registry)
    assert stored is not None
    original = await reader.load_original(stored.id)
    assert original == original_with_pdf("clerk@tax.mof.gov.example", world.document)
    contents = verify_token(stored.token, world.app.keys.verification_keys)
    assert not isinstance(contents, TokenError)
    seen: set[str] = set()
    for recipient in RECIPIENTS:
        raw = await reader.load_copy(world.copy_ids[recipient])
        assert original in raw  # original.eml, untouched
        marked, certificate = _parts(raw)
        code = world.codes[recipient]
        assert marked != world.document and hashlib.sha256(marked).hexdigest() not in seen
        seen.add(hashlib.sha256(marked).hexdigest())
        marking = certificate["marking"]
        assert isinstance(marking, dict)
        assert verify_marking_record(marking, world.app.keys.signing_public_key)
        assert marking["documents"] == [{
            "name": "letter.pdf",
            "original_sha256": hashlib.sha256(world.document).hexdigest(),
            "marked_sha256": hashlib.sha256(marked).hexdigest(),
            "marked_size": len(marked),
        }]  # fmt: skip
        assert not verify_marking_record({**marking, "trace_code": "X"},
                                         world.app.keys.signing_public_key)  # fmt: skip
        path = tmp_path / f"{code}.pdf"
        path.write_bytes(marked)
        text = subprocess.run([pdftotext, "-layout", str(path), "-"], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
        pages = text.split("\f")[:-1]
        assert len(pages) == 3
        assert all(world.registry in p and code in p and recipient in p for p in pages)
        subprocess.run([pdftoppm, "-r", "60", "-png", str(path), str(tmp_path / code)],
                       check=True)  # fmt: skip
        images = sorted(tmp_path.glob(f"{code}-*.png"))
        assert len(images) == 3 and all(_footer_inked(png) for png in images)
    # The sender's document itself carries no mark.
    assert read_mark(world.document) is None


async def test_marked_pdf_and_its_qpdf_resave_trace_to_one_recipient(
    world: LeakWorld, tmp_path: Path
) -> None:
    qpdf = require_tool("qpdf")
    reader = _reader(world)
    for recipient in RECIPIENTS:
        marked, _certificate = _parts(await reader.load_copy(world.copy_ids[recipient]))
        leaked = tmp_path / "leaked.pdf"
        leaked.write_bytes(marked)
        resaved = tmp_path / "resaved.pdf"
        subprocess.run([qpdf, "--object-streams=generate", "--compress-streams=y",
                        str(leaked), str(resaved)], check=True)  # fmt: skip
        assert resaved.read_bytes() != marked
        for path in (leaked, resaved):
            found = await leaks.trace_leak(AUDITOR, world.app, str(path))
            assert [c.recipient for c in found.copies] == [recipient]
            assert found.recipient_named and found.kind == "document"
            assert found.copies[0].trace_code == world.codes[recipient]
            assert found.matched_by.startswith("per-copy mark in the PDF")


def _photo(pdf: Path, tmp_path: Path, *, as_png: bool, no_qr: bool = False) -> bytes:
    """Page 1 printed and photographed: 300 dpi, turned 5 degrees, blurred, JPEG
    quality 60 (then, `as_png`, saved again as PNG, as a scan tool would); `no_qr`:
    the footer's QR code blacked out first."""
    pdftoppm = require_tool("pdftoppm")
    subprocess.run([pdftoppm, "-r", "300", "-f", "1", "-l", "1", "-png", str(pdf),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    [png] = tmp_path.glob("page-*.png")
    with Image.open(png) as page:
        page = page.convert("RGB")
        if no_qr:
            width, height = page.size
            side = 50 * 300 // 72  # the QR code (40 points) and its margin
            ImageDraw.Draw(page).rectangle((width - side, height - side, width, height), "black")
        turned = page.rotate(5, expand=True, fillcolor="white",
                                            resample=Image.Resampling.BICUBIC)  # fmt: skip
    png.unlink()
    jpeg = io.BytesIO()
    turned.filter(ImageFilter.GaussianBlur(1.0)).save(jpeg, "JPEG", quality=60)
    if not as_png:
        return jpeg.getvalue()
    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg.getvalue())) as photo:
        photo.save(out, "PNG")
    return out.getvalue()


async def test_a_photo_of_a_printed_page_traces_to_one_recipient(
    world: LeakWorld, tmp_path: Path
) -> None:
    reader = _reader(world)
    for n, recipient in enumerate(RECIPIENTS):
        marked, _certificate = _parts(await reader.load_copy(world.copy_ids[recipient]))
        pdf = tmp_path / "leaked.pdf"
        pdf.write_bytes(marked)
        photo = _photo(pdf, tmp_path, as_png=n % 2 == 0)
        # Told by content, not name: a JPEG named .png, a PNG without a suffix.
        leaked = tmp_path / ("photo.png" if n % 2 else "scan")
        leaked.write_bytes(photo)
        found = await leaks.trace_leak(AUDITOR, world.app, str(leaked))
        assert [c.recipient for c in found.copies] == [recipient]
        assert found.recipient_named and found.kind == "photo"
        assert found.copies[0].trace_code == world.codes[recipient]
        assert found.matched_by == (
            f"per-copy QR code in the photo: {world.registry} trace code {world.codes[recipient]}"
        )
        assert found.input_sha256 == hashlib.sha256(photo).hexdigest()


async def test_a_photo_without_its_qr_code_traces_by_the_printed_code(
    world: LeakWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("tesseract")
    reader = _reader(world)
    for n, recipient in enumerate(RECIPIENTS[:2]):
        marked, _certificate = _parts(await reader.load_copy(world.copy_ids[recipient]))
        pdf = tmp_path / "leaked.pdf"
        pdf.write_bytes(marked)
        leaked = tmp_path / "blacked.jpg"
        leaked.write_bytes(_photo(pdf, tmp_path, as_png=n % 2 == 1, no_qr=True))
        found = await leaks.trace_leak(AUDITOR, world.app, str(leaked))
        assert [c.recipient for c in found.copies] == [recipient]
        assert found.kind == "photo" and found.recipient_named
        # The registry number printed beside the code is read too on most photos;
        # the code alone (it names one copy) is enough when the blur takes it.
        assert found.matched_by in {
            f"trace code printed in the photo, read by OCR{also}:"
            f" {world.registry} trace code {world.codes[recipient]}"
            for also in (" and its registry number", "")
        }
    # Without tesseract the answer says so plainly.
    monkeypatch.setattr(leak_ocr.shutil, "which", lambda _name: None)
    with pytest.raises(NotFound) as refused:
        await leaks.trace_leak(AUDITOR, world.app, str(leaked))
    assert str(refused.value) == (
        "no copy matches: blacked.jpg: no QR code found in the image; " + leak_ocr.NO_TESSERACT
    )
