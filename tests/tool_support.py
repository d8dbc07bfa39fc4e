"""Tool requirements: skip where a tool is missing, or fail under BARID_REQUIRE_ALL=1.

Imported by tests/conftest.py and the support modules; a test module imports it
by name (never `from conftest import ...`, which is ambiguous with several
conftest.py files under pytest-xdist).
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL = os.environ.get("BARID_REQUIRE_ALL") == "1"


def missing(reason: str) -> None:
    """Skip, or fail under BARID_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (required because BARID_REQUIRE_ALL=1)")
    pytest.skip(reason)
