"""The admin API on a running gateway's admin listener, over real HTTPS: sign-in with
a password and a real TOTP code, the session cookie and its CSRF header, role grants
and API tokens in and out of an agency administrator's scope, every change audited."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from admin.api.wiring import admin_app_for
from admin.context import open_app
from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor
from admin.services.audit import verify_chain
from gateway.config import load_settings
from testkit.gateway import EPHEMERAL_ENV, Live, running

ADMIN = "director@cab.gov.example"  # the demo's system-admin, signs in with TOTP
MOF_ADMIN = "minister@mof.gov.example"  # agency-admin of MOF (and MOF-BUD below it)
CLI = Actor.local_cli()


async def _prepare(data: Path) -> dict[str, str]:
    """Grants and TOTP enrolment as the CLI would make them; the TOTP secrets."""
    settings = load_settings(data / "barid.toml", environ=EPHEMERAL_ENV)
    async with open_app(settings) as app:
        services = AccountServices.build(app.sessions, AccountKeys.from_gateway(app.keys))
        await services.grants.grant(CLI, MOF_ADMIN, "agency-admin", agency="MOF")
        # `barid demo` made ADMIN its administrator, with a confirmed TOTP secret.
        made = json.loads((data / "demo" / "administrator.json").read_text(encoding="utf-8"))
        assert made["address"] == ADMIN and made["role"] == "system-admin"
        secrets = {ADMIN: made["totp_secret"]}
        for address in (MOF_ADMIN,):
            enrolment = await services.two_factor.enrol(CLI, address)
            secret = enrolment.uri.split("secret=")[1].split("&")[0]
            # Confirmed with the previous time-step's code (one step of drift is allowed),
            # so the current code is still unused for the sign-in below.
            previous = pyotp.TOTP(secret).at(time.time() - 30)
            await services.two_factor.confirm(CLI, address, previous)
            secrets[address] = secret
    return secrets


@pytest.fixture
async def admin_live(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[tuple[Live, dict[str, str]]]:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    secrets = await _prepare(data)
    async with running(data, credentials, admin_app=admin_app_for) as live:
        yield live, secrets


def _client(live: Live) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{live.gateway.admin_port}", verify=live.tls, timeout=20
    )


async def _sign_in(client: httpx.AsyncClient, live: Live, address: str, secret: str,
                   code: str | None = None) -> httpx.Response:  # fmt: skip
    body = {"address": address, "password": live.credentials[address]["password"],
            "code": code or pyotp.TOTP(secret).now()}  # fmt: skip
    return await client.post("/api/v1/session", json=body)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


async def test_sign_in_session_csrf_tokens_and_sign_out(
    admin_live: tuple[Live, dict[str, str]],
) -> None:
    live, secrets = admin_live
    async with _client(live) as client:
        _problem(await client.get("/api/v1/whoami"), 401)
        signed = await _sign_in(client, live, ADMIN, secrets[ADMIN])
        assert signed.status_code == 200, signed.text
        cookie = signed.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        csrf = signed.json()["csrf_token"]
        who = (await client.get("/api/v1/whoami")).json()
        assert who == {"account": ADMIN, "role": "system-admin", "agency": None}
        # The same code again (a replay) is refused, even with the right password.
        async with _client(live) as other:
            code = pyotp.TOTP(secrets[ADMIN]).now()
            _problem(await _sign_in(other, live, ADMIN, secrets[ADMIN], code="000000"), 401)
            _problem(await _sign_in(other, live, ADMIN, secrets[ADMIN], code=code), 401)
        # A change through the cookie needs the CSRF header.
        wanted = {"name": "nightly export", "role": "security-auditor", "expires_days": 7}
        _problem(await client.post("/api/v1/tokens", json=wanted), 403)
        made = await client.post("/api/v1/tokens", json=wanted, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        secret, token_id = made.json()["secret"], made.json()["token"]["id"]
        listed = (await client.get("/api/v1/tokens")).json()
        assert [t["id"] for t in listed] == [token_id] and "secret" not in listed[0]
        # Sign-out ends the session; the cookie no longer works.
        out = await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        client.cookies.set("barid_admin", signed.cookies["barid_admin"])
        _problem(await client.get("/api/v1/whoami"), 401)
    async with _client(live) as robot:
        bearer = {"Authorization": f"Bearer {secret}"}
        who = (await robot.get("/api/v1/whoami", headers=bearer)).json()
        assert who["role"] == "security-auditor"
        # The auditor reads but changes nothing.
        _problem(await robot.post("/api/v1/tokens", json=wanted, headers=bearer), 403)
    settings = live.gateway.settings
    async with open_app(settings) as app:
        assert (await verify_chain(CLI, app)).ok


async def test_an_agency_admin_acts_only_inside_its_subtree(
    admin_live: tuple[Live, dict[str, str]],
) -> None:
    live, secrets = admin_live
    async with _client(live) as client:
        signed = await _sign_in(client, live, MOF_ADMIN, secrets[MOF_ADMIN])
        assert signed.status_code == 200, signed.text
        csrf = {"X-CSRF-Token": signed.json()["csrf_token"]}
        inside = {"address": "budget.director@mof.gov.example", "role": "registrar",
                  "agency": "MOF-BUD"}  # fmt: skip
        made = await client.post("/api/v1/admins", json=inside, headers=csrf)
        assert made.status_code == 201, made.text
        outside = {"address": "clerk@moh.gov.example", "role": "registrar", "agency": "MOH"}
        _problem(await client.post("/api/v1/admins", json=outside, headers=csrf), 404)
        above = {"address": "clerk@mof.gov.example", "role": "system-admin"}
        _problem(await client.post("/api/v1/admins", json=above, headers=csrf), 403)
        seen = {(g["address"], g["agency"]) for g in (await client.get("/api/v1/admins")).json()}
        assert ("budget.director@mof.gov.example", "MOF-BUD") in seen
        assert all(agency in {"MOF", "MOF-BUD"} for _, agency in seen), seen
        assert ADMIN not in {address for address, _ in seen}


async def test_the_admin_listener_speaks_tls_only_and_the_public_one_no_admin(
    admin_live: tuple[Live, dict[str, str]],
) -> None:
    live, secrets = admin_live
    reader, writer = await asyncio.open_connection("127.0.0.1", live.gateway.admin_port)
    writer.write(b"GET /api/v1/whoami HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(100), 10)
    assert not answer.startswith(b"HTTP/1.1 200")
    writer.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.gateway.http_port}",
                                 timeout=20) as public:  # fmt: skip
        for path in ("/api/v1/whoami", "/api/v1/admins", "/api/v1/tokens", "/metrics"):
            assert (await public.get(path)).status_code == 404
        assert (await public.post("/api/v1/session", json={})).status_code in {404, 405}
    async with _client(live) as client:
        _problem(await client.get("/metrics"), 401)  # a scraper needs a token
        signed = await _sign_in(client, live, ADMIN, secrets[ADMIN])
        assert signed.status_code == 200, signed.text
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "barid_up 1.0" in scraped.text and "barid_health_checks_total" in scraped.text
        assert 'barid_directory_entries{kind="agencies"}' in scraped.text
        document = (await client.get("/api/v1/openapi.json")).json()
        assert {"/api/v1/session", "/api/v1/admins", "/api/v1/tokens"} <= set(document["paths"])
    assert isinstance(live.tls, ssl.SSLContext)
