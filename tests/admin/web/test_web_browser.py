"""The web admin in a real browser: Playwright drives Debian's Chromium through the
sign-in page and the dashboard, in Arabic and in English, 1280 and 390 CSS pixels
wide: nothing wider than the window, no CSP violation, the right language and
direction; a screenshot of every page at every width is saved (testkit.chromium's
screenshot directory)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from admin.web.catalogue import word
from testkit.admin_web import PASSWORD, SYSTEM_ADMIN, WebWorld, web_world
from testkit.chromium import screenshot_dir
from testkit.tools import missing

WIDTHS = (1280, 390)
LANGS = ("ar", "en")
_CHECKS = """() => {
  const root = document.documentElement;
  return {scroll: root.scrollWidth, inner: window.innerWidth, lang: root.lang, dir: root.dir,
          violations: window.__csp || []};
}"""
_LISTEN = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


async def _shoot(page: Any, lang: str, name: str, width: int, out: Path,
                 console: list[str]) -> Path:  # fmt: skip
    await page.set_viewport_size({"width": width, "height": 900})
    await page.wait_for_load_state("load")
    seen = await page.evaluate(_CHECKS)
    assert seen["lang"] == lang and seen["dir"] == ("rtl" if lang == "ar" else "ltr"), seen
    assert seen["scroll"] <= seen["inner"], (name, lang, width, seen)
    assert not seen["violations"], seen["violations"]
    assert not [line for line in console if "Content Security Policy" in line], console
    shot = out / f"admin-{name}-{lang}-{width}.png"
    await page.screenshot(path=str(shot), full_page=True)
    return shot


async def test_sign_in_and_dashboard_in_chromium(
    web: WebWorld, tmp_path_factory: pytest.TempPathFactory
) -> None:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).exists():
        missing("chromium is not installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright is not installed")
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    shots: list[Path] = []
    console: list[str] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=binary)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            await context.add_init_script(_LISTEN)
            page = await context.new_page()
            page.on("console", lambda message: console.append(message.text))
            for lang in LANGS:
                await page.goto(f"{web.base}/admin/sign-in?lang={lang}")
                for width in WIDTHS:
                    shots.append(await _shoot(page, lang, "sign-in", width, out, console))
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
                    shots.append(await _shoot(page, lang, "dashboard", width, out, console))
            await page.get_by_role("button", name=word("en", "site.sign_out")).click()
            await page.wait_for_url("**/admin/sign-in?m=signed-out")
        finally:
            await browser.close()
    print("screenshots:", *shots, sep="\n  ")
