"""Checks the web admin's browser tests make on every page they open with Playwright:
the page's language and direction, nothing wider than the window, no violation of
the Content-Security-Policy (a listener added to the context before any page
script), then a full-page screenshot in testkit.chromium's screenshot directory.

`open_browser` launches Debian's Chromium (skipping when it or Playwright is
missing, failing under BARID_REQUIRE_ALL=1) with the listener installed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from testkit.tools import missing

WIDTHS = (1280, 390)
LANGS = ("ar", "en")
CHECKS = """() => {
  const root = document.documentElement;
  const wide = [];
  if (root.scrollWidth > window.innerWidth) {
    for (const e of document.body.querySelectorAll('*')) {
      const r = e.getBoundingClientRect();
      if (r.right > window.innerWidth + 0.5 || r.left < -0.5) {
        wide.push(e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' +
                  Math.round(r.left) + '..' + Math.round(r.right));
        if (wide.length >= 8) { break; }
      }
    }
  }
  return {scroll: root.scrollWidth, inner: window.innerWidth, lang: root.lang, dir: root.dir,
          violations: window.__csp || [], wide: wide};
}"""
LISTEN = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


@contextlib.asynccontextmanager
async def open_browser(*, self_signed: bool = False) -> AsyncIterator[tuple[Any, list[str]]]:
    """A Playwright browser context (1280 px wide) with the CSP listener, and the
    list the pages' console messages are collected in; `self_signed`: accepting
    the test gateway's own TLS certificate (its admin listener speaks HTTPS only)."""
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).exists():
        missing("chromium is not installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright is not installed")
    console: list[str] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=binary)
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, ignore_https_errors=self_signed
            )
            await context.add_init_script(LISTEN)
            context.on("console", lambda message: console.append(message.text))
            yield context, console
        finally:
            await browser.close()


async def check_page(page: Any, lang: str, label: str, console: list[str]) -> None:
    """Language, direction, no horizontal overflow, no CSP violation on the open page."""
    await page.wait_for_load_state("load")
    seen = await page.evaluate(CHECKS)
    assert seen["lang"] == lang and seen["dir"] == ("rtl" if lang == "ar" else "ltr"), seen
    assert seen["scroll"] <= seen["inner"], (label, seen)
    assert not seen["violations"], (label, seen["violations"])
    assert not [line for line in console if "Content Security Policy" in line], console


async def shoot(page: Any, lang: str, name: str, width: int, out: Path,
                console: list[str]) -> Path:  # fmt: skip
    """At `width` CSS pixels: the checks, then a full-page screenshot; its path."""
    await page.set_viewport_size({"width": width, "height": 900})
    await check_page(page, lang, f"{name} {lang} {width}", console)
    shot = out / f"admin-{name}-{lang}-{width}.png"
    await page.screenshot(path=str(shot), full_page=True)
    return shot


async def sign_in_page(page: Any, base: str, address: str, password: str, code: str) -> None:
    """Sign in through the Arabic sign-in form and wait for the dashboard."""
    from admin.web.catalogue import word

    await page.goto(f"{base}/admin/sign-in?lang=ar")
    await page.get_by_label(word("ar", "signin.address")).fill(address)
    await page.get_by_label(word("ar", "signin.password")).fill(password)
    await page.locator("#code").fill(code)
    await page.get_by_role("button", name=word("ar", "signin.submit")).click()
    await page.wait_for_url("**/admin/dashboard")


class Shots:
    """Screenshots of the open page at every width, kept in `taken`."""

    def __init__(self, page: Any, out: Path, console: list[str]) -> None:
        self.page, self.out, self.console = page, out, console
        self.taken: list[Path] = []

    async def all(self, name: str, path: str) -> None:
        """`path` in both languages at both widths."""
        for lang in LANGS:
            await self.page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
            await self.here(name, lang)

    async def here(self, name: str, lang: str) -> None:
        for width in WIDTHS:
            self.taken.append(await shoot(self.page, lang, name, width, self.out, self.console))
