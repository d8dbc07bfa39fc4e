"""What a route needs besides the caller: the management context and the account services.

Owns: the FastAPI dependencies reading them from `app.state` (set once by
`admin.api.wiring`). Must not: build them.
"""

from __future__ import annotations

from fastapi import Request

from admin.api.jobs import Jobs
from admin.api.paging import Cursors
from admin.context import App
from admin.services.account_services import AccountServices


def context(request: Request) -> App:
    app: App = request.app.state.context
    return app


def accounts(request: Request) -> AccountServices:
    services: AccountServices = request.app.state.accounts
    return services


def jobs(request: Request) -> Jobs:
    registry: Jobs = request.app.state.jobs
    return registry


def cursors(request: Request) -> Cursors:
    signer: Cursors = request.app.state.cursors
    return signer
