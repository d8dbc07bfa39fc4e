"""Fixtures for the SMTP protocol tests (real sockets, real TLS, real directory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from smtp_support import PASSWORD, Running, start


@pytest.fixture
def gateway_config(tmp_path: Path, make_cli: Any) -> Path:
    data = tmp_path / "data"
    cli = make_cli({"BARID_CONFIG": str(data / "barid.toml")})
    assert cli("init", "--data-dir", str(data)).code == 0
    assert cli("agency", "add", "MOH", "--name-en", "Health", "--kind", "ministry",
               "--domain", "moh.gov.example").code == 0  # fmt: skip
    for who in ("a", "b", "c"):
        result = cli("employee", "add", f"{who}@moh.gov.example", "--agency", "MOH",
                     "--name-en", who.upper(), "--password-stdin", stdin=PASSWORD)  # fmt: skip
        assert result.code == 0, result.err
    assert cli("employee", "suspend", "c@moh.gov.example").code == 0
    return data / "barid.toml"


@pytest.fixture
async def smtp(gateway_config: Path) -> AsyncIterator[Running]:
    running, stop = await start(gateway_config)
    try:
        yield running
    finally:
        await stop()
