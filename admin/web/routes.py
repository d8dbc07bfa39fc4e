"""The web admin's pages: sign-in, sign-out and the dashboard, under /admin/.

Owns: the HTTP shape of these pages (forms in, HTML out, redirects, the session
cookie as the API's POST /api/v1/session sets it) and `install_pages`, which adds
them and /admin/static/ to the admin app. Must not: compute figures or decide
sign-in (admin.services.login and admin.services.dashboard do).

Failure behaviour: no session -> 303 to the sign-in page (saying the session
ended when a cookie was sent); a POST without the right CSRF token -> 403 and
nothing done; a refused sign-in -> the form again with one message that never
says whether the account exists; service errors -> a short page, never their text.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from admin.api.auth import SESSION_COOKIE, client_address
from admin.services import dashboard as dashboard_service
from admin.services.account_services import AccountServices
from admin.services.actor import Forbidden, OutOfScope
from admin.services.errors import Unavailable
from admin.services.login import LoginRefused, SessionRefused
from admin.web import (
    chart,
    routes_account,
    routes_directory,
    routes_directory_employees,
    routes_directory_import,
    routes_messages,
    routes_policy,
    routes_security,
    routes_security_radar,
    session,
)
from admin.web.pages import PREFIX, page, signed_in, to

router = APIRouter(include_in_schema=False)
_STATIC = Path(__file__).with_name("static")
_REFUSALS = {"throttled": ("signin.throttled", 429), "unavailable": ("signin.unavailable", 503)}
_NOTICES = {"expired": "signin.expired", "signed-out": "signin.signed_out"}


# Every router of web admin pages, in the order they are added (one module per area).
PAGE_ROUTERS: tuple[APIRouter, ...] = (
    router,
    routes_directory.router,
    routes_directory_import.router,
    routes_directory_employees.router,
    routes_policy.router,
    routes_messages.router,
    routes_security.router,
    routes_security_radar.router,
    routes_account.router,
)


def install_pages(app: FastAPI) -> None:
    """Add the pages and their static files to the admin app."""
    for pages_router in PAGE_ROUTERS:
        app.include_router(pages_router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_STATIC), name="admin-static")




def _refused_form(request: Request) -> HTMLResponse:
    return page(request, "message.html", 403, message="signin.form_expired",
                 back=f"{PREFIX}/sign-in", back_label="signin.title")  # fmt: skip


@router.get(PREFIX)
@router.get(f"{PREFIX}/")
async def home() -> RedirectResponse:
    return to(f"{PREFIX}/dashboard")


@router.get(f"{PREFIX}/sign-in")
async def sign_in_page(request: Request) -> HTMLResponse:
    token, new = session.form_token(request)
    notice = _NOTICES.get(request.query_params.get("m", ""))
    response = page(request, "sign_in.html", csrf=token, notice=notice, error=None, address="")
    if new:
        session.set_form_token(response, token)
    return response


@router.post(f"{PREFIX}/sign-in")
async def sign_in(request: Request) -> Response:
    services: AccountServices = request.app.state.accounts
    try:
        fields = await session.form(request)
        session.check_csrf(fields, request.cookies.get(session.FORM_COOKIE))
    except session.FormRefused:
        return _refused_form(request)
    address = fields.get("address", "")[:320]
    if services.logins is None:
        return _sign_in_again(request, address, "signin.unavailable", 503)
    try:
        new = await services.logins.login(
            address, fields.get("password", "")[:1024], fields.get("code", "")[:64],
            client_address(request),
        )  # fmt: skip
    except LoginRefused as exc:
        key, status = _REFUSALS.get(exc.reason, ("signin.refused", 401))
        return _sign_in_again(request, address, key, status)
    response = to(f"{PREFIX}/dashboard")
    response.set_cookie(
        SESSION_COOKIE, new.session_id, secure=True, httponly=True, samesite="strict",
        path="/", max_age=int(services.logins.absolute.total_seconds()),
    )  # fmt: skip
    return response


def _sign_in_again(request: Request, address: str, key: str, status: int) -> HTMLResponse:
    token, new = session.form_token(request)
    response = page(request, "sign_in.html", status, csrf=token, notice=None, error=key,
                     address=address)  # fmt: skip
    if new:
        session.set_form_token(response, token)
    return response


@router.post(f"{PREFIX}/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        current = await session.current_session(request)
        fields = await session.form(request)
        session.check_csrf(fields, current.csrf_secret)
    except session.NoSession as exc:
        return to(f"{PREFIX}/sign-in" + ("?m=expired" if exc.ended else ""))
    except session.FormRefused:
        return _refused_form(request)
    services: AccountServices = request.app.state.accounts
    if services.logins is not None:
        with contextlib.suppress(SessionRefused):
            await services.logins.end_session(
                request.cookies.get(SESSION_COOKIE, ""), client_address(request)
            )
    response = to(f"{PREFIX}/sign-in?m=signed-out")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")  # fmt: skip
    return response


@router.get(f"{PREFIX}/dashboard")
async def dashboard(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        figures = await dashboard_service.dashboard(frame.actor, frame.app)
    except (Forbidden, OutOfScope):
        return page(request, "message.html", 403, frame=frame, message="dash.unavailable",
                    back=None)  # fmt: skip
    except Unavailable:
        return page(request, "message.html", 503, frame=frame, message="dash.unavailable",
                    back=None)  # fmt: skip
    bars = chart.bars([(d.day, d.count) for d in figures.days])
    return page(request, "dashboard.html", frame=frame, figures=figures, chart=bars)
