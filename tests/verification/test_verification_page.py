"""The public verification page (GET /v/{token}, GET/POST /v/check) on a running
gateway: every status in Arabic and English, escaping, minimal disclosure, the
security headers, the document check form, and what a phone's browser shows
(headless Chromium: the text it renders and phone-sized screenshots)."""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from gateway.http.app import build_app
from gateway.verification import VerificationService
from testkit.metrics import exposition
from testkit.pages import (
    HOSTILE_NAME,
    HTTP_STATUS,
    REVOKED_DOCUMENT,
    REVOKED_REASON,
    STATUS_WORDS,
    VALID_DOCUMENT,
    Letters,
    prepare_letters,
)
from testkit.verification import MOF, MOH, client

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"
CHROMIUM_TIMEOUT = 30.0


def assert_page(response: httpx.Response, status: int, lang: str) -> str:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    direction = "rtl" if lang == "ar" else "ltr"
    assert f'<html lang="{lang}" dir="{direction}">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page and "src=" not in page and "http://" not in page
    other = ("?lang=en", ">English<") if lang == "ar" else ("?lang=ar", ">العربية<")
    assert all(part in page for part in other)
    form = '<form method="post" action="/v/check'
    assert form in page and 'enctype="multipart/form-data"' in page
    assert f'<input type="hidden" name="lang" value="{lang}">' in page
    assert '<input type="file" name="file"' in page
    return page


async def test_page_for_every_status_in_both_languages(live: Any, gnupghome: Path) -> None:
    letters = await prepare_letters(live, gnupghome)
    async with client(live) as http:
        pages: dict[tuple[str, str], str] = {}
        for status, token in letters.tokens.items():
            for lang in ("ar", "en"):
                query = "?lang=en" if lang == "en" else ""
                response = await http.get(f"/v/{token}{query}")
                page = assert_page(response, HTTP_STATUS[status], lang)
                assert html.escape(STATUS_WORDS[status, lang]) in page, (status, lang)
                pages[status, lang] = page
        # Arabic is the default; anything but "en" is Arabic.
        assert (await http.get(f"/v/{letters.tokens['valid']}?lang=xx")).text == pages[
            "valid", "ar"
        ]

        sha = hashlib.sha256(VALID_DOCUMENT).hexdigest()
        valid_ar, valid_en = pages["valid", "ar"], pages["valid", "en"]
        for page in (valid_ar, valid_en):
            assert f'<bdi dir="ltr">{letters.valid_registry}</bdi>' in page
            assert f"<code>{sha}</code>" in page
            assert "2026-" in page and " UTC</bdi>" in page
            assert html.escape(HOSTILE_NAME) in page and HOSTILE_NAME not in page
        assert "وزارة الصحة" in valid_ar and "كريم عباس" in valid_ar
        assert "تاريخ الإصدار (بالتوقيت العالمي UTC)" in valid_ar
        assert "Ministry of Health" in valid_en and "Karim Abbas" in valid_en
        assert "Issued (UTC)" in valid_en and "SHA-256" in valid_en
        assert "It does not prove what your copy says" in valid_en
        assert "ولا تثبت محتوى النسخة التي بين يديك" in valid_ar

        revoked_en = pages["revoked", "en"]
        assert letters.revoked_registry in revoked_en
        assert "2026-04-01 08:15:30 UTC" in revoked_en
        assert html.escape(REVOKED_REASON) in revoked_en and REVOKED_REASON not in revoked_en
        assert hashlib.sha256(REVOKED_DOCUMENT).hexdigest() in revoked_en
        assert "سبب الإلغاء" in pages["revoked", "ar"]

        # Unknown and forged pages repeat none of the token's claims.
        for status in ("unknown", "forged"):
            for lang in ("ar", "en"):
                page = pages[status, lang]
                for claim in ("MOH", "/2026/", "424242", "Ministry", "وزارة", "Karim",
                              letters.valid_registry, sha, "2026-03-01"):  # fmt: skip
                    assert claim not in page, (status, lang, claim)

        # Minimal disclosure: no addresses, subject, message text or recipients.
        for page in pages.values():
            for secret in ("@", MOH, MOF, "Official letter", "letter text", "Trace", "تتبّع"):
                assert secret not in page

        # Garbage and a too long token are forged, shown escaped; "check" is no token.
        for token in ("NOT-A-TOKEN", "A" * 5000, "%3Cb%3Ex"):
            response = await http.get(f"/v/{token}?lang=en")
            page = assert_page(response, 400, "en")
            assert "Forged or damaged" in page and "<b>x" not in page

        # The routes are counted by template, never by token.
        metrics = exposition()
        assert 'route="/v/{token}"' in metrics
        for token in letters.tokens.values():
            assert token not in metrics and token[:40] not in metrics


