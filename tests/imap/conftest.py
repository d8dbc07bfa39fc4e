"""Fixtures shared by the IMAP tests that open raw connections."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from testkit.imap_hostile import Conns


@pytest.fixture
async def conns() -> AsyncIterator[Conns]:
    """Raw connections a test opens, closed at its end whatever happened."""
    opened = Conns()
    try:
        yield opened
    finally:
        await opened.aclose()
