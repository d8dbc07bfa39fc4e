"""Accessibility of every web admin page: axe-core (testkit.axe) run in Chromium on
the sign-in page and on every page a GET route of the page routers serves (found
from admin.web.routes.PAGE_ROUTERS, so a new area's pages are checked without
listing them here), as a system administrator and as MOF's agency administrator
(whose refusal pages are checked too), in Arabic and English, 1280 and 390 px
wide: no serious or critical violation, no CSP violation, nothing wider than the
window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute

from admin.web.routes import PAGE_ROUTERS
from testkit.admin_web import MOF_ADMIN, PASSWORD, SYSTEM_ADMIN, WebWorld, web_world
from testkit.axe import assert_accessible, axe_source, install_axe
from testkit.web_browser import LANGS, WIDTHS, check_page, open_browser

SKIPPED_SUFFIXES = (".csv", ".json", ".png", ".svg")


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


def page_paths() -> list[str]:
    """Every path a page router answers GET on without a parameter (downloads left out)."""
    paths = []
    for router in PAGE_ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute) or "GET" not in route.methods:
                continue
            if "{" in route.path or route.path.endswith(SKIPPED_SUFFIXES):
                continue
            if route.path.endswith("/sign-in") or route.path.endswith("/"):
                continue
            paths.append(route.path)
    return sorted(set(paths))


async def _check_everywhere(page: Any, url: str, label: str, console: list[str]) -> None:
    for lang in LANGS:
        await page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
        if urlsplit(page.url).path != urlsplit(url).path:
            return  # a redirect: the page it leads to is checked on its own
        for width in WIDTHS:
            await page.set_viewport_size({"width": width, "height": 900})
            await check_page(page, lang, f"{label} {lang} {width}", console)
            await assert_accessible(page, f"{label} {lang} {width}")


async def _sign_in(page: Any, web: WebWorld, address: str) -> None:
    await page.goto(f"{web.base}/admin/sign-in")
    await page.locator("#address").fill(address)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#code").fill(web.code(address))
    await page.locator("form.stack button[type=submit]").click()
    await page.wait_for_url("**/admin/dashboard")


async def test_every_page_has_no_serious_accessibility_violation(web: WebWorld) -> None:
    axe_source()
    paths = page_paths()
    assert "/admin/dashboard" in paths and "/admin/security/audit" in paths
    async with open_browser() as (context, console):
        await install_axe(context)
        page = await context.new_page()
        await _check_everywhere(page, f"{web.base}/admin/sign-in", "sign-in", console)
        await page.goto(f"{web.base}/admin/sign-in?lang=ar")
        await page.locator("#code").fill("000000")
        await page.locator("#address").fill(SYSTEM_ADMIN)
        await page.locator("#password").fill("wrong")
        await page.locator("form.stack button[type=submit]").click()
        await page.wait_for_load_state("load")
        await assert_accessible(page, "sign-in refused")
        for address in (SYSTEM_ADMIN, MOF_ADMIN):
            await _sign_in(page, web, address)
            for path in paths:
                await _check_everywhere(page, f"{web.base}{path}", f"{address} {path}", console)
            await page.context.clear_cookies()
