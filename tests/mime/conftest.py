"""Fixtures for the MIME tests: one gpg key and one throwaway CMS CA per session.

The expensive material is made once, lazily, and only after `need_tool` has
found the tool (so a missing tool skips, or fails under BARID_REQUIRE_ALL=1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from testkit.mime_samples import CmsSigner, GpgSigner


@pytest.fixture(scope="session")
def _material() -> Iterator[dict[str, object]]:
    made: dict[str, object] = {}
    yield made
    gpg = made.get("gpg")
    if isinstance(gpg, GpgSigner):
        gpg.close()
    cms = made.get("cms")
    if isinstance(cms, CmsSigner):
        cms.close()


@pytest.fixture
def gpg(need_tool: Callable[[str], str], _material: dict[str, object]) -> GpgSigner:
    need_tool("gpg")
    need_tool("gpgconf")
    signer = _material.get("gpg")
    if not isinstance(signer, GpgSigner):
        signer = _material["gpg"] = GpgSigner.create()
    return signer


@pytest.fixture
def cms(need_tool: Callable[[str], str], _material: dict[str, object]) -> CmsSigner:
    need_tool("openssl")
    signer = _material.get("cms")
    if not isinstance(signer, CmsSigner):
        signer = _material["cms"] = CmsSigner.create()
    return signer
