"""Tool requirements: skip where a tool is missing, or fail under BARID_REQUIRE_ALL=1.

Used by tests/conftest.py (`need_tool`), the key tests (`require_tool`) and the
other testkit modules; it only finds tools, it never installs one.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ALL = os.environ.get("BARID_REQUIRE_ALL") == "1"


def missing(reason: str) -> None:
    """Skip, or fail under BARID_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (required because BARID_REQUIRE_ALL=1)")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Path of the external tool `name` on PATH; skip the test when it is missing.

    With BARID_REQUIRE_ALL=1 in the environment a missing tool fails the test
    instead, so a complete environment cannot silently skip these checks.
    """
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    return str(path)


def find_tool(name: str) -> str:
    """As `require_tool`, also looking in /usr/sbin and /sbin, where Debian puts
    daemons and their tools (dovecot, smtp-sink)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        missing(f"{name} is not installed")
    return str(path)
