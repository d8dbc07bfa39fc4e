"""The web admin's routing policy pages over real HTTP: the running version, the
editor (check lists every problem by line and applies nothing; apply makes a new,
audited version and redirects to it), history with the diff against the version
before, explain, case tables and audit-mode hits; CSRF on every form; an auditor
sees everything without the apply control and its forged apply is refused (403)
and changes nothing; an agency administrator of MOF reaches none of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.services import policy_versions
from admin.web.catalogue import word
from gateway.store import audit
from testkit.admin_policies import BROKEN, CASES, CHANGED, POLICY
from testkit.admin_web import CLI, MOF_ADMIN, SYSTEM_ADMIN, WebWorld, web_world
from testkit.admin_web_roles import AUDITOR, add_person, signed_in_as


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        await add_person(world, AUDITOR, "security-auditor", None)
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


async def versions(web: WebWorld) -> list[int]:
    found = await policy_versions.policy_history(CLI, web.served.world.app)
    return [v.id for v in found]


async def audit_count(web: WebWorld) -> int:
    async with web.served.world.app.sessions() as session:
        return await audit.chain_length(session)


async def test_check_lists_problems_by_line_and_apply_makes_a_version(web: WebWorld) -> None:
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        home = html(await client.get("/admin/policy?lang=en"))
        assert word("en", "policy.none_yet") in home
        assert 'value="apply"' in home and 'for="text"' in home
        csrf = csrf_of(home)
        # Check: every problem with its line; nothing applied.
        checked = html(await client.post("/admin/policy", data={
            "csrf": csrf, "text": BROKEN, "action": "check"}))  # fmt: skip
        lines = {int(n) for n in re.findall(r'<td class="num">(\d+)</td>', checked)}
        assert {4, 6, 7} <= lines, checked
        assert "NOPE" in checked and await versions(web) == []
        # Apply refuses an invalid text with every problem, the text kept; nothing written.
        refused = html(await client.post("/admin/policy", data={
            "csrf": csrf, "text": BROKEN, "action": "apply"}), 422)  # fmt: skip
        assert word("en", "policy.apply_refused") in refused and "alow" in refused
        assert await versions(web) == []
        # A form without its CSRF field is refused, nothing applied.
        html(await client.post("/admin/policy", data={"text": POLICY, "action": "apply"}), 403)
        assert await versions(web) == []
        ok = html(await client.post("/admin/policy", data={
            "csrf": csrf, "text": POLICY, "action": "check"}))  # fmt: skip
        assert word("en", "policy.check_ok").split(" SHA")[0] in ok and await versions(web) == []
        before = await audit_count(web)
        applied = await client.post("/admin/policy", data={
            "csrf": csrf, "text": POLICY.replace("\n", "\r\n"), "action": "apply"})  # fmt: skip
        assert applied.status_code == 303, applied.text
        [first] = await versions(web)
        assert applied.headers["location"] == f"/admin/policy/versions/{first}?m=applied"
        assert await audit_count(web) == before + 1
        shown = html(await client.get(applied.headers["location"]))
        assert word("en", "policy.applied").format(id=first) in shown
        assert word("en", "policy.first_version") in shown and "finance-to-health" in shown
        home = html(await client.get("/admin/policy"))
        assert f'href="/admin/policy/versions/{first}"' in home and SYSTEM_ADMIN in home
        running = await policy_versions.policy_version(CLI, web.served.world.app)
        assert running.text == POLICY and running.sha256 in home
        # The same text again writes nothing; a change is a new version with its diff.
        again = await client.post("/admin/policy", data={
            "csrf": csrf, "text": POLICY, "action": "apply"})  # fmt: skip
        assert again.headers["location"].endswith("?m=unchanged")
        second = await client.post("/admin/policy", data={
            "csrf": csrf, "text": CHANGED, "action": "apply"})  # fmt: skip
        assert second.status_code == 303
        newest = (await versions(web))[0]
        diff = html(await client.get(f"/admin/policy/versions/{newest}"))
        assert '<span class="del">-  - id: finance-to-health</span>' in diff
        assert '<span class="add">+  - id: tax-to-health</span>' in diff
        history = html(await client.get("/admin/policy/versions"))
        assert history.count('href="/admin/policy/versions/') == 2
        html(await client.get("/admin/policy/versions/999999"), 404)
        html(await client.get("/admin/policy/versions/nope"), 404)


async def test_explain_cases_and_hits(web: WebWorld) -> None:
    await policy_versions.apply_policy(CLI, web.served.world.app, POLICY, name="test")
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        form = html(await client.get("/admin/policy/explain?lang=en"))
        csrf = csrf_of(form)
        for name in ("sender", "recipient", "classification"):
            assert f'for="{name}"' in form
        allowed = html(await client.post("/admin/policy/explain", data={
            "csrf": csrf, "sender": MOF_ADMIN, "recipient": SYSTEM_ADMIN,
            "classification": "internal"}))  # fmt: skip
        assert word("en", "policy.allowed").format(rule="finance-to-health") in allowed
        assert 'id="trace"' in allowed
        denied = html(await client.post("/admin/policy/explain", data={
            "csrf": csrf, "sender": SYSTEM_ADMIN, "recipient": MOF_ADMIN, "classification": ""}))  # fmt: skip
        assert "Denied (rule" in denied and "Not allowed." in denied
        bad = html(await client.post("/admin/policy/explain", data={
            "csrf": csrf, "sender": SYSTEM_ADMIN, "recipient": MOF_ADMIN,
            "classification": "top"}), 422)  # fmt: skip
        assert word("en", "page.invalid") in bad
        html(await client.post("/admin/policy/explain", data={"sender": "a", "recipient": "b"}),
             403)  # fmt: skip
        html(await client.get("/admin/policy/cases"))
        report = html(await client.post("/admin/policy/cases", data={"csrf": csrf, "text": CASES}))
        assert word("en", "policy.cases_passed").format(passed=1, total=2) in report
        assert "wrong expectation" in report and 'id="failures"' in report
        hits = html(await client.get("/admin/policy/hits"))
        assert word("en", "policy.no_hits") in hits


async def test_auditor_reads_without_apply_and_mof_admin_reaches_nothing(web: WebWorld) -> None:
    await policy_versions.apply_policy(CLI, web.served.world.app, POLICY, name="test")
    [first] = await versions(web)
    async with signed_in_as(web, AUDITOR) as client:
        home = html(await client.get("/admin/policy?lang=en"))
        assert 'href="/admin/policy"' in home and "finance-to-health" in home
        assert 'value="apply"' not in home and 'value="check"' in home
        csrf = csrf_of(home)
        checked = html(await client.post("/admin/policy", data={
            "csrf": csrf, "text": BROKEN, "action": "check"}))  # fmt: skip
        assert "NOPE" in checked
        before = await audit_count(web)
        forged = html(await client.post("/admin/policy", data={
            "csrf": csrf, "text": CHANGED, "action": "apply"}), 403)  # fmt: skip
        assert word("en", "page.forbidden") in forged
        assert await versions(web) == [first] and await audit_count(web) == before
        html(await client.get(f"/admin/policy/versions/{first}"))
        html(await client.get("/admin/policy/versions"))
        html(await client.get("/admin/policy/hits"))
    async with signed_in_as(web, MOF_ADMIN) as client:
        board = html(await client.get("/admin/dashboard?lang=en"))
        assert 'href="/admin/policy"' not in board
        csrf = csrf_of(board)
        for path in ("/admin/policy", "/admin/policy/versions", f"/admin/policy/versions/{first}",
                     "/admin/policy/explain", "/admin/policy/cases"):  # fmt: skip
            assert word("en", "page.forbidden") in html(await client.get(path), 403), path
        html(await client.post("/admin/policy", data={
            "csrf": csrf, "text": CHANGED, "action": "apply"}), 403)  # fmt: skip
        html(await client.post("/admin/policy/cases", data={"csrf": csrf, "text": CASES}), 403)
        assert await versions(web) == [first]
