"""Fixtures for the stamping tests: gateway keys (made once) and sample submissions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.model.message import Submission
from gateway.stamping import TRACE_KEY_PURPOSE, Stamper
from keys.gateway_keys import GatewayKeys, default_keys_dir, ensure_gateway_keys, load_gateway_keys
from testkit.stamp import ISSUED_AT, PUBLIC_URL, make_submission, plain_original


@pytest.fixture(scope="session")
def gateway_keys(tmp_path_factory: pytest.TempPathFactory) -> GatewayKeys:
    directory = default_keys_dir(tmp_path_factory.mktemp("stampkeys"))
    ensure_gateway_keys(directory)
    return load_gateway_keys(directory)


@pytest.fixture(scope="session")
def stamper(gateway_keys: GatewayKeys) -> Stamper:
    return Stamper(gateway_keys, PUBLIC_URL, gateway_keys.derive(TRACE_KEY_PURPOSE))


@pytest.fixture(scope="session")
def submission_factory() -> Callable[..., Submission]:
    """`make_submission(raw, documents=, recipients=, subject=, classification=, message_id=)`."""
    return make_submission


@pytest.fixture
def original_factory() -> Callable[[int], bytes]:
    """`plain_original(body_size)`: a simple CRLF message with a base64 attachment."""
    return plain_original


@pytest.fixture
def public_url() -> str:
    return PUBLIC_URL


@pytest.fixture
def issued_at() -> dt.datetime:
    return ISSUED_AT


@pytest.fixture
def keys_dir_factory(tmp_path: Path) -> Callable[[str], Path]:
    """A fresh key directory under tmp_path (RSA generation makes this slow-ish)."""

    def make(name: str) -> Path:
        directory = tmp_path / name / "keys"
        ensure_gateway_keys(directory)
        return directory

    return make
