"""The account page over real HTTP: one's own TOTP enrolment (a QR image and the
secret shown once, confirmed with a real code, new recovery codes), refused
without the CSRF field, a wrong code refused; nothing about anyone else."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest

from admin.web.catalogue import word
from testkit.admin_web import MOF_ADMIN, WebWorld, csrf_of, sign_in, web_world


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


async def test_enrol_confirm_and_new_recovery_codes(web: WebWorld) -> None:
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as client:
        assert (await sign_in(client, MOF_ADMIN, web.code(MOF_ADMIN))).status_code == 303
        page = await client.get("/admin/account?lang=en")
        assert page.status_code == 200 and word("en", "account.state.confirmed") in page.text
        assert 'href="/admin/account"' in page.text
        csrf = csrf_of(page)
        assert (await client.post("/admin/account/enrol", data={})).status_code == 403
        enrolled = await client.post("/admin/account/enrol", data={"csrf": csrf})
        assert enrolled.status_code == 200 and enrolled.headers["cache-control"] == "no-store"
        assert 'src="data:image/png;base64,' in enrolled.text
        found = re.search(r'id="secret">([A-Z2-7]+)<', enrolled.text)
        assert found, enrolled.text
        secret = found.group(1)
        assert len(re.findall(r"<li><code>", enrolled.text)) == 10
        wrong = await client.post("/admin/account/confirm", data={"csrf": csrf, "code": "000000"})
        assert wrong.status_code == 422 and "does not match" in wrong.text
        right = await client.post(
            "/admin/account/confirm", data={"csrf": csrf, "code": pyotp.TOTP(secret).now()}
        )
        assert (
            right.status_code == 303
            and right.headers["location"] == "/admin/account?done=confirmed"
        )
        done = await client.get(right.headers["location"] + "&lang=en")
        assert word("en", "account.confirmed") in done.text and secret not in done.text
        codes = await client.post("/admin/account/recovery-codes", data={"csrf": csrf})
        assert codes.status_code == 200 and len(re.findall(r"<li><code>", codes.text)) == 10
