"""Fixtures of the federation tests: two federated gateways on loopback, "central"
(the demo government) and "region" (testkit/federation.py builds them)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from testkit.federation import (
    Pair,
    add_region_people,
    configure_central,
    configure_region,
    make_region,
)


@pytest.fixture(scope="session")
def region_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second government: one agency (region.gov.example), a registrar and a clerk."""
    data = tmp_path_factory.mktemp("region") / "d"
    make_region(data)
    add_region_people(data)
    return data


@pytest.fixture
async def pair(
    demo_template: Path,
    region_template: Path,
    tmp_path: Path,
    credentials: dict[str, dict[str, Any]],
    port_factory: Callable[[], int],
) -> AsyncIterator[Pair]:
    central, region = tmp_path / "central", tmp_path / "region"
    shutil.copytree(demo_template, central)
    shutil.copytree(region_template, region)
    central_port, region_port = port_factory(), port_factory()
    configure_central(central, region, region_port, tmp_path)
    configure_region(region, central, central_port, tmp_path)
    pair = Pair(central, region, central_port, region_port, credentials, [])
    try:
        yield pair
    finally:
        for live in list(pair.started):
            await pair.stop(live)
