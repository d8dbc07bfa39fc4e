"""The policy and message-tracking pages in a real browser: Playwright drives Debian's
Chromium as a system administrator through applying a policy (check first, then
apply), the version and its diff, explain, a case table, the hits, and a message's
tracking with revocation and its confirmation, in Arabic and English at 1280 and
390 CSS pixels: nothing wider than the window, no CSP violation; a screenshot of
every page at every width is saved (testkit.chromium's screenshot directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from admin.services import policy_versions
from admin.web.catalogue import word
from testkit.admin_policies import CASES, CHANGED, POLICY
from testkit.admin_web import CLI, PASSWORD, SYSTEM_ADMIN, WebWorld, web_world
from testkit.chromium import screenshot_dir
from testkit.web_browser import LANGS, WIDTHS, open_browser, shoot, sign_in_page


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


async def _every_width(page: Any, lang: str, name: str, out: Path, console: list[str],
                       shots: list[Path]) -> None:  # fmt: skip
    for width in WIDTHS:
        shots.append(await shoot(page, lang, name, width, out, console))


async def _policy_flow(page: Any, web: WebWorld, lang: Any, out: Path, console: list[str],
                       shots: list[Path]) -> None:  # fmt: skip
    await page.goto(f"{web.base}/admin/policy?lang={lang}")
    await page.get_by_label(word(lang, "policy.text")).fill(CHANGED if lang == "en" else POLICY)
    await page.get_by_role("button", name=word(lang, "policy.check"), exact=True).click()
    await page.wait_for_load_state("load")
    assert await page.locator(".notice").count() == 1
    await _every_width(page, lang, "policy-checked", out, console, shots)
    await page.get_by_role("button", name=word(lang, "policy.apply"), exact=True).click()
    await page.wait_for_url("**/admin/policy/versions/*")
    await _every_width(page, lang, "policy-version", out, console, shots)
    await page.goto(f"{web.base}/admin/policy")
    await _every_width(page, lang, "policy", out, console, shots)
    await page.goto(f"{web.base}/admin/policy/versions")
    await _every_width(page, lang, "policy-versions", out, console, shots)
    await page.goto(f"{web.base}/admin/policy/explain")
    await page.get_by_label(word(lang, "policy.sender")).fill("clerk@tax.mof.gov.example")
    await page.get_by_label(word(lang, "policy.recipient")).fill(SYSTEM_ADMIN)
    await page.get_by_label(word(lang, "policy.classification")).select_option("internal")
    await page.get_by_role("button", name=word(lang, "policy.explain_submit")).click()
    await page.wait_for_load_state("load")
    assert await page.locator("#trace tbody tr").count() >= 1
    await _every_width(page, lang, "policy-explain", out, console, shots)
    await page.goto(f"{web.base}/admin/policy/cases")
    await page.get_by_label(word(lang, "policy.cases_text")).fill(CASES)
    await page.get_by_role("button", name=word(lang, "policy.cases_run")).click()
    await page.wait_for_load_state("load")
    assert await page.locator("#failures tbody tr").count() == 1
    await _every_width(page, lang, "policy-cases", out, console, shots)
    await page.goto(f"{web.base}/admin/policy/hits")
    await _every_width(page, lang, "policy-hits", out, console, shots)


async def _message_flow(page: Any, web: WebWorld, lang: Any, registry: str, out: Path,
                        console: list[str], shots: list[Path]) -> None:  # fmt: skip
    await page.goto(f"{web.base}/admin/messages?lang={lang}")
    await _every_width(page, lang, "messages", out, console, shots)
    await page.get_by_label(word(lang, "msg.registry")).fill(registry)
    await page.get_by_role("button", name=word(lang, "msg.show")).click()
    await page.wait_for_url(f"**/admin/messages/{registry}")
    await _every_width(page, lang, "message", out, console, shots)
    if lang != "en":
        return
    await page.get_by_label(word(lang, "msg.reason")).fill("Sent to the wrong agency")
    await page.get_by_role("button", name=word(lang, "msg.revoke_next")).click()
    await page.wait_for_load_state("load")
    await _every_width(page, lang, "message-revoke", out, console, shots)
    await page.get_by_role("button", name=word(lang, "msg.confirm")).click()
    await page.wait_for_url("**?m=revoked")
    await _every_width(page, lang, "message-revoked", out, console, shots)


async def test_policy_and_messages_in_chromium(
    web: WebWorld, tmp_path_factory: pytest.TempPathFactory
) -> None:
    await policy_versions.apply_policy(CLI, web.served.world.app, POLICY, name="first")
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    shots: list[Path] = []
    async with open_browser() as (context, console):
        page = await context.new_page()
        await sign_in_page(page, web.base, SYSTEM_ADMIN, PASSWORD, web.code(SYSTEM_ADMIN))
        for lang in LANGS:
            await _policy_flow(page, web, lang, out, console, shots)
            await _message_flow(page, web, lang, web.served.world.tax_message, out,
                                console, shots)  # fmt: skip
    print("screenshots:", *shots, sep="\n  ")
