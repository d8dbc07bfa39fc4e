"""Building the admin API for a running gateway process.

Owns: assembling the app the admin listener serves from what the gateway has
already opened (settings, database, keys, directory, the login throttle), so
that the admin sign-in shares the SMTP/IMAP throttle and one process serves
everything. Called by `barid serve` through the gateway's admin-app hook; the
gateway never imports `admin`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from admin.api import routes_accounts
from admin.api.app import create_admin_app
from admin.api.authn import AccountAuthenticator
from admin.context import App
from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.store.directory import Directory
from keys.gateway_keys import GatewayKeys, derive_key

CURSOR_KEY_PURPOSE = "barid admin api cursors v1"

ROUTERS: Sequence[APIRouter] = (routes_accounts.router,)


def build_admin_app(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    keys: GatewayKeys,
    directory: Directory,
    login_throttle: Authenticator,
) -> ASGIApp:
    """The admin API app over the gateway's own resources."""
    context = App(settings=settings, engine=engine, sessions=sessions, keys=keys,
                  directory=directory)  # fmt: skip
    services = AccountServices.build(
        sessions, AccountKeys.from_gateway(keys), authenticator=login_throttle
    )
    app = create_admin_app(
        authenticator=AccountAuthenticator(services),
        cursor_key=derive_key(keys.master_key, CURSOR_KEY_PURPOSE),
        routers=ROUTERS,
        max_body=max(settings.smtp.max_message_size, 1024 * 1024),
        state={"context": context, "accounts": services},
    )
    return app
