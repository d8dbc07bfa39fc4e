"""The accessibility check of the web admin's browser tests: axe-core run in the page.

axe-core is not part of the checkout: .ci/run installs it with npm into a cache
outside it (`npm install --prefix ~/.cache/barid-test/axe axe-core@4`), and
`BARID_AXE_JS` may name another axe.min.js. `axe_source` finds it (skipping the
test when it is missing, failing under BARID_REQUIRE_ALL=1); `install_axe` adds it
to a Playwright browser context as an init script, which the pages' CSP does not
govern, so nothing is loaded from outside Barid and no policy is loosened; then
`assert_accessible(page, name)` runs it on the open page and fails on any serious
or critical violation, naming the rule, its help text and the elements.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from testkit.tools import missing

AXE_ENV = "BARID_AXE_JS"
DEFAULT_AXE = Path.home() / ".cache/barid-test/axe/node_modules/axe-core/axe.min.js"
BLOCKING = ("serious", "critical")
# The rules of WCAG 2.1 A and AA, and axe's best practices.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")

_RUN = """async (tags) => {
  if (!window.axe) { return null; }
  const result = await window.axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                 resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary)}));
}"""


@cache
def _found() -> Path | None:
    path = Path(os.environ.get(AXE_ENV) or DEFAULT_AXE)
    return path if path.is_file() else None


def axe_available() -> bool:
    """Whether axe.min.js is there (for a test whose other checks run without it)."""
    return _found() is not None


def axe_source() -> Path:
    """axe.min.js, or a skip (a failure under BARID_REQUIRE_ALL=1) when it is missing."""
    path = _found()
    if path is None:
        missing(f"axe-core is not installed (npm install --prefix {DEFAULT_AXE.parents[2]} "
                f"axe-core@4, or set {AXE_ENV})")  # fmt: skip
    assert path is not None
    return path


async def install_axe(context: Any) -> None:
    """Make axe-core present in every page the Playwright `context` opens."""
    await context.add_init_script(path=str(axe_source()))


async def violations(page: Any) -> list[dict[str, Any]]:
    """Every serious or critical violation axe finds on `page` as it is now."""
    found = await page.evaluate(_RUN, list(TAGS))
    assert found is not None, "axe-core is not in the page: call install_axe(context) first"
    return [v for v in found if v["impact"] in BLOCKING]


async def assert_accessible(page: Any, name: str) -> None:
    """Fail when axe finds a serious or critical violation on the open page."""
    found = await violations(page)
    assert not found, f"{name}: accessibility violations\n" + json.dumps(found, indent=1)
