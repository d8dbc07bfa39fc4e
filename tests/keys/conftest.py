"""Fixtures for the key tests: external tools (gpg, openssl) and short GnuPG homes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    """Path of the external tool `name`; skip the test when it is missing.

    With BARID_REQUIRE_ALL=1 in the environment a missing tool fails the test
    instead, so a complete environment cannot silently skip these checks.
    """
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed"
        if os.environ.get("BARID_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason} (required because BARID_REQUIRE_ALL=1)")
        pytest.skip(reason)
    return path


def _new_gnupghome() -> Path:
    # gpg-agent's socket path must stay under ~100 bytes: keep the home short.
    return Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))


def _drop_gnupghome(home: Path) -> None:
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        check=False,
        capture_output=True,
        timeout=30,
    )
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def gpg_tool() -> str:
    return require_tool("gpg")


@pytest.fixture(scope="session")
def openssl_tool() -> str:
    return require_tool("openssl")


@pytest.fixture
def gnupghome(gpg_tool: str) -> Iterator[Path]:
    """A fresh, short GnuPG home; its gpg-agent is stopped afterwards."""
    home = _new_gnupghome()
    try:
        yield home
    finally:
        _drop_gnupghome(home)


@pytest.fixture(scope="module")
def module_gnupghome(gpg_tool: str) -> Iterator[Path]:
    """A GnuPG home shared by one test module (key generation done once)."""
    home = _new_gnupghome()
    try:
        yield home
    finally:
        _drop_gnupghome(home)
