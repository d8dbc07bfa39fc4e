"""The admin API served for tests: a real uvicorn server on a free loopback port over
an opened management context, and real API tokens for each role.

Used by tests/admin/api; the accounts, tokens and routes are the real ones
(`admin.api.wiring.admin_app_over`), only the gateway around them is absent (its
login throttle is a fresh one over the same directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from starlette.types import ASGIApp

from admin.api.wiring import admin_app_over
from admin.context import App
from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor
from gateway.intake.login import Authenticator

CLI = Actor.local_cli()
# name -> (role, agency) of the API tokens `role_tokens` makes
TOKEN_ROLES = {
    "system-admin": ("system-admin", None),
    "agency-admin": ("agency-admin", "MOF"),
    "auditor": ("security-auditor", None),
}


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (a port the kernel picks); yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def account_services(app: App) -> AccountServices:
    """The account services, with sign-in through the directory's password check."""
    return AccountServices.build(
        app.sessions, AccountKeys.from_gateway(app.keys), authenticator=Authenticator(app.directory)
    )


# As deployed, the listener's body cap (at least the SMTP message size) is above the
# web admin's largest form (1 MiB), so a form over its own limit gets the 413 page.
LISTENER_MAX_BODY = 4 * 1024 * 1024


def api_app(app: App) -> ASGIApp:
    """The admin API app over `app` (sign-in works; the tests mostly use tokens)."""
    return admin_app_over(app, account_services(app), max_body=LISTENER_MAX_BODY)


async def role_tokens(app: App) -> dict[str, dict[str, str]]:
    """Authorization headers of a real API token per `TOKEN_ROLES` name, made as the CLI."""
    tokens = account_services(app).tokens
    headers = {}
    for name, (role, agency) in TOKEN_ROLES.items():
        new = await tokens.create(CLI, role=role, name=f"test {name}", agency=agency)
        headers[name] = {"Authorization": f"Bearer {new.secret}"}
    return headers
