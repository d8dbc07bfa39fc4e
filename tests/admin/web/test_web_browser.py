"""The web admin in a real browser: Playwright drives Debian's Chromium through the
sign-in page and the dashboard, in Arabic and in English, 1280 and 390 CSS pixels
wide: nothing wider than the window, no CSP violation, the right language and
direction; a screenshot of every page at every width is saved (testkit.chromium's
screenshot directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.web.catalogue import word
from testkit.admin_web import PASSWORD, SYSTEM_ADMIN, WebWorld, web_world
from testkit.chromium import screenshot_dir
from testkit.web_browser import LANGS, WIDTHS, open_browser, shoot


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


async def test_sign_in_and_dashboard_in_chromium(
    web: WebWorld, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    shots: list[Path] = []
    async with open_browser() as (context, console):
        page = await context.new_page()
        for lang in LANGS:
            await page.goto(f"{web.base}/admin/sign-in?lang={lang}")
            for width in WIDTHS:
                shots.append(await shoot(page, lang, "sign-in", width, out, console))
        await page.goto(f"{web.base}/admin/sign-in?lang=ar")
        await page.get_by_label(word("ar", "signin.address")).fill(SYSTEM_ADMIN)
        await page.get_by_label(word("ar", "signin.password")).fill(PASSWORD)
        await page.locator("#code").fill(web.code(SYSTEM_ADMIN))
        await page.get_by_role("button", name=word("ar", "signin.submit")).click()
        await page.wait_for_url("**/admin/dashboard")
        for lang in LANGS:
            await page.goto(f"{web.base}/admin/dashboard?lang={lang}")
            assert await page.locator("svg .bar").count() == 30
            heading = await page.locator("h1").inner_text()
            assert heading == word(lang, "dash.title")  # type: ignore[arg-type]
            for width in WIDTHS:
                shots.append(await shoot(page, lang, "dashboard", width, out, console))
        await page.get_by_role("button", name=word("en", "site.sign_out")).click()
        await page.wait_for_url("**/admin/sign-in?m=signed-out")
    print("screenshots:", *shots, sep="\n  ")
