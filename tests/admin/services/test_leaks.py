"""Leak trace through the service layer on a real data dir: one message stamped by the
gateway's own Stamper and delivered to ten recipients; each copy is found from its
trace code typed in lower case with one confusable character, and from its .eml;
the document finds the message and all ten copies; bad input (photos too: unreadable,
no QR code, another site's QR code, the message's own QR code, a forged token, an
unknown copy) and a scoped actor outside the message's agency get "no copy matches"."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from admin.context import open_app
from admin.services import leaks
from admin.services.actor import Actor, Forbidden, Role
from admin.services.errors import NotFound
from gateway.config import load_settings
from gateway.stamping.qr import qr_png
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.readers import MessageReader
from keys.gateway_keys import derive_key
from testkit.admin_use_cases import AUDITOR, MOF_ADMIN, MOF_REGISTRAR
from testkit.leak_world import RECIPIENTS, LeakWorld, leak_world, misread

MOH_ADMIN = Actor("boss@moh.gov.example", Role.AGENCY_ADMIN, agency="MOH")


@pytest.fixture
async def world(barid: object, tmp_path: Path) -> AsyncIterator[LeakWorld]:
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        yield await leak_world(app)


async def _copy_bytes(world: LeakWorld, recipient: str) -> bytes:
    cipher = BlobCipher(derive_key(world.app.keys.master_key, BLOB_KEK_PURPOSE))
    return await MessageReader(world.app.sessions, cipher).load_copy(world.copy_ids[recipient])


async def _no_match(actor: Actor, world: LeakWorld, value: str) -> str:
    with pytest.raises(NotFound) as caught:
        await leaks.trace_leak(actor, world.app, value)
    text = str(caught.value)
    assert text.startswith("no copy matches") and "\n" not in text, text
    return text


async def test_typed_codes_find_each_copy_and_no_other(world: LeakWorld) -> None:
    assert len(world.codes) == len(RECIPIENTS) == 10
    for recipient, code in world.codes.items():
        typed = misread(code)
        assert typed != code.lower()
        found = await leaks.trace_leak(AUDITOR, world.app, typed)
        assert [c.recipient for c in found.copies] == [recipient]
        copy = found.copies[0]
        assert (copy.registry, copy.trace_code) == (world.registry, code)
        assert found.recipient_named and found.kind == "code"
        assert [m.registry for m in found.messages] == [world.registry]
        assert found.messages[0].sender == "clerk@tax.mof.gov.example"
        assert found.messages[0].accepted_from == "192.0.2.10"
        assert copy.target == "local" and copy.state == "queued"
        assert [(a.employee, a.protocol) for a in copy.accesses] == [(recipient, "imaps")]
        assert copy.accesses[0].client.startswith("198.51.100.")
        assert copy.forwards == [] and "forwards" in copy.forwards_note


async def test_the_copy_eml_finds_its_recipient(world: LeakWorld, tmp_path: Path) -> None:
    for recipient in RECIPIENTS:
        raw = await _copy_bytes(world, recipient)
        leaked = tmp_path / "leaked.eml"
        leaked.write_bytes(raw)
        found = await leaks.trace_leak(AUDITOR, world.app, str(leaked))
        assert [c.recipient for c in found.copies] == [recipient]
        assert found.kind == "eml" and (found.verified or "").startswith("byte-identical")
    # As a mail client saves it: LF line ends, a header added in front.
    leaked.write_bytes(b"Return-Path: <x@y>\n" + raw.replace(b"\r\n", b"\n"))
    found = await leaks.trace_leak(MOF_ADMIN, world.app, str(leaked))
    assert [c.recipient for c in found.copies] == [RECIPIENTS[-1]]
    assert "1 header line(s) added" in (found.verified or "")


async def test_the_document_lists_every_copy(world: LeakWorld, tmp_path: Path) -> None:
    leaked = tmp_path / "letter.pdf"
    leaked.write_bytes(world.document)
    found = await leaks.trace_leak(AUDITOR, world.app, str(leaked))
    assert found.kind == "document" and not found.recipient_named
    assert "cannot name the recipient" in (found.note or "")
    assert [(m.registry, m.documents) for m in found.messages] == [(world.registry, ["letter.pdf"])]
    assert sorted(c.recipient for c in found.copies) == sorted(RECIPIENTS)
    assert all(len(c.accesses) == 1 for c in found.copies)


async def test_bad_input_matches_nothing(world: LeakWorld, tmp_path: Path) -> None:
    assert "not a trace code" in await _no_match(AUDITOR, world, "hello")
    assert "read 1 way(s)" in await _no_match(AUDITOR, world, "XXXXX-XXXXX")
    other = tmp_path / "other.eml"
    other.write_bytes(b"From: a@b\r\nTo: c@d\r\nSubject: hi\r\nDate: x\r\n\r\nhello\r\n")
    assert "no Barid-Trace header" in await _no_match(AUDITOR, world, str(other))
    raw = await _copy_bytes(world, RECIPIENTS[0])
    other.write_bytes(raw.replace(b"See attached.", b"See detached."))
    assert "not that stored copy" in await _no_match(AUDITOR, world, str(other))
    doc = tmp_path / "nothing.pdf"
    doc.write_bytes(b"%PDF-1.7 nothing")
    assert "no stored document" in await _no_match(AUDITOR, world, str(doc))


async def test_scope(world: LeakWorld, tmp_path: Path) -> None:
    code = world.codes[RECIPIENTS[0]]
    found = await leaks.trace_leak(MOF_ADMIN, world.app, code.lower())  # MOF-TAX is inside MOF
    assert found.copies[0].recipient == RECIPIENTS[0]
    outside = await _no_match(MOH_ADMIN, world, code.lower())
    unknown = await _no_match(AUDITOR, world, "7" * 10)  # the same answer as an unknown code
    assert re.sub(r"'.*' read \d+", "", outside) == re.sub(r"'.*' read \d+", "", unknown)
    leaked = tmp_path / "letter.pdf"
    leaked.write_bytes(world.document)
    await _no_match(MOH_ADMIN, world, str(leaked))
    with pytest.raises(Forbidden):
        await leaks.trace_leak(MOF_REGISTRAR, world.app, code)


async def _token(world: LeakWorld) -> str:
    cipher = BlobCipher(derive_key(world.app.keys.master_key, BLOB_KEK_PURPOSE))
    stored = await MessageReader(world.app.sessions, cipher).message_by_registry(world.registry)
    assert stored is not None
    return stored.token


async def test_photos_that_name_no_copy(world: LeakWorld, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    base = world.app.settings.http.public_url + "/v/"
    token, code = await _token(world), world.codes[RECIPIENTS[0]]

    async def answer(data: bytes, actor: Actor = AUDITOR) -> str:
        photo.write_bytes(data)
        return await _no_match(actor, world, str(photo))

    assert "cannot be read" in await answer(b"\x89PNG\r\n\x1a\n" + b"torn" * 50)
    assert "cannot be read" in await answer(b"\xff\xd8\xff" + b"torn" * 50)
    assert "no QR code found" in await answer(_white_png())
    # No QR code names a copy: the printed trace code is looked for (Tesseract), plainly.
    ocr = "tesseract read no trace code" if shutil.which("tesseract") else "not installed"
    assert ocr in await answer(_white_png())
    assert "not this gateway's verify URL" in await answer(
        qr_png(f"https://elsewhere.example/v/{token}?copy={code}")[0]
    )
    assert "naming no copy" in await answer(qr_png(base + token)[0])
    assert "not a trace code" in await answer(qr_png(f"{base}{token}?copy=hello")[0])
    forged = qr_png(f"{base}AAAA{token[4:]}?copy={code}")[0]
    assert "none of its keys signed" in await answer(forged)
    unknown = await answer(qr_png(f"{base}{token}?copy=77777-77777")[0])
    assert f"names {world.registry} trace code 77777-77777, and no stored copy is that" in unknown
    # The copy's own QR code: found, unless the caller's scope does not hold it.
    photo.write_bytes(qr_png(f"{base}{token}?copy={code}")[0])
    found = await leaks.trace_leak(AUDITOR, world.app, str(photo))
    assert [c.recipient for c in found.copies] == [RECIPIENTS[0]] and found.kind == "photo"
    outside = await answer(photo.read_bytes(), MOH_ADMIN)
    assert outside.replace(code, "77777-77777") == unknown


def _white_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (200, 200), 255).save(out, "PNG")
    return out.getvalue()
