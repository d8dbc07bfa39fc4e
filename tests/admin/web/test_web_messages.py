"""The web admin's message-tracking pages over real HTTP: search by registry number
and by a typed trace code, every copy of a message with its state and receipts,
revocation with a reason and a confirmation step (audited; verification then says
revoked); CSRF on every form; MOF's agency administrator sees and revokes only
MOF's messages (anything else answers 404 and changes nothing); an auditor has
no revocation control and its forged revocation answers 403 and changes nothing."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.services import messages
from admin.web.catalogue import word
from testkit.admin_web import CLI, MOF_ADMIN, SYSTEM_ADMIN, WebWorld, web_world
from testkit.admin_web_roles import AUDITOR, MOF_REGISTRAR, add_person, signed_in_as
from testkit.leak_world import accept_message, misread


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        await add_person(world, AUDITOR, "security-auditor", None)
        await add_person(world, MOF_REGISTRAR, "registrar", "MOF")
        yield world


def html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert " style=" not in response.text and "<script" not in response.text
    return response.text


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, text
    return found.group(1)


async def status(web: WebWorld, registry: str) -> str:
    return (await messages.show_message(CLI, web.served.world.app, registry)).status


async def test_search_track_and_revoke_with_confirmation(web: WebWorld) -> None:
    tax = web.served.world.tax_message
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        search = html(await client.get("/admin/messages"))
        assert 'href="/admin/messages"' in search and 'for="registry"' in search
        assert 'for="code"' in search
        csrf = csrf_of(search)
        found = await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "registry", "value": f" {tax.lower()} "})  # fmt: skip
        assert found.status_code == 303 and found.headers["location"] == f"/admin/messages/{tax}"
        bad = html(await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "registry", "value": "not a number"}), 422)  # fmt: skip
        assert word("en", "msg.bad_registry") in bad
        page = html(await client.get(f"/admin/messages/{tax}"))
        assert SYSTEM_ADMIN in page and "MOF-TAX" in page and 'id="copies"' in page
        assert word("en", "state.queued") in page and word("en", "receipt.acceptance") in page
        assert 'for="reason"' in page and "a subject never shown" not in page
        html(await client.get("/admin/messages/NOPE/2026/999999"), 404)
        html(await client.get("/admin/messages/..%2Fetc"), 404)
        # The first post asks for confirmation and changes nothing.
        action = f"/admin/messages/{tax}/revoke"
        asked = html(await client.post(action, data={"csrf": csrf, "reason": "Sent in error"}))
        assert word("en", "msg.confirm") in asked and 'name="confirm" value="yes"' in asked
        assert await status(web, tax) == "valid"
        empty = html(await client.post(action, data={"csrf": csrf, "reason": " ", "confirm": "yes"}),
                     422)  # fmt: skip
        assert word("en", "msg.bad_reason") in empty and await status(web, tax) == "valid"
        html(await client.post(action, data={"reason": "x", "confirm": "yes"}), 403)
        assert await status(web, tax) == "valid"
        done = await client.post(action, data={
            "csrf": csrf, "reason": "Sent in error", "confirm": "yes"})  # fmt: skip
        assert done.status_code == 303
        assert done.headers["location"] == f"/admin/messages/{tax}?m=revoked"
        shown = html(await client.get(done.headers["location"]))
        assert word("en", "msg.revoked_now") in shown and "Sent in error" in shown
        assert 'for="reason"' not in shown and await status(web, tax) == "revoked"


async def test_trace_code_leads_to_the_message(web: WebWorld) -> None:
    registry, codes = await accept_message(web.served.world.app, b"%PDF-1.7 " + os.urandom(32))
    recipient, code = sorted(codes.items())[0]
    async with signed_in_as(web, MOF_ADMIN) as client:
        csrf = csrf_of(html(await client.get("/admin/messages")))
        found = html(await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "code", "value": code.lower()}))  # fmt: skip
        assert f'href="/admin/messages/{registry}"' in found and recipient in found
        none = html(await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "code", "value": "/etc/passwd"}), 404)  # fmt: skip
        assert word("en", "page.not_found") in none
    async with signed_in_as(web, AUDITOR) as client:
        csrf = csrf_of(html(await client.get("/admin/messages")))
        found = html(await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "code", "value": misread(code)}))  # fmt: skip
        assert f'href="/admin/messages/{registry}"' in found
    async with signed_in_as(web, MOF_REGISTRAR) as client:
        search = html(await client.get("/admin/messages"))
        assert 'for="code"' not in search and 'for="registry"' in search
        refused = await client.post("/admin/messages/find", data={
            "csrf": csrf_of(search), "by": "code", "value": code})  # fmt: skip
        html(refused, 403)


async def test_scope_and_roles_refuse_and_change_nothing(web: WebWorld) -> None:
    tax, moh = web.served.world.tax_message, web.served.world.moh_message
    async with signed_in_as(web, MOF_ADMIN) as client:
        page = html(await client.get(f"/admin/messages/{tax}"))
        csrf = csrf_of(page)
        assert 'for="reason"' in page
        assert word("en", "page.not_found") in html(await client.get(f"/admin/messages/{moh}"), 404)
        forged = await client.post(f"/admin/messages/{moh}/revoke", data={
            "csrf": csrf, "reason": "forged", "confirm": "yes"})  # fmt: skip
        html(forged, 404)
        assert await status(web, moh) == "valid"
        found = await client.post("/admin/messages/find", data={
            "csrf": csrf, "by": "registry", "value": moh})  # fmt: skip
        html(await client.get(found.headers["location"]), 404)
    async with signed_in_as(web, MOF_REGISTRAR) as client:
        page = html(await client.get(f"/admin/messages/{tax}"))
        assert 'for="reason"' in page
        html(await client.get(f"/admin/messages/{moh}"), 404)
    async with signed_in_as(web, AUDITOR) as client:
        page = html(await client.get(f"/admin/messages/{moh}"))
        assert 'for="reason"' not in page and "/revoke" not in page
        for confirm in ("", "yes"):
            forged = await client.post(f"/admin/messages/{moh}/revoke", data={
                "csrf": csrf_of(page), "reason": "forged", "confirm": confirm})  # fmt: skip
            assert word("en", "page.forbidden") in html(forged, 403)
        assert await status(web, moh) == "valid"
