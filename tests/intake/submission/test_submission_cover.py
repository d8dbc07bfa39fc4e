"""The cover part of delivered copies made by a running gateway from real signed
submissions: it names the parts of the original that no signature covers (and those
the sender's signature does), says nothing extra for a fully signed original, and
lays out from a 360 px phone to a desktop window in headless Chromium (scrollWidth
within the window, the QR and the headings visible; screenshots saved)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway.store.messages import MessageStore
from testkit.chromium import WIDTHS, Chromium, screenshot_dir
from testkit.messages import detached_openpgp, entity, multipart, pgp_mime, text_part, top_headers

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
NOTE_EN = "the sender's signature does not cover every part of the original message"
NOTE_AR = "لا يغطي توقيع المُرسِل كل أجزاء الرسالة الأصلية"


async def delivered_copy(live: Any, raw: bytes) -> EmailMessage:
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 250, (code, text)
    store = MessageStore(live.gateway.sessions, live.gateway_keys.master_key, b"\0" * 32)
    message = await store.message_by_registry(text.split()[-1])
    assert message is not None
    copies = await store.copies_for(message.id)
    copy = email.message_from_bytes(
        await store.load_copy(copies[0].id), policy=email.policy.default
    )
    assert isinstance(copy, EmailMessage)
    return copy


def cover_of(copy: EmailMessage) -> tuple[str, str, bytes, str]:
    """(text/plain, text/html, QR PNG, QR Content-ID) of a copy's cover."""
    related = next(copy.iter_parts())
    assert isinstance(related, EmailMessage)
    alternative, image = related.iter_parts()
    assert isinstance(alternative, EmailMessage) and isinstance(image, EmailMessage)
    plain, page = (p.get_content() for p in alternative.iter_parts())  # type: ignore[attr-defined]
    return plain, page, image.get_content(), str(image["Content-ID"]).strip("<>")


def shown(page: str) -> str:
    """The text a reader sees in an HTML part, spaces collapsed."""
    inline = re.sub(r"</?(?:bdi|strong|a|code)\b[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def with_cover_note(live: Any, gnupghome: Path) -> bytes:
    """A PGP/MIME letter with an unsigned note put in front of the signed part."""
    signed = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code(live))
    signed_part = signed[signed.index(b"Content-Type: multipart/signed") :]
    body = multipart([text_part("Forwarded by the registry office"), signed_part], "outer-b")
    return entity([*top_headers(MOH, [MOF], "Official letter", code(live)),
                   ("Content-Type", 'multipart/mixed; boundary="outer-b"')], body)  # fmt: skip


def code(live: Any) -> list[tuple[str, str]]:
    return [("Barid-Employee-Code", live.credentials[MOH]["code"])]


async def test_cover_names_the_parts_outside_the_signature(live: Any, gnupghome: Path) -> None:
    # The body text beside a detached signature is outside it; the document is signed.
    plain, page, _, _ = cover_of(
        await delivered_copy(live, detached_openpgp(gnupghome, MOH, MOH, [MOF], extra=code(live)))
    )
    for text in (plain, shown(page)):
        assert NOTE_EN in text and NOTE_AR in text
    assert "Parts the sender's signature covers:\r\n  - memo.pdf (part 2)\r\n" in plain
    assert "Parts no signature covers:\r\n  - message text (plain text) (part 1)\r\n" in plain
    assert "الأجزاء التي يغطيها توقيع المُرسِل:\r\n  - memo.pdf (الجزء 2)\r\n" in plain
    assert "الأجزاء التي لا يغطيها أي توقيع:\r\n  - نص الرسالة (نص عادي) (الجزء 1)\r\n" in plain
    text = shown(page)
    assert "Parts the sender's signature covers: memo.pdf (part 2)" in text
    assert "Parts no signature covers: message text (plain text) (part 1)" in text
    assert "الأجزاء التي لا يغطيها أي توقيع: نص الرسالة (نص عادي) (الجزء 1)" in text
    # Arabic first, then English; the signature file itself is no content part.
    assert plain.index(NOTE_AR) < plain.index(NOTE_EN) and "memo.pdf.asc" not in plain

    # Unsigned text in front of a PGP/MIME part: the signed subtree is listed part by part.
    plain, page, _, _ = cover_of(await delivered_copy(live, with_cover_note(live, gnupghome)))
    assert (
        "Parts the sender's signature covers:\r\n"
        "  - message text (plain text) (part 2.1.1)\r\n"
        "  - letter.pdf (part 2.1.2)\r\n"
        "Parts no signature covers:\r\n"
        "  - message text (plain text) (part 1)\r\n"
    ) in plain
    assert "Parts no signature covers: message text (plain text) (part 1)" in shown(page)


async def test_fully_signed_cover_says_nothing_extra(live: Any, gnupghome: Path) -> None:
    plain, page, _, _ = cover_of(
        await delivered_copy(live, pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code(live)))
    )
    for text in (plain, shown(page)):
        assert NOTE_EN not in text and NOTE_AR not in text
        assert "no signature covers" not in text and "Parts the sender" not in text
        assert "Registry number" in text and "رقم القيد" in text


def _browse(chromium: str, pages: dict[str, Path], out: Path) -> list[Path]:
    browser = Chromium(chromium, out / "profile-cover")
    shots: list[Path] = []
    selectors = {"qr": "img", "arabic": "div[lang=ar] h2", "english": "div[lang=en] h2",
                 "facts": "div[lang=en] table", "note_ar": "div[lang=ar] .barid-signature-note",
                 "note_en": "div[lang=en] .barid-signature-note"}  # fmt: skip
    try:
        for name, path in pages.items():
            for width in WIDTHS:
                png = out / f"cover-{name}-{width}.png"
                layout = browser.layout(path.as_uri(), width, selectors, png)
                assert layout.scroll_width <= layout.inner_width, (name, width, layout)
                assert layout.images_loaded == (True,), (name, width)
                qr = layout.visible("qr")
                assert qr.width >= min(200, width - 40), (name, width, qr)  # scaled, not lost
                layout.visible("arabic")
                layout.visible("english")
                layout.visible("facts")
                if name == "partly-signed":
                    assert "الأجزاء التي لا يغطيها أي توقيع" in layout.visible("note_ar").text
                    assert "Parts no signature covers" in layout.visible("note_en").text
                else:
                    assert layout.boxes["note_ar"] is None and layout.boxes["note_en"] is None
                shots.append(png)
    finally:
        browser.close()
    return shots


async def test_cover_in_headless_chromium_from_phone_to_desktop(
    live: Any, gnupghome: Path, need_tool: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    chromium = need_tool("chromium")
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    pages: dict[str, Path] = {}
    originals = {
        "signed": pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code(live)),
        "partly-signed": detached_openpgp(gnupghome, MOH, MOH, [MOF], extra=code(live)),
    }
    for name, raw in originals.items():
        _, page, png, cid = cover_of(await delivered_copy(live, raw))
        assert f'src="cid:{cid}"' in page
        # What a mail client does with cid: (RFC 2392): point it at the related part.
        (out / f"cover-{name}-qr.png").write_bytes(png)
        pages[name] = out / f"cover-{name}.html"
        pages[name].write_text(page.replace(f"cid:{cid}", f"cover-{name}-qr.png"), "utf-8")
    shots = await asyncio.to_thread(_browse, chromium, pages, out)
    for png in shots:
        print(f"screenshot: {png}")
    assert len(shots) == len(pages) * len(WIDTHS)
