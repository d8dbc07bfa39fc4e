"""The security pages in a real browser: a security auditor signs in, follows the
navigation to the audit trail, filters it, reads the access trail and downloads its
CSV, and acknowledges an alert with a note; in Arabic and English, 1280 and 390 px
wide, with no overflow, no CSP violation and no serious accessibility violation
(when axe-core is installed); a screenshot of every page is saved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from admin.web.catalogue import word
from testkit.admin_web import AUDITOR, PASSWORD, WebWorld, web_world
from testkit.axe import assert_accessible, axe_available, install_axe
from testkit.chromium import screenshot_dir
from testkit.web_browser import LANGS, WIDTHS, open_browser, shoot


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


async def _every_way(page: Any, url: str, name: str, out: Path, console: list[str],
                     axe: bool) -> list[Path]:  # fmt: skip
    shots = []
    for lang in LANGS:
        await page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
        for width in WIDTHS:
            shots.append(await shoot(page, lang, name, width, out, console))
            if axe:
                await assert_accessible(page, f"{name} {lang} {width}")
    return shots


async def test_auditor_reads_the_trails_and_acknowledges_an_alert(
    web: WebWorld, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    shots: list[Path] = []
    alert = web.served.world.alert
    async with open_browser() as (context, console):
        axe = axe_available()
        if axe:
            await install_axe(context)
        page = await context.new_page()
        await page.goto(f"{web.base}/admin/sign-in?lang=ar")
        await page.get_by_label(word("ar", "signin.address")).fill(AUDITOR)
        await page.get_by_label(word("ar", "signin.password")).fill(PASSWORD)
        await page.locator("#code").fill(web.code(AUDITOR))
        await page.get_by_role("button", name=word("ar", "signin.submit")).click()
        await page.wait_for_url("**/admin/dashboard")
        await page.get_by_role("link", name=word("ar", "site.security")).click()
        await page.wait_for_url("**/admin/security/audit")
        assert await page.locator("#chain .ok").count() == 1
        await page.get_by_label(word("ar", "sec.kind")).fill("verify.alert")
        await page.get_by_role("button", name=word("ar", "sec.apply")).click()
        await page.wait_for_url("**/admin/security/audit?kind=verify.alert*")
        assert await page.locator("#events tbody tr").count() == 1
        shots += await _every_way(page, page.url, "security-audit", out, console, axe)
        await page.goto(f"{web.base}/admin/security/access?lang=en")
        assert await page.locator("#accesses tbody tr").count() == 3
        async with page.expect_download() as waiting:
            await page.get_by_role("link", name=word("en", "sec.export")).click()
        download = await waiting.value
        saved = Path(await download.path())
        assert saved.read_text("utf-8").startswith("at,employee,registry")
        shots += await _every_way(page, f"{web.base}/admin/security/access", "security-access",
                                  out, console, axe)  # fmt: skip
        shots += await _every_way(page, f"{web.base}/admin/security/alerts", "security-alerts",
                                  out, console, axe)  # fmt: skip
        await page.goto(f"{web.base}/admin/security/alerts?lang=ar")
        await page.locator(f"#note-{alert}").fill("راجعه فريق الأمن")
        await page.get_by_role("button", name=word("ar", "sec.acknowledge")).click()
        await page.wait_for_url(f"**/admin/security/alerts?state=acknowledged&done={alert}")
        assert word("ar", "sec.done").format(id=alert) in await page.locator("main").inner_text()
        shots += await _every_way(page, page.url, "security-alert-acknowledged", out, console, axe)
    print("screenshots:", *shots, sep="\n  ")
