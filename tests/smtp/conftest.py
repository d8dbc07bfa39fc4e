"""Fixtures for the SMTP protocol tests (real sockets, real TLS, real directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testkit.smtp import PASSWORD, Running, start


def _barid(env: dict[str, str], *args: str, stdin: str = "") -> None:
    subprocess.run([sys.executable, "-m", "admin", *args], env=env, input=stdin.encode(),
                   check=True, capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def gateway_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with agency MOH and employees a, b (active) and c (suspended)."""
    data = tmp_path_factory.mktemp("gw") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env["BARID_CONFIG"] = str(data / "barid.toml")
    _barid(env, "init", "--data-dir", str(data))
    _barid(env, "agency", "add", "MOH", "--name-en", "Health", "--kind", "ministry",
           "--domain", "moh.gov.example")  # fmt: skip
    for who in ("a", "b", "c"):
        _barid(env, "employee", "add", f"{who}@moh.gov.example", "--agency", "MOH",
               "--name-en", who.upper(), "--password-stdin", stdin=PASSWORD)  # fmt: skip
    _barid(env, "employee", "suspend", "c@moh.gov.example")
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
