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
from starlette.types import ASGIApp

from admin.api import (
    routes_accounts,
    routes_agencies,
    routes_alerts,
    routes_audit,
    routes_employees,
    routes_jobs,
    routes_messages,
    routes_policy,
)
from admin.api.app import create_admin_app
from admin.api.authn import AccountAuthenticator
from admin.api.jobs import Jobs
from admin.context import App
from admin.services.account_base import AccountKeys
from admin.services.account_services import AccountServices
from admin.web.routes import install_pages
from gateway.serve.admin_hook import AdminResources
from keys.gateway_keys import derive_key

CURSOR_KEY_PURPOSE = "admin-api.cursors.v1"

ROUTERS: Sequence[APIRouter] = (
    routes_accounts.router,
    routes_agencies.router,
    routes_employees.router,
    routes_jobs.router,
    routes_policy.router,
    routes_messages.router,
    routes_audit.router,
    routes_alerts.router,
)


def admin_app_over(context: App, services: AccountServices, *, max_body: int) -> ASGIApp:
    """The admin API app over an opened management context and account services."""
    return create_admin_app(
        authenticator=AccountAuthenticator(services),
        cursor_key=derive_key(context.keys.master_key, CURSOR_KEY_PURPOSE),
        routers=ROUTERS,
        max_body=max_body,
        state={"context": context, "accounts": services, "jobs": Jobs()},
        pages=install_pages,
    )


def admin_app_for(gateway: AdminResources) -> ASGIApp:
    """The admin API app over a running gateway's own resources (the serve hook)."""
    keys, settings, sessions = gateway.keys, gateway.settings, gateway.sessions
    context = App(settings=settings, engine=gateway.engine, sessions=sessions, keys=keys,
                  directory=gateway.directory, blob_stores=gateway.blob_stores)  # fmt: skip
    if gateway.watch_keys is not None:  # a rotation on any node reaches the admin app too
        gateway.watch_keys(lambda fresh: setattr(context, "keys", fresh))
    services = AccountServices.build(
        sessions, AccountKeys.from_gateway(keys), authenticator=gateway.login_throttle,
        limits=settings.admin,
    )  # fmt: skip
    return admin_app_over(
        context, services, max_body=max(settings.smtp.max_message_size, 1024 * 1024)
    )
