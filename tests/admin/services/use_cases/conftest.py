"""A real initialised data dir (SQLite) with a small directory, two accepted messages
and their queue entries, for calling the service layer directly as each role.

MOF (ministry) > MOF-TAX (directorate) is the subtree of the scoped actors;
MOH (ministry) lies outside it. One message was issued by MOF-TAX, one by MOH.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.context import open_app
from gateway.config import load_settings
from testkit.admin_use_cases import World, populate


@pytest.fixture
async def world(barid: object, tmp_path: Path) -> AsyncIterator[World]:
    """`barid init` done by the `barid` fixture; the app opened on its data dir."""
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        yield await populate(app, tmp_path / "data")
