"""Fixtures for the SMTP protocol tests (real sockets, real TLS, real directory)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testkit.smtp import Running, make_smtp_directory, start


@pytest.fixture(scope="module")
def gateway_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with agency MOH and employees a, b (active) and c (suspended)."""
    data = tmp_path_factory.mktemp("gw") / "data"
    make_smtp_directory(data)
    return data


@pytest.fixture
def gateway_config(gateway_template: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(gateway_template, data)
    return data / "barid.toml"


@pytest.fixture
async def smtp(gateway_config: Path) -> AsyncIterator[Running]:
    running, stop = await start(gateway_config)
    try:
        yield running
    finally:
        await stop()
