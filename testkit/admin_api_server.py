"""The admin API served over real HTTP for route tests: an in-process uvicorn on a
free loopback port over the service tests' world (testkit/admin_use_cases), with
an API token for each role made through the account services.

MOF (ministry) > MOF-TAX (directorate) is the scoped tokens' subtree; MOH lies
outside it. One message was issued by MOF-TAX, one by MOH, each with a queue
entry, and three access events are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from admin.api.app import create_admin_app
from admin.api.authn import AccountAuthenticator
from admin.api.wiring import ROUTERS
from admin.context import App, open_app
from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor
from gateway.config import load_settings
from gateway.store import audit
from gateway.store.db import transaction
from gateway.store.queue import QueueAdmin
from testkit.admin_use_cases import (
    MOH_DOCTOR,
    MOH_NURSE,
    TAX_CLERK,
    World,
    accept,
    access_event,
    seed,
)

ROLES = {"system-admin": None, "agency-admin": "MOF", "security-auditor": None, "registrar": "MOF"}


@dataclass
class Served:
    world: World
    base: str
    tokens: dict[str, str]  # role -> bearer secret

    def client(self, role: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.AsyncClient(base_url=self.base + "/api/v1", headers=headers, timeout=30)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def populate(app: App, data: Path) -> World:
    await seed(app)
    tax = await accept(app, TAX_CLERK, "MOF-TAX", MOH_DOCTOR)
    moh = await accept(app, MOH_DOCTOR, "MOH", TAX_CLERK)
    entries = {e.registry: e.id for e in await QueueAdmin(app.sessions, app.audit_key).list()}
    async with transaction(app.sessions) as session:
        await audit.append_many(
            session,
            app.audit_key,
            [access_event(MOH_DOCTOR, tax), access_event(TAX_CLERK, moh),
             access_event(MOH_NURSE, moh)],
        )  # fmt: skip
    return World(app, data, tax, moh, entries[tax], entries[moh])


@contextlib.asynccontextmanager
async def serving(data: Path) -> AsyncIterator[Served]:
    """The world on `data` (initialised by `barid init`) and the admin API over it."""
    settings = load_settings(str(data / "barid.toml"), environ={})
    async with open_app(settings) as app:
        world = await populate(app, data)
        services = AccountServices.build(app.sessions, AccountKeys.from_gateway(app.keys))
        tokens = {}
        for role, agency in ROLES.items():
            new = await services.tokens.create(
                Actor.local_cli(), role=role, name=f"test {role}", agency=agency
            )
            tokens[role] = new.secret
        asgi = create_admin_app(
            authenticator=AccountAuthenticator(services), cursor_key=b"k" * 32, routers=ROUTERS,
            state={"context": app, "accounts": services},
        )  # fmt: skip
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = _Server(uvicorn.Config(asgi, log_config=None, lifespan="off", access_log=False))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        try:
            yield Served(world, f"http://127.0.0.1:{port}", tokens)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()
