"""The admin-account services over a real database: SQLite, then PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from testkit.accounts import World, make_world


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    made = await make_world(db_url)
    try:
        yield made
    finally:
        await made.authenticator.drain()
        await made.engine.dispose()
