"""Who is using a web admin page, in which language, and whether a form is genuine.

Owns: the language choice (`?lang=` remembered in a cookie, Arabic by default),
the signed-in session behind the admin session cookie (the same cookie and
session service as the API's POST /api/v1/session), and the CSRF rule for forms:
every POST carries a token in the `csrf` field, the session's CSRF secret once
signed in, before that a random token also held in a SameSite=Strict cookie.
Must not: render pages or run use cases.

Failure behaviour: `NoSession` for no or an ended session (`ended` says whether a
cookie was sent, so the page can say the session expired); `FormRefused` for a
missing or wrong CSRF token. No detail of why a session ended is given.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request, Response

from admin.api.auth import (
    SESSION_COOKIE,
    Authenticator,
    NotAuthenticated,
    SessionActor,
    client_address,
)
from gateway.presentation.catalogue import Lang

LANG_COOKIE = "barid_admin_lang"
FORM_COOKIE = "barid_admin_form"  # the sign-in form's CSRF token, before a session exists
CSRF_FIELD = "csrf"
MAX_FORM = 16 * 1024


class NoSession(Exception):
    def __init__(self, ended: bool) -> None:
        super().__init__("no session")
        self.ended = ended


class FormRefused(Exception):
    """A POST without the right CSRF token, or a form that cannot be read."""


@dataclass(frozen=True)
class Choice:
    lang: Lang
    remember: bool  # the request chose it with ?lang=; set the cookie


def language(request: Request) -> Choice:
    asked = request.query_params.get("lang")
    if asked in ("ar", "en"):
        return Choice(asked, True)  # type: ignore[arg-type]
    kept = request.cookies.get(LANG_COOKIE)
    return Choice("en" if kept == "en" else "ar", False)


def remember_language(response: Response, choice: Choice) -> None:
    if choice.remember:
        response.set_cookie(LANG_COOKIE, choice.lang, max_age=365 * 86400, path="/admin",
                            secure=True, httponly=True, samesite="lax")  # fmt: skip


async def current_session(request: Request) -> SessionActor:
    """The signed-in session of this request, or NoSession."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NoSession(ended=False)
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return await authenticator.by_session(cookie, client_address(request))
    except NotAuthenticated:
        raise NoSession(ended=True) from None


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (first value of each); FormRefused if unreadable."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise FormRefused
    body = await request.body()
    if len(body) > MAX_FORM:
        raise FormRefused
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused from None
    return {name: values[0] for name, values in fields.items()}


def check_csrf(fields: dict[str, str], expected: str | None) -> None:
    sent = fields.get(CSRF_FIELD, "")
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise FormRefused


def form_token(request: Request) -> tuple[str, bool]:
    """The sign-in form's token, and whether it is new (to be set as a cookie)."""
    kept = request.cookies.get(FORM_COOKIE)
    if kept and 20 <= len(kept) <= 100:
        return kept, False
    return secrets.token_urlsafe(32), True


def set_form_token(response: Response, token: str) -> None:
    response.set_cookie(FORM_COOKIE, token, path="/admin", secure=True, httponly=True,
                        samesite="strict")  # fmt: skip
