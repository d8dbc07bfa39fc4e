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
from admin.web import chart, session
from admin.web.render import render

PREFIX = "/admin"
router = APIRouter(include_in_schema=False)
_STATIC = Path(__file__).with_name("static")
_REFUSALS = {"throttled": ("signin.throttled", 429), "unavailable": ("signin.unavailable", 503)}
_NOTICES = {"expired": "signin.expired", "signed-out": "signin.signed_out"}


def install_pages(app: FastAPI) -> None:
    """Add the pages and their static files to the admin app."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_STATIC), name="admin-static")


def _page(request: Request, name: str, status: int = 200, /, **context: object) -> HTMLResponse:
    choice = session.language(request)
    here = request.url.path
    body = render(name, choice.lang, here=here, **context)
    response = HTMLResponse(body, status_code=status)
    session.remember_language(response, choice)
    return response


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _refused_form(request: Request) -> HTMLResponse:
    return _page(request, "message.html", 403, message="signin.form_expired",
                 back=f"{PREFIX}/sign-in")  # fmt: skip


@router.get(PREFIX)
@router.get(f"{PREFIX}/")
async def home() -> RedirectResponse:
    return _to(f"{PREFIX}/dashboard")


@router.get(f"{PREFIX}/sign-in")
async def sign_in_page(request: Request) -> HTMLResponse:
    token, new = session.form_token(request)
    notice = _NOTICES.get(request.query_params.get("m", ""))
    response = _page(request, "sign_in.html", csrf=token, notice=notice, error=None, address="")
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
    response = _to(f"{PREFIX}/dashboard")
    response.set_cookie(
        SESSION_COOKIE, new.session_id, secure=True, httponly=True, samesite="strict",
        path="/", max_age=int(services.logins.absolute.total_seconds()),
    )  # fmt: skip
    return response


def _sign_in_again(request: Request, address: str, key: str, status: int) -> HTMLResponse:
    token, new = session.form_token(request)
    response = _page(request, "sign_in.html", status, csrf=token, notice=None, error=key,
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
        return _to(f"{PREFIX}/sign-in" + ("?m=expired" if exc.ended else ""))
    except session.FormRefused:
        return _refused_form(request)
    services: AccountServices = request.app.state.accounts
    if services.logins is not None:
        with contextlib.suppress(SessionRefused):
            await services.logins.end_session(
                request.cookies.get(SESSION_COOKIE, ""), client_address(request)
            )
    response = _to(f"{PREFIX}/sign-in?m=signed-out")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")  # fmt: skip
    return response


@router.get(f"{PREFIX}/dashboard")
async def dashboard(request: Request) -> Response:
    try:
        current = await session.current_session(request)
    except session.NoSession as exc:
        return _to(f"{PREFIX}/sign-in" + ("?m=expired" if exc.ended else ""))
    actor = current.actor
    frame: dict[str, object] = {"actor": actor, "csrf": current.csrf_secret}
    try:
        figures = await dashboard_service.dashboard(actor, request.app.state.context)
    except (Forbidden, OutOfScope):
        return _page(request, "message.html", 403, message="dash.unavailable", back=None, **frame)
    except Unavailable:
        return _page(request, "message.html", 503, message="dash.unavailable", back=None, **frame)
    bars = chart.bars([(d.day, d.count) for d in figures.days])
    return _page(request, "dashboard.html", figures=figures, chart=bars, **frame)
