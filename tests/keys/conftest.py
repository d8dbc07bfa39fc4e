"""Fixtures for the key tests: external tools (gpg, openssl) and short GnuPG homes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.gateway import drop_gnupghome, new_gnupghome
from testkit.tools import require_tool


@pytest.fixture(scope="session")
def gpg_tool() -> str:
    return require_tool("gpg")


@pytest.fixture(scope="session")
def openssl_tool() -> str:
    return require_tool("openssl")


@pytest.fixture
def gnupghome(gpg_tool: str) -> Iterator[Path]:
    """A fresh, short GnuPG home; its gpg-agent is stopped afterwards."""
    home = new_gnupghome()
    try:
        yield home
    finally:
        drop_gnupghome(home)


@pytest.fixture(scope="module")
def module_gnupghome(gpg_tool: str) -> Iterator[Path]:
    """A GnuPG home shared by one test module (key generation done once)."""
    home = new_gnupghome()
    try:
        yield home
    finally:
        drop_gnupghome(home)