async def test_document_check_form_round_trip(live: Any, gnupghome: Path) -> None:
    letters = await prepare_letters(live, gnupghome)
    async with client(live) as http:
        blank = assert_page(await http.get("/v/check?lang=en"), 200, "en")
        assert "Check a document" in blank

        for lang, words in (("ar", ("الوثيقة مطابقة", "سارية")), ("en", ("Document matches", "valid"))):  # fmt: skip
            response = await http.post(
                "/v/check",
                data={"lang": lang},
                files={"file": ("decree.pdf", VALID_DOCUMENT, "application/pdf")},
            )
            page = assert_page(response, 200, lang)
            assert all(word in page for word in words)
            assert f'<bdi dir="ltr">{letters.valid_registry}</bdi>' in page
            assert hashlib.sha256(VALID_DOCUMENT).hexdigest() in page
            assert "@" not in page and HOSTILE_NAME not in page and "decree" not in page

        revoked = await http.post("/v/check", data={"lang": "en"},
                                  files={"file": ("c.pdf", REVOKED_DOCUMENT)})  # fmt: skip
        page = assert_page(revoked, 200, "en")
        assert letters.revoked_registry in page and "<td>revoked</td>" in page

        changed = bytearray(VALID_DOCUMENT)
        changed[100] ^= 1
        for lang, words in (("ar", "لا توجد مطابقة"), ("en", "No match")):
            response = await http.post("/v/check", data={"lang": lang},
                                       files={"file": ("decree.pdf", bytes(changed))})  # fmt: skip
            page = assert_page(response, 200, lang)
            assert words in page and letters.valid_registry not in page
            assert hashlib.sha256(changed).hexdigest() in page

        empty = await http.post("/v/check", data={"lang": "en"}, files={"file": ("e.pdf", b"")})
        assert "No file was sent" in assert_page(empty, 400, "en")
        broken = await http.post("/v/check", content=b"--x\r\nnonsense",
                                 headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
        assert_page(broken, 400, "ar")

        metrics = exposition()
        assert 'route="/v/check"' in metrics


async def test_check_size_limit_and_optional_routes(live: Any) -> None:
    keys = live.gateway_keys
    service = VerificationService(live.gateway.sessions, keys.verification_keys,
                                  current_key_id=keys.signing_key_id)  # fmt: skip
    app = build_app(live.gateway.engine, verification=service, max_document_bytes=1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gateway") as http:  # fmt: skip
        declared = await http.post("/v/check?lang=en", content=b"x" * 2000,
                                   headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
        assert "larger than allowed" in assert_page(declared, 413, "en")
        upload = await http.post("/v/check", data={"lang": "en"},
                                 files={"file": ("a.pdf", b"z" * 2000)})  # fmt: skip
        assert_page(upload, 413, "ar")  # refused before the lang field was read
        fits = await http.post("/v/check", data={"lang": "en"}, files={"file": ("a", b"z" * 10)})
        assert "No match" in assert_page(fits, 200, "en")

    # Without a verification service there is no page.
    plain = httpx.ASGITransport(app=build_app(live.gateway.engine))
    async with httpx.AsyncClient(transport=plain, base_url="http://gateway") as http:
        assert (await http.get("/v/ABCDEF")).status_code == 404
        assert (await http.get("/v/check")).status_code == 404


# ---------------------------------------------------------------- headless Chromium


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False,
    )  # fmt: skip


def _visible_text(dom: str) -> str:
    body = dom.split("<body", 1)[-1]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


async def test_pages_in_headless_chromium(
    live: Any, gnupghome: Path, need_tool: Callable[[str], str], tmp_path: Path
) -> None:
    chromium = need_tool("chromium")
    letters: Letters = await prepare_letters(live, gnupghome)
    base = f"http://127.0.0.1:{live.gateway.http_port}"
    limit = asyncio.Semaphore(4)
    shots: list[Path] = []

    async def look(status: str, lang: str, token: str) -> None:
        url = f"{base}/v/{token}?lang={lang}"
        profile = tmp_path / f"profile-{status}-{lang}"
        png = tmp_path / f"verify-{status}-{lang}.png"
        async with limit:
            dom = await asyncio.to_thread(_chromium, chromium, profile, "--dump-dom", url)
            shot = await asyncio.to_thread(_chromium, chromium, profile,
                                           f"--screenshot={png}", "--window-size=412,915", url)  # fmt: skip
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
        shown = _visible_text(dom.stdout)
        assert STATUS_WORDS[status, lang] in shown, (status, lang, shown[:500])
        if status in ("valid", "revoked"):
            registry = letters.valid_registry if status == "valid" else letters.revoked_registry
            assert registry in shown
            agency = "وزارة الصحة" if lang == "ar" else "Ministry of Health"
            assert agency in shown and "(MOH)" in shown.replace(" ", "")
            assert "UTC" in shown
        else:
            assert "MOH" not in shown and "/2026/" not in shown
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size == (412, 915), image.size
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 16, (status, lang)
        shots.append(png)

    await asyncio.gather(
        *(look(status, lang, token) for status, token in letters.tokens.items()
          for lang in ("ar", "en"))
    )  # fmt: skip
    for png in sorted(shots):
        print(f"screenshot: {png}")
    assert len(shots) == 8
