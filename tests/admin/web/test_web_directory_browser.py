"""The directory pages in a real browser: Playwright drives Debian's Chromium as a
system administrator through the agency tree, MOF's page, adding an employee with
its form, the employee's page, the import form with a bad file (every row's
problem shown) and a good one (the job page to its end), in Arabic and English,
1280 and 390 CSS pixels wide: nothing wider than the window and no CSP violation;
a screenshot of every page at every width (testkit.chromium's directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from admin.web.catalogue import word
from testkit.admin_web import PASSWORD, SYSTEM_ADMIN, WebWorld, web_world
from testkit.chromium import screenshot_dir
from testkit.web_browser import LANGS, Shots, open_browser, sign_in_page
from tests.admin.web.test_web_directory import BAD_CSV, GOOD_CSV


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


async def _add_employee(page: Any, lang: str, address: str) -> None:
    form = page.locator("#add-employee")
    await form.get_by_label(word(lang, "dir.address")).fill(address)  # type: ignore[arg-type]
    await form.get_by_label(word(lang, "dir.name_en")).fill("Web Person")  # type: ignore[arg-type]
    await form.get_by_label(word(lang, "dir.name_ar")).fill("موظف الويب")  # type: ignore[arg-type]
    await form.get_by_role("button", name=word(lang, "dir.add_employee")).click()  # type: ignore[arg-type]
    await page.wait_for_url(f"**/admin/directory/employees/{address}?done=employee-added")


async def _import(page: Any, shots: Shots, base: str) -> None:
    for lang in LANGS:
        await page.goto(f"{base}/admin/directory/import?lang={lang}")
        await page.locator("#csv").fill(BAD_CSV)
        await page.get_by_role("button", name=word(lang, "dir.import.start")).click()  # type: ignore[arg-type]
        await page.wait_for_load_state("load")
        assert await page.locator("#problems li").count() == 2
        await shots.here("directory-import-bad", lang)
    await page.locator("#csv").fill(GOOD_CSV)
    await page.get_by_role("button", name=word("en", "dir.import.start")).click()
    await page.wait_for_url("**/admin/directory/import/*")
    done = word("en", "dir.import.state.done")
    await page.get_by_text(done).wait_for(timeout=15_000)
    await shots.all("directory-import-job", page.url.split("?")[0])


async def test_directory_pages_in_chromium(
    web: WebWorld, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    async with open_browser() as (context, console):
        page = await context.new_page()
        shots = Shots(page, out, console)
        await sign_in_page(page, web.base, SYSTEM_ADMIN, PASSWORD, web.code(SYSTEM_ADMIN))
        base = web.base
        await shots.all("directory-tree", f"{base}/admin/directory")
        await shots.all("directory-agency", f"{base}/admin/directory/agencies/MOF")
        for lang in LANGS:
            await page.goto(f"{base}/admin/directory/agencies/MOF?lang={lang}")
            await _add_employee(page, lang, f"web-{lang}@mof.gov.example")
            await shots.here("directory-employee", lang)
        await shots.all("directory-retire", f"{base}/admin/directory/agencies/MOF/retire")
        await _import(page, shots, base)
        await shots.all("account", f"{base}/admin/account")
        await page.get_by_role("button", name=word("en", "account.enrol")).click()
        await page.locator("#secret").wait_for()
        await shots.here("account-enrol", "en")
    print("screenshots:", *shots.taken, sep="\n  ")
