"""The dashboard's copies by delivery state (last 30 days, scoped like every
figure) and the gateway's TLS certificate and keys with their expiry (days left,
highlighted under 30 days; shown only to unscoped roles), in the service and on
the page over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.services import dashboard
from admin.services.actor import Actor, Role
from admin.web.catalogue import word
from keys import expiry
from keys.tls import ensure_dev_certificate
from testkit.admin_web import CLI, MOF_ADMIN, SYSTEM_ADMIN, WebWorld, web_world
from testkit.admin_web_roles import AUDITOR, add_person, signed_in_as


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        await add_person(world, AUDITOR, "security-auditor", None)
        yield world


def html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert " style=" not in response.text and "<script" not in response.text
    return response.text


def _certificate(web: WebWorld) -> expiry.Credential:
    """The gateway's TLS certificate (the development one made if there is none)."""
    settings = web.served.world.app.settings
    ensure_dev_certificate(settings.tls_cert, settings.tls_key, "gateway.example")
    found = expiry.tls_certificate(settings.tls_cert)
    assert found is not None
    return found


async def test_copies_by_state_and_credentials_in_the_service(
    web: WebWorld, tmp_path: Path
) -> None:
    app = web.served.world.app
    cert = _certificate(web)
    assert cert.not_after is not None
    figures = await dashboard.dashboard(CLI, app)
    assert [c.state for c in figures.copies] == list(dashboard.COPY_STATES)
    assert sum(c.count for c in figures.copies) == 2
    assert figures.credentials is not None
    tls, *held = figures.credentials
    assert (tls.kind, tls.name, tls.readable) == ("tls", cert.name, True)
    left = (cert.not_after - dt.datetime.now(dt.UTC)).days
    assert tls.days_left is not None and abs(tls.days_left - left) <= 1
    assert tls.soon == (left < 30)
    assert [k.kind for k in held] == ["signing", "dkim-rsa", "dkim-ed25519"]
    assert held[0].name == app.keys.signing_key_id
    assert all(k.not_after is None and not k.soon and k.since for k in held)
    # Ten days before the end: highlighted; after it: negative days, highlighted.
    later = dashboard.credentials(app, cert.not_after - dt.timedelta(days=10, hours=1))[0]
    assert later.soon and later.days_left == 10
    gone = dashboard.credentials(app, cert.not_after + dt.timedelta(days=2))[0]
    assert gone.soon and gone.days_left is not None and gone.days_left < 0
    assert expiry.tls_certificate(tmp_path / "missing.pem") is None
    (tmp_path / "bad.pem").write_text("not a certificate")
    assert expiry.tls_certificate(tmp_path / "bad.pem") is None
    # A scoped role: its subtree's copies only, and no credentials.
    mof = Actor(account=MOF_ADMIN, role=Role.AGENCY_ADMIN, agency="MOF", client="test",
                channel="test")  # fmt: skip
    scoped = await dashboard.dashboard(mof, app)
    assert sum(c.count for c in scoped.copies) == 1 and scoped.credentials is None


async def test_dashboard_page_shows_copies_and_expiry(web: WebWorld) -> None:
    cert = _certificate(web)
    assert cert.not_after is not None
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        board = html(await client.get("/admin/dashboard?lang=en"))
        assert 'id="copies"' in board and word("en", "state.queued") in board
        assert 'id="credentials"' in board and word("en", "cred.tls") in board
        assert cert.name in board and word("en", "cred.dkim-rsa") in board
        assert cert.not_after.date().isoformat() in board
        assert word("en", "dash.no_expiry") in board
        arabic = html(await client.get("/admin/dashboard?lang=ar"))
        assert word("ar", "dash.credentials") in arabic
    async with signed_in_as(web, AUDITOR) as client:
        board = html(await client.get("/admin/dashboard?lang=en"))
        assert 'id="credentials"' in board and 'id="copies"' in board
    async with signed_in_as(web, MOF_ADMIN) as client:
        board = html(await client.get("/admin/dashboard?lang=en"))
        assert 'id="copies"' in board and 'id="credentials"' not in board
        assert word("en", "cred.tls") not in board
