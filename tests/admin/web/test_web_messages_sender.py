"""Message search by sender over real HTTP and in the service: a sender's newest
messages, newest first and at most 50; a scoped role lists only messages issued
inside its subtree (an outside sender's messages are simply not there); a bad
address is refused (422); the search form needs its CSRF field."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.services import messages
from admin.services.errors import InvalidInput
from admin.web.catalogue import word
from testkit.admin_use_cases import MOH_DOCTOR, TAX_CLERK
from testkit.admin_web import CLI, MOF_ADMIN, SYSTEM_ADMIN, WebWorld, web_world
from testkit.admin_web_roles import AUDITOR, add_person, signed_in_as
from testkit.leak_world import accept_message


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        await add_person(world, AUDITOR, "security-auditor", None)
        yield world


def html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert " style=" not in response.text and "<script" not in response.text
    return response.text


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, text
    return found.group(1)


async def test_service_lists_a_senders_newest_messages(web: WebWorld) -> None:
    app = web.served.world.app
    tax, moh = web.served.world.tax_message, web.served.world.moh_message
    newer, codes = await accept_message(app, b"%PDF-1.7 newer")  # sent by TAX_CLERK
    listed = await messages.sender_messages(CLI, app, f" {TAX_CLERK.upper()} ")
    assert [m.registry for m in listed] == [newer, tax]
    assert listed[0].agency == "MOF-TAX" and listed[0].status == "valid"
    assert (listed[0].copies, listed[1].copies) == (len(codes), 1)
    assert [m.registry for m in await messages.sender_messages(CLI, app, MOH_DOCTOR)] == [moh]
    assert len(await messages.sender_messages(CLI, app, TAX_CLERK, limit=1)) == 1
    assert await messages.sender_messages(CLI, app, "nobody@mof.gov.example") == []
    for bad in ("", "not an address", "x@", "@y", "a" * 330 + "@x.example"):
        with pytest.raises(InvalidInput):
            await messages.sender_messages(CLI, app, bad)


async def test_search_by_sender_page_and_scope(web: WebWorld) -> None:
    tax, moh = web.served.world.tax_message, web.served.world.moh_message
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        search = html(await client.get("/admin/messages?lang=en"))
        assert 'for="sender"' in search and 'value="sender"' in search
        csrf = csrf_of(search)
        found = await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "sender", "value": MOH_DOCTOR.upper()})  # fmt: skip
        assert found.status_code == 303
        assert found.headers["location"] == f"/admin/messages?sender={MOH_DOCTOR.upper()}"
        listed = html(await client.get(found.headers["location"]))
        assert f'href="/admin/messages/{moh}"' in listed and 'id="sender-result"' in listed
        assert tax not in listed
        bad = html(await client.get("/admin/messages?sender=nope&lang=en"), 422)
        assert word("en", "page.invalid") in bad
        no_csrf = await client.post("/admin/messages/find", data={
            "by": "sender", "value": MOH_DOCTOR})  # fmt: skip
        html(no_csrf, 403)
    async with signed_in_as(web, MOF_ADMIN) as client:
        outside = html(await client.get(f"/admin/messages?sender={MOH_DOCTOR}&lang=en"))
        assert moh not in outside and word("en", "msg.sender_none") in outside
        inside = html(await client.get(f"/admin/messages?sender={TAX_CLERK}"))
        assert f'href="/admin/messages/{tax}"' in inside
    async with signed_in_as(web, AUDITOR) as client:
        listed = html(await client.get(f"/admin/messages?sender={TAX_CLERK}"))
        assert f'href="/admin/messages/{tax}"' in listed and "revoke" not in listed
