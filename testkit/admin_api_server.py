"""The admin API served over real HTTP for route tests: an in-process uvicorn on a
free loopback port over the service tests' world (testkit/admin_use_cases), with
an API token for each role made through the account services.

MOF (ministry) > MOF-TAX (directorate) is the scoped tokens' subtree; MOH lies
outside it. One message was issued by MOF-TAX, one by MOH, each with a queue
entry; three access events are recorded, and one alert (a forged-token spike)
is open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from admin.context import open_app
from admin.services.actor import Actor
from gateway.config import load_settings
from testkit.admin_api import account_services, api_app, serving
from testkit.admin_use_cases import World, populate

ROLES = {"system-admin": None, "agency-admin": "MOF", "security-auditor": None, "registrar": "MOF"}


@dataclass
class Served:
    world: World
    base: str
    tokens: dict[str, str]  # role -> bearer secret

    def client(self, role: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.AsyncClient(base_url=self.base + "/api/v1", headers=headers, timeout=30)


@contextlib.asynccontextmanager
async def served_world(data: Path) -> AsyncIterator[Served]:
    """The world on `data` (initialised by `barid init`) and the admin API over it."""
    settings = load_settings(str(data / "barid.toml"), environ={})
    async with open_app(settings) as app:
        world = await populate(app, data)
        tokens = {}
        for role, agency in ROLES.items():
            new = await account_services(app).tokens.create(
                Actor.local_cli(), role=role, name=f"test {role}", agency=agency
            )
            tokens[role] = new.secret
        async with serving(api_app(app)) as base:
            yield Served(world, base, tokens)
