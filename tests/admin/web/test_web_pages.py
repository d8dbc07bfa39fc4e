"""The web admin's pages over real HTTP (uvicorn on a free loopback port): sign-in with
a password and a real TOTP code, refusals in both languages, CSRF on every form,
sign-out and an ended session, the dashboard's figures as a system administrator and
scoped to MOF for an agency administrator, the language switch, and the security
headers of every page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.web.catalogue import word
from testkit.admin_web import (
    MOF_ADMIN,
    PASSWORD,
    SYSTEM_ADMIN,
    WebWorld,
    carry,
    csrf_of,
    sign_in,
    web_world,
)

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


def _client(web: WebWorld) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=web.base, timeout=30)


def _secured(response: httpx.Response) -> httpx.Response:
    headers = response.headers
    assert headers["content-security-policy"] == PAGE_CSP, response.request.url
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    return response


def _html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    _secured(response)
    assert response.headers["content-type"].startswith("text/html")
    assert " style=" not in response.text and "<style" not in response.text
    assert "<script" not in response.text
    return response.text


async def test_sign_in_with_totp_refusals_csrf_and_sign_out(web: WebWorld) -> None:
    async with _client(web) as client:
        first = _secured(await client.get("/admin/"))
        assert first.status_code == 303 and first.headers["location"] == "/admin/dashboard"
        away = _secured(await client.get("/admin/dashboard"))
        assert away.status_code == 303 and away.headers["location"] == "/admin/sign-in"
        page = _html(await client.get("/admin/sign-in"))
        assert '<html lang="ar" dir="rtl">' in page
        assert 'for="address"' in page and 'for="code"' in page and 'href="#main"' in page
        # A wrong code is refused in words that never say whether the account exists.
        refused = await sign_in(client, SYSTEM_ADMIN, "000000")
        text = _html(refused, 401)
        assert word("ar", "signin.refused") in text and "barid_admin" not in refused.cookies
        unknown = _html(
            await sign_in(client, "nobody@moh.gov.example", web.code(SYSTEM_ADMIN)), 401
        )
        assert word("ar", "signin.refused") in unknown
        # A sign-in post without the form's token is refused and signs nobody in.
        bare = {"address": SYSTEM_ADMIN, "password": PASSWORD, "code": web.code(SYSTEM_ADMIN)}
        forged = await client.post("/admin/sign-in", data=bare)
        _html(forged, 403)
        assert "barid_admin" not in forged.cookies
        signed = await sign_in(client, SYSTEM_ADMIN, web.code(SYSTEM_ADMIN))
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == "/admin/dashboard"
        cookie = signed.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        old_session = signed.cookies["barid_admin"]
        board = await client.get("/admin/dashboard")
        csrf = csrf_of(board)
        assert SYSTEM_ADMIN in _html(board)
        # Sign-out without the CSRF field is refused; the session goes on.
        _html(await client.post("/admin/sign-out", data={}), 403)
        _html(await client.post("/admin/sign-out", data={"csrf": "x" * 43}), 403)
        assert (await client.get("/admin/dashboard")).status_code == 200
        out = _secured(await client.post("/admin/sign-out", data={"csrf": csrf}))
        assert out.status_code == 303 and out.headers["location"] == "/admin/sign-in?m=signed-out"
        carry(client, out)
        assert word("ar", "signin.signed_out") in _html(await client.get(out.headers["location"]))
        # The ended session's cookie leads to sign-in, saying the session ended.
        client.cookies.set("barid_admin", old_session)
        again = _secured(await client.get("/admin/dashboard"))
        assert again.headers["location"] == "/admin/sign-in?m=expired"
        expired = _html(await client.get(again.headers["location"]))
        assert word("ar", "signin.expired") in expired
        english = _html(await client.get("/admin/sign-in?m=expired&lang=en"))
        assert word("en", "signin.expired") in english


async def test_dashboard_as_system_admin_and_scoped_for_an_agency_admin(web: WebWorld) -> None:
    async with _client(web) as client:
        assert (await sign_in(client, SYSTEM_ADMIN, web.code(SYSTEM_ADMIN))).status_code == 303
        board = _html(await client.get("/admin/dashboard?lang=en"))
        assert word("en", "dash.per_day_total").format(count=2) in board
        assert "MOF-TAX" in board and ">MOH<" in board
        assert 'id="queue"' in board and 'id="alerts"' in board and 'id="chain"' in board
        assert "verification-spike" in board
        assert "Intact: " in board
        assert board.count('class="bar"') == 30 and "<svg" in board
    async with _client(web) as client:
        assert (await sign_in(client, MOF_ADMIN, web.code(MOF_ADMIN))).status_code == 303
        board = _html(await client.get("/admin/dashboard?lang=en"))
        assert word("en", "dash.per_day_total").format(count=1) in board
        assert "MOF-TAX" in board and "MOH" not in board and "Health" not in board
        assert 'id="queue"' in board
        assert 'id="alerts"' not in board and 'id="chain"' not in board


async def test_arabic_by_default_english_remembered_and_the_api_unchanged(web: WebWorld) -> None:
    async with _client(web) as client:
        assert '<html lang="ar" dir="rtl">' in _html(await client.get("/admin/sign-in"))
        chosen = await client.get("/admin/sign-in?lang=en")
        assert '<html lang="en" dir="ltr">' in _html(chosen)
        assert 'href="/admin/sign-in?lang=ar"' in chosen.text
        carry(client, chosen)
        assert '<html lang="en" dir="ltr">' in _html(await client.get("/admin/sign-in"))
        back = await client.get("/admin/sign-in?lang=ar")
        carry(client, back)
        assert '<html lang="ar" dir="rtl">' in _html(await client.get("/admin/sign-in"))
        css = _secured(await client.get("/admin/static/admin.css"))
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "Noto Naskh Arabic" in css.text
        assert (await client.get("/admin/static/../words.yaml")).status_code == 404
        api = await client.get("/api/v1/whoami")
        assert api.status_code == 401
        assert (
            api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        )
        document = (await client.get("/api/v1/openapi.json")).json()
        assert not [path for path in document["paths"] if path.startswith("/admin")]
