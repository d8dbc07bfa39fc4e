"""The form uploads, the sender search and the dashboard's new figures in a real
browser: Playwright drives Debian's Chromium as a system administrator through
the dashboard (copies by state, certificate and keys), the messages page
searching by sender, the CSV import from a chosen file (to the job's end), an
oversized policy (the 413 page), in Arabic and English, 1280 and 390 CSS pixels
wide: nothing wider than the window and no CSP violation; a screenshot of every
page at every width (testkit.chromium's directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from admin.web.catalogue import word
from admin.web.session import LARGE_FORM
from keys.tls import ensure_dev_certificate
from testkit.admin_use_cases import MOH_DOCTOR
from testkit.admin_web import PASSWORD, SYSTEM_ADMIN, WebWorld, web_world
from testkit.chromium import screenshot_dir
from testkit.web_browser import LANGS, Shots, open_browser, sign_in_page
from tests.admin.web.test_web_directory import GOOD_CSV


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        settings = world.served.world.app.settings
        ensure_dev_certificate(settings.tls_cert, settings.tls_key, "gateway.example")
        yield world


async def _sender_search(page: Any, shots: Shots, base: str) -> None:
    for lang in LANGS:
        await page.goto(f"{base}/admin/messages?lang={lang}")
        form = page.locator("#by-sender")
        await form.get_by_label(word(lang, "msg.sender_address")).fill(MOH_DOCTOR)
        await form.get_by_role("button", name=word(lang, "msg.find")).click()
        await page.wait_for_url("**/admin/messages?sender=*")
        assert await page.locator("#sender-result tbody tr").count() == 1
        await shots.here("messages-sender", lang)


async def _import_file(page: Any, shots: Shots, base: str, folder: Path) -> None:
    csv = folder / "directory.csv"
    csv.write_text(GOOD_CSV, encoding="utf-8")
    await shots.all("directory-import-file", f"{base}/admin/directory/import")
    await page.goto(f"{base}/admin/directory/import?lang=en")
    await page.locator("#csv-file").set_input_files(str(csv))
    await page.get_by_role("button", name=word("en", "dir.import.start")).click()
    await page.wait_for_url("**/admin/directory/import/*")
    await page.get_by_text(word("en", "dir.import.state.done")).wait_for(timeout=15_000)


async def _too_large(page: Any, shots: Shots, base: str) -> None:
    for lang in LANGS:
        await page.goto(f"{base}/admin/policy?lang={lang}")
        # About 1.2 MiB once URL-encoded (typing it would take minutes).
        await page.locator("#text").evaluate(
            "(area, n) => { area.value = '# ' + 'ح'.repeat(n); }", LARGE_FORM // 5
        )
        # The answer is a new page: wait for that navigation, not for the old
        # page's load state, which holds already.
        async with page.expect_navigation(timeout=60_000):
            await page.locator('button[value="check"]').click(timeout=60_000)
        text = word(lang, "form.too_large").format(size="1 MiB")
        assert await page.get_by_text(text).count() == 1
        await shots.here("form-too-large", lang)


async def test_uploads_sender_search_and_dashboard_in_chromium(
    web: WebWorld, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    async with open_browser() as (context, console):
        page = await context.new_page()
        shots = Shots(page, out, console)
        await sign_in_page(page, web.base, SYSTEM_ADMIN, PASSWORD, web.code(SYSTEM_ADMIN))
        base = web.base
        await shots.all("dashboard-figures", f"{base}/admin/dashboard")
        assert await page.locator("#credentials tbody tr").count() == 4
        await _sender_search(page, shots, base)
        await _import_file(page, shots, base, tmp_path)
        await _too_large(page, shots, base)
    print("screenshots:", *shots.taken, sep="\n  ")
