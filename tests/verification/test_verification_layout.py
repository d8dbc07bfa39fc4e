"""The verification page as a phone and a desktop browser lay it out: every status
in Arabic and English, and the document check, opened in headless Chromium at 360,
412 and 1280 px on a running gateway. Nothing is wider than the window, the
verdict and the page's heading are visible, and the screenshots are saved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testkit.chromium import WIDTHS, Chromium, screenshot_dir
from testkit.pages import STATUS_WORDS, prepare_letters

SELECTORS = {"verdict": ".banner", "heading": "header h1", "switch": "header a",
             "facts": "section dl", "form": "form", "button": "form button"}  # fmt: skip


def _browse(chromium: str, base: str, tokens: dict[str, str], out: Path) -> list[Path]:
    browser = Chromium(chromium, out / "profile-verify")
    shots: list[Path] = []
    try:
        for status, token in tokens.items():
            for lang in ("ar", "en"):
                for width in WIDTHS:
                    png = out / f"verify-{status}-{lang}-{width}.png"
                    url = f"{base}/v/{token}?lang={lang}"
                    layout = browser.layout(url, width, SELECTORS, png)
                    where = (status, lang, width)
                    assert layout.scroll_width <= layout.inner_width, (where, layout)
                    verdict = layout.visible("verdict")
                    assert STATUS_WORDS[status, lang] in verdict.text, (where, verdict)
                    layout.visible("heading")
                    layout.visible("switch")
                    layout.visible("button")
                    if status in ("valid", "revoked"):
                        layout.visible("facts")
                    else:
                        assert layout.boxes["facts"] is None, where
                    shots.append(png)
        for width in WIDTHS:
            png = out / f"verify-check-{width}.png"
            layout = browser.layout(f"{base}/v/check", width, SELECTORS, png)
            assert layout.scroll_width <= layout.inner_width, (width, layout)
            layout.visible("form")
            layout.visible("button")
            shots.append(png)
    finally:
        browser.close()
    return shots


async def test_page_layout_from_phone_to_desktop(
    live: Any, gnupghome: Path, need_tool: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    chromium = need_tool("chromium")
    letters = await prepare_letters(live, gnupghome)
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    base = f"http://127.0.0.1:{live.gateway.http_port}"
    shots = await asyncio.to_thread(_browse, chromium, base, letters.tokens, out)
    for png in shots:
        print(f"screenshot: {png}")
    assert len(shots) == (len(letters.tokens) * 2 + 1) * len(WIDTHS)
